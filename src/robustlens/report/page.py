"""Assemble the study report: one static, self-contained HTML file.

The page holds: the study summary (models, datasets, measures, images decoded, forward passes,
stage timings), the per-model table of every measure (sortable, with a column filter), every
registered section in order (:mod:`robustlens.report.context`), and a short "What predicts
robustness here" summary computed from the data. Plots are base64 PNGs, CSS and the small
table script are inline: no CDN, it opens offline from ``file://``.

Data is read from the store (``store.results``), the study's saved plan (``plan.json``:
datasets with their roles and tags, models with their configs, measures), the artifacts JSON
files and the per-sample Parquet files (streamed one model at a time); the report never runs
a model and never resolves the study file's datasets or models again.

The report is cached like everything else (:mod:`robustlens.report.fragments`): each part of
the page (the per-model tables, each section, the summary) is kept in the study's store under
the digest of the code that draws it and the data it reads, and read back, not drawn again,
while neither changed; the parts that must be drawn are drawn in parallel worker processes.
The CSV/Parquet exports are written again only when their results, plan or code changed (or
a file was changed or removed since).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustlens import __version__
from robustlens.errors import RobustlensError, StoreError
from robustlens.formatting import duration, esc, is_number, short
from robustlens.measure import Section, lines
from robustlens.report import exports as _exports
from robustlens.report.context import ReportContext
from robustlens.report.exports import export_results, wide_table
from robustlens.report.fragments import (
    Drawn,
    FragmentCache,
    Part,
    code_digest,
    package_digest,
    results_digest,
)
from robustlens.report.overview import generalization_overview, what_predicts_html
from robustlens.roles import corrupt_group, role_from_name
from robustlens.store import Store
from robustlens.study import read_plan, study_plan, study_store
from robustlens.tables import Table

__all__ = [
    "FAULT_KEYS",
    "SUMMARY_FILE",
    "LazyArtifacts",
    "SectionError",
    "build_report_context",
    "faults_html",
    "infer_datasets",
    "line_summaries",
    "render_report",
    "report_sections",
    "write_report",
]

SUMMARY_FILE = "study_summary.json"  # written next to the results, read when re-rendering
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class SectionError:
    """A section that failed to import or render (shown in the page as an error box)."""

    title: str
    message: str
    traceback: str


# ----------------------------------------------------------------------------- context
def report_sections() -> list[Section]:
    """The page's own sections and every research line's, in page order.

    Lines come from the registry (:func:`robustlens.measure.lines`); a line that fails to
    import raises :class:`robustlens.measure.LineLoadError` naming it.
    """
    own = [Section("Generalization overview", generalization_overview, 10)]
    found = own + [s for line in lines() for s in line.sections]
    return sorted(found, key=lambda s: (s.order, s.title))


def infer_datasets(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Role and tags of datasets known only by name (roles from :mod:`robustlens.roles`).

    A corrupted set named ``.../<corruption>/<severity>`` gets those two tags.

    Example:
        >>> d = infer_datasets(["world/val", "world/corrupt/contrast/3", "imagenet_r", "x"])
        >>> [d[k]["role"] for k in d], d["world/corrupt/contrast/3"]["tags"]["severity"]
        (['id', 'corrupt', 'rendition', 'other'], 3)
    """
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        if n == "*":
            continue
        role = role_from_name(n)
        parts = n.split("/")
        tags: dict[str, Any] = {}
        if role == "corrupt" and len(parts) >= 3 and parts[-1].isdigit():
            tags = {"corruption": parts[-2], "severity": int(parts[-1])}
        out[n] = {"role": role, "tags": tags}
    return out


class LazyArtifacts(Mapping[str, dict[str, Any]]):
    """``{model: {measure: artifacts}}`` read from ``out_dir/artifacts`` when a model is looked
    up, so a zoo of hundreds of models never has every artifact file in memory at once
    (the last few models looked up are kept). Reads like a dict; sections iterate it."""

    def __init__(
        self, out_dir: str | os.PathLike[str], models: Sequence[str], keep: int = 4
    ) -> None:
        by_safe = {m.replace("/", "_"): m for m in models}
        self._files: dict[str, dict[str, Path]] = {}
        root = Path(out_dir) / "artifacts"
        for p in sorted(root.glob("*/*.json")) if root.exists() else []:
            model = by_safe.get(p.stem)
            if model is not None:
                self._files.setdefault(model, {})[p.parent.name] = p
        self._order = [m for m in models if m in self._files]
        self._cache: dict[str, dict[str, Any]] = {}
        self._keep = keep

    def __getitem__(self, model: str) -> dict[str, Any]:
        if model not in self._files:
            raise KeyError(model)
        if model not in self._cache:
            if len(self._cache) >= self._keep:
                self._cache.pop(next(iter(self._cache)))
            self._cache[model] = {
                measure: json.loads(path.read_text())
                for measure, path in self._files[model].items()
            }
        return self._cache[model]

    def __iter__(self):
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"LazyArtifacts({len(self)} models)"


def _read_summary(out_dir: Path) -> dict[str, Any]:
    p = out_dir / SUMMARY_FILE
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _study_summary(result: Any) -> dict[str, Any]:
    reports = list(getattr(result, "engine_reports", []) or [])
    images: dict[str, int] = {}
    for r in reports:
        images[r.dataset] = max(images.get(r.dataset, 0), int(r.images))
    cfg = getattr(result, "config", None)
    return {
        "name": getattr(cfg, "name", None) or "study",
        "store": str(result.store.root),
        "models": list(result.models),
        "datasets": list(result.datasets),
        "images": sum(images.values()),
        "images_decoded": int(result.images_decoded),
        "forward_passes": int(result.forward_passes),
        "forward_seconds": float(getattr(result, "forward_seconds", 0.0)),
        "stage_seconds": {k: float(v) for k, v in (result.stage_seconds or {}).items()},
        "engine": [r.summary() for r in reports],
        "written": _dt.datetime.now().isoformat(timespec="seconds"),
    }


#: what the study left out, copied from its plan into the summary (and study_summary.json)
FAULT_KEYS = ("skipped", "failures", "incidents")


def _store_of(store: Any, config: Any, recorded: Mapping[str, Any], out_dir: Path) -> Store:
    """The store: given, else the study config's, else the one the study or a report recorded."""
    store = store if store is not None else getattr(config, "store", None)
    store = store if store is not None else recorded.get("store")
    if store is None:
        raise RobustlensError(
            f"no store for the report of {out_dir}: pass store=<store directory> (or the "
            "study config), or run the study once so it records its store in "
            f"{out_dir / 'plan.json'}"
        )
    return store if isinstance(store, Store) else Store(store)


def build_report_context(
    source: Any,
    *,
    store: Any = None,
    config: Any = None,
    models: Sequence[str] | None = None,
    datasets: dict[str, dict[str, Any]] | None = None,
) -> ReportContext:
    """Collect what the report needs: results, artifacts, dataset roles, model configs.

    Datasets, models and measures come from the study's plan: the :class:`StudyResult`'s,
    or the ``plan.json`` the study wrote to its output directory (then the
    ``study_summary.json`` an earlier report wrote, for output directories of older runs).

    Args:
        source: a :class:`robustlens.study.StudyResult`, or a study output directory.
        store: the store (or its path) when ``source`` is a directory; default: the study
            config's store, else the one recorded in ``plan.json`` or ``study_summary.json``.
        config: the :class:`robustlens.config.StudyConfig` (its name, store and measures);
            optional.
        models: restrict to these models (default: the study's models).
        datasets: ``{name: {"role": ..., "tags": {...}}}`` overriding the recorded roles.

    Raises:
        RobustlensError: no store can be found, or it holds no results for the models.
    """
    if hasattr(source, "store") and hasattr(source, "output"):
        out_dir = Path(source.output)
        store = source.store
        summary = _study_summary(source)
        plan = study_plan(source)
    else:
        out_dir = Path(source)
        summary = _read_summary(out_dir)
        plan = read_plan(out_dir) or {}
        store = _store_of(store, config, {**summary, **plan}, out_dir)
    # only this study's numbers: another study on the same store may name a model alike
    recorded = plan if plan.get("fingerprints") else summary
    if isinstance(store, Store) and store.scope is None:
        store = study_store(store, recorded)
    for key in (*FAULT_KEYS, "fingerprints"):
        summary[key] = recorded.get(key) or plan.get(key) or summary.get(key) or {}
        if key in ("failures", "incidents") and not summary[key]:
            summary[key] = []
    if config is not None:
        summary["name"] = config.name
    elif plan.get("name"):
        summary["name"] = plan["name"]
    model_cfgs = {**(summary.get("model_configs") or {}), **(plan.get("models") or {})}
    ds_info = {**(summary.get("dataset_info") or {}), **(plan.get("datasets") or {})}
    model_names = list(models) if models is not None else _names(plan, summary, "models")
    ds_names = _names(plan, summary, "datasets")
    if config is not None:
        measures = list(config.measures)
    else:
        measures = plan.get("measures") or summary.get("measures")
    results = store.results(models=model_names, measures=measures)
    if results.empty:
        who = f"models {model_names}" if model_names is not None else "any model"
        raise RobustlensError(
            f"store {store.root} holds no results for {who}; run the study first "
            "(`robustlens study STUDY`)"
        )
    if ds_names is not None:
        keep = {*ds_names, "*"}
        results = results[results["dataset"].isin(keep)].reset_index(drop=True)
    model_names = model_names or sorted(results["model"].unique().tolist())
    with_results = set(results["dataset"].unique())
    present = [d for d in dict.fromkeys(ds_names or sorted(with_results)) if d in with_results]
    info = infer_datasets(present)
    info.update({k: v for k, v in ds_info.items() if k in info})
    if datasets:
        info.update(datasets)
    artifacts: Mapping[str, dict[str, Any]] = LazyArtifacts(out_dir, model_names)
    if not len(artifacts) and getattr(source, "artifacts", None):
        artifacts = {m: a for m, a in source.artifacts.items() if m in set(model_names)}
    summary["models"] = list(model_names)
    summary["measures"] = measures
    summary["protocols"] = {
        m: p
        for m, p in (plan.get("protocols") or summary.get("protocols") or {}).items()
        if measures is None or m in measures
    }
    summary["published"] = plan.get("published") or summary.get("published") or []
    summary["datasets"] = present
    summary["model_configs"] = {m: model_cfgs.get(m, {}) for m in model_names}
    summary["dataset_info"] = info
    summary.setdefault("store", str(store.root))
    return ReportContext(
        results=results,
        artifacts=artifacts,
        output_dir=out_dir,
        datasets=info,
        models={m: model_cfgs.get(m, {}) for m in model_names},
        study=summary,
    )


def protocols_table(ctx: ReportContext) -> Table | None:
    """One row per measure: its paper and parameters, as the study recorded them."""
    protocols = ctx.study.get("protocols") or {}
    if not protocols:
        return None
    rows = [
        [
            name,
            p.get("paper") or "-",
            ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(p.get("parameters", {}).items()))
            or "-",
        ]
        for name, p in protocols.items()
    ]
    return Table("Measure protocols", ["measure", "paper", "parameters"], rows)


def _names(plan: Mapping[str, Any], summary: Mapping[str, Any], key: str) -> list[str] | None:
    """The study's model or dataset names: from its plan, else from an earlier report."""
    if plan.get(key) is not None:
        return list(plan[key])
    return list(summary[key]) if summary.get(key) is not None else None


# ----------------------------------------------------------------------------- tables
_ROLE_RANK = {
    r: i
    for i, r in enumerate(
        (
            "id",
            "model",
            "v2",
            "corrupt",
            "natural",
            "sketch",
            "rendition",
            "cue_conflict",
            "spurious",
            "adversarial",
            "other",
            "train",
        )
    )
}


def _column_order(ctx: ReportContext, cols: Sequence[str]) -> list[str]:
    order = {d: i for i, d in enumerate(ctx.datasets)}

    def key(c: str) -> tuple:
        d, mn = c.split("|", 1)
        base = d.removesuffix(" (mean)")
        role = "model" if d == "*" else ("corrupt" if d.endswith(" (mean)") else ctx.role(d))
        return (_ROLE_RANK.get(role, 99), order.get(base, len(order)), base, mn)

    return sorted(cols, key=key)


def model_tables(ctx: ReportContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(collapsed, full) per-model tables: rows = models, columns = ``dataset|measure.name``.

    In the collapsed table every corruption family (``world/corrupt/<type>/<severity>``) is
    replaced by its mean per measure name, column ``world/corrupt (mean)|measure.name``.
    """
    full = wide_table(ctx.results).set_index("model")
    full = full.reindex(index=[m for m in ctx.models if m in full.index] or full.index)
    full = full[_column_order(ctx, list(full.columns))]
    collapsed: dict[str, pd.Series] = {}
    groups: dict[str, list[str]] = {}
    for c in full.columns:
        d, mn = c.split("|", 1)
        if ctx.role(d) == "corrupt":
            tags = ctx.datasets.get(d, {}).get("tags")
            groups.setdefault(f"{corrupt_group(d, tags)} (mean)|{mn}", []).append(c)
        else:
            collapsed[c] = full[c]
    for g, cs in groups.items():
        if not g.endswith(("|accuracy.n",)):
            collapsed[g] = full[cs].mean(axis=1)
    coll = pd.DataFrame(collapsed, index=full.index)
    coll = coll[_column_order(ctx, list(coll.columns))]
    return coll, full


def _cell(v: Any, name: str) -> str:
    """A numeric table cell: counts with thousands separators, very large or small values in
    three significant digits, the rest with three decimals; ``n/a`` if not a number."""
    if not is_number(v):
        return "<td class='na' data-v=''>n/a</td>"
    f = float(v)
    if name == "n" or name.startswith("n_") or (f.is_integer() and abs(f) >= 100):
        txt = f"{f:,.0f}"
    elif abs(f) >= 1000 or (f != 0 and abs(f) < 1e-3):
        txt = f"{f:.3g}"
    else:
        txt = f"{f:.3f}"
    return f"<td data-v='{f!r}'>{txt}</td>"


def table_html(df: pd.DataFrame, table_id: str, strip: str = "world/") -> str:
    """A sortable, filterable HTML table of a per-model table (index = model)."""
    measures = sorted({c.split("|", 1)[1].split(".")[0] for c in df.columns})
    datasets = list(dict.fromkeys(c.split("|", 1)[0] for c in df.columns))
    opts = "".join(f"<option value='|{esc(m)}.'>measure: {esc(m)}</option>" for m in measures)
    opts += "".join(
        f"<option value='{esc(d)}|'>dataset: {esc(short(d, strip))}</option>" for d in datasets
    )
    tools = (
        f"<div class='tools'><input type='search' class='col-filter' data-table='{table_id}' "
        "placeholder='filter columns: e.g. ece  sketch  corrupt' aria-label='filter columns'>"
        f"<select class='col-group' data-table='{table_id}' aria-label='column group'>"
        f"<option value=''>all columns</option>{opts}</select>"
        f"<input type='search' class='row-filter' data-table='{table_id}' "
        "placeholder='filter models' aria-label='filter models'>"
        f"<span class='count' id='{table_id}-count'>{df.shape[0]} models x {df.shape[1]} "
        "columns</span></div>"
    )
    head = ["<th data-col='model' data-type='text' class='sticky' tabindex='0'>model</th>"]
    for c in df.columns:
        d, mn = c.split("|", 1)
        label = short(d, strip)
        head.append(
            f"<th data-col='{esc(c)}' tabindex='0' title='{esc(c)}'>"
            f"<span class='ds'>{esc(label)}</span><br>{esc(mn)}</th>"
        )
    names = [c.split("|", 1)[1].split(".", 1)[-1] for c in df.columns]
    body = []
    for model, row in df.iterrows():
        cells = "".join(_cell(v, n) for v, n in zip(row.to_numpy(), names, strict=True))
        body.append(f"<tr><th class='sticky' data-v='{esc(model)}'>{esc(model)}</th>{cells}</tr>")
    return (
        f"{tools}<div class='table-wrap'><table class='sortable results' id='{table_id}'>"
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</div>"
    )


# ----------------------------------------------------------------------------- page
_CSS = """
:root{--fg:#1d2330;--muted:#5b6474;--line:#dde1e8;--bg:#fff;--soft:#f5f7fa;--accent:#2458a6}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg);margin:0}
main{max-width:1320px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:21px;margin:38px 0 10px;padding-top:10px;
border-top:2px solid var(--line)}h3{font-size:17px;margin:24px 0 8px}
.sub{color:var(--muted);margin:0 0 16px}
nav.toc{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 14px;
margin:14px 0;display:flex;flex-wrap:wrap;gap:4px 18px}nav.toc a{color:var(--accent);
text-decoration:none;white-space:nowrap}nav.toc a:hover{text-decoration:underline}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 14px;
min-width:140px}.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:13px}
img.plot{display:block;max-width:100%;height:auto;margin:12px 0;border:1px solid var(--line);
border-radius:4px;background:#fff}
.table-wrap{overflow:auto;max-height:70vh;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
thead th{position:sticky;top:0;background:#eef1f6;z-index:2;cursor:pointer;vertical-align:bottom;
text-align:right;font-weight:600}
thead th .ds{color:var(--muted);font-weight:400;font-size:12px}
th.sticky{position:sticky;left:0;background:#fff;text-align:left;z-index:1}
thead th.sticky{z-index:3;background:#eef1f6}
tbody tr:nth-child(even) td,tbody tr:nth-child(even) th.sticky{background:#fafbfc}
tbody tr:hover td,tbody tr:hover th.sticky{background:#eaf1fb}
th.asc::after{content:" \\25B2";font-size:10px}th.desc::after{content:" \\25BC";font-size:10px}
td.na{color:#aab}.hidden{display:none}
table.compact td,table.compact th{text-align:left}
.table-scroll{overflow-x:auto;max-width:100%}
table.data th,table.data td{text-align:left;white-space:normal}
table.data td.num{text-align:right;white-space:nowrap}
table.dataframe{border:1px solid var(--line);margin:8px 0}
table.dataframe td,table.dataframe th{border:0;border-bottom:1px solid var(--line)}
table.kv td:first-child{color:var(--muted);text-align:left}table.kv td{text-align:left}
.tools{display:flex;gap:8px;align-items:center;margin:8px 0;flex-wrap:wrap}
.tools input,.tools select{font:inherit;padding:4px 8px;border:1px solid #c3c9d4;
border-radius:4px}.tools input.col-filter{min-width:330px}.tools .count{color:var(--muted);
font-size:13px}
details{margin:10px 0}summary{cursor:pointer;color:var(--accent)}
.section-error{border:2px solid #c62828;background:#fdecea;border-radius:6px;padding:10px 14px;
margin:12px 0}.section-error pre{white-space:pre-wrap;font-size:12px;max-height:300px;
overflow:auto}
.warn{background:#fff6e0;border-left:4px solid #e0a800;padding:6px 12px}
.note{color:var(--muted)}
code{background:var(--soft);padding:1px 4px;border-radius:3px;font-size:13px}
footer{color:var(--muted);font-size:13px;margin-top:40px}
"""

# Records script errors before anything else runs; read by robustlens.report.browser.
_HEAD_JS = """
window.__rlErrors=[];
window.addEventListener('error',function(e){window.__rlErrors.push(String(e.message||e));});
(function(){var ce=console.error;console.error=function(){try{window.__rlErrors.push(
Array.prototype.map.call(arguments,String).join(' '));}catch(x){}
return ce.apply(console,arguments);};})();
"""

_BODY_JS = """
(function(){
function val(cell,type){var v=cell.getAttribute('data-v');
 if(type==='text')return (v===null?cell.textContent:v).toLowerCase();
 if(v===null||v==='')return null;var f=parseFloat(v);return isNaN(f)?null:f;}
function sortBy(th){var table=th.closest('table');var idx=Array.prototype.indexOf.call(
 th.parentNode.children,th);var type=th.getAttribute('data-type')||'num';
 var dir;if(th.classList.contains('asc'))dir=-1;else if(th.classList.contains('desc'))dir=1;
 else dir=type==='text'?1:-1;
 Array.prototype.forEach.call(th.parentNode.children,function(h){h.classList.remove('asc','desc');});
 th.classList.add(dir>0?'asc':'desc');var body=table.tBodies[0];
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=val(a.cells[idx],type),y=val(b.cells[idx],type);
  if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
  return x<y?-dir:x>y?dir:0;});
 rows.forEach(function(r){body.appendChild(r);});}
document.querySelectorAll('table.sortable thead th').forEach(function(th){
 th.addEventListener('click',function(){sortBy(th);});
 th.addEventListener('keydown',function(e){if(e.key==='Enter'){sortBy(th);}});});
function filterCols(id){var table=document.getElementById(id);if(!table)return;
 var text=(document.querySelector('.col-filter[data-table="'+id+'"]')||{}).value||'';
 var group=(document.querySelector('.col-group[data-table="'+id+'"]')||{}).value||'';
 var terms=text.toLowerCase().split(/\\s+/).filter(Boolean);
 var heads=table.tHead.rows[0].cells;var show=[];var n=0;
 for(var i=0;i<heads.length;i++){var col=(heads[i].getAttribute('data-col')||'').toLowerCase();
  var ok=i===0||((!group||col.indexOf(group.toLowerCase())>=0)&&terms.every(function(t){
   return col.indexOf(t)>=0;}));show.push(ok);if(ok&&i>0)n++;
  heads[i].classList.toggle('hidden',!ok);}
 Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
  for(var i=0;i<r.cells.length;i++)r.cells[i].classList.toggle('hidden',!show[i]);});
 var c=document.getElementById(id+'-count');if(c)c.textContent=
  table.tBodies[0].querySelectorAll('tr:not(.hidden)').length+' models x '+n+' columns';}
function filterRows(id){var table=document.getElementById(id);if(!table)return;
 var q=(document.querySelector('.row-filter[data-table="'+id+'"]').value||'').toLowerCase();
 Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
  r.classList.toggle('hidden',q&&r.cells[0].textContent.toLowerCase().indexOf(q)<0);});
 filterCols(id);}
document.querySelectorAll('.col-filter,.col-group').forEach(function(el){
 el.addEventListener('input',function(){filterCols(el.getAttribute('data-table'));});});
document.querySelectorAll('.row-filter').forEach(function(el){
 el.addEventListener('input',function(){filterRows(el.getAttribute('data-table'));});});
window.addEventListener('load',function(){
 var imgs=document.querySelectorAll('img.plot');var ok=0;
 imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0)ok++;});
 document.body.dataset.plots=String(ok);document.body.dataset.plotsTotal=String(imgs.length);
 document.body.dataset.errors=JSON.stringify(window.__rlErrors||[]);
 document.body.dataset.ready='1';});
})();
"""


def faults_html(ctx: ReportContext) -> str | None:
    """What the study left out: measures not computed for a failed model (with the reason),
    damaged arrays that were recomputed, and every skipped file of every dataset with its
    reason. ``None`` when there is nothing to say."""
    st = ctx.study
    failures = st.get("failures") or []
    incidents = st.get("incidents") or []
    skipped = {d: items for d, items in (st.get("skipped") or {}).items() if items}
    if not (failures or incidents or skipped):
        return None
    out = []
    if failures:
        also = " (its other datasets were computed)"
        rows = [
            [
                f["model"],
                f["measure"],
                ", ".join(f["datasets"]),
                f["reason"] + (also if f.get("other_datasets_computed") else ""),
            ]
            for f in failures
        ]
        out.append(
            "<p>These measures were <b>not computed</b> for these models: the model's outputs "
            "were not finite, so no number of it is shown or stored there.</p>"
            + Table("Failed", ["model", "measure", "datasets", "reason"], rows).to_html()
        )
    if incidents:
        out.append(
            "<p>Damaged arrays found in the store were quarantined and recomputed:</p><ul>"
            + "".join(f"<li>{esc(i)}</li>" for i in incidents)
            + "</ul>"
        )
    for dataset, items in skipped.items():
        rows = [[str(i), str(r)] for i, r in items]
        out.append(
            f"<details><summary>{esc(dataset)}: {len(items)} file(s) skipped (left out of "
            "every number)</summary>"
            + Table(f"Skipped in {dataset}", ["file", "reason"], rows).to_html()
            + "</details>"
        )
    return "".join(out)


def _slug(title: str) -> str:
    s = "".join(ch.lower() if ch.isalnum() else "-" for ch in title)
    return "-".join(p for p in s.split("-") if p) or "section"


def _error_box(err: SectionError) -> str:
    return (
        f"<div class='section-error' data-section-error='{esc(err.title)}'>"
        f"<b>Section {esc(err.title)!s} failed:</b> {esc(err.message)}"
        f"<details><summary>traceback</summary><pre>{esc(err.traceback)}</pre>"
        "</details></div>"
    )


def _summary_html(ctx: ReportContext, links: dict[str, str]) -> str:
    st = ctx.study
    measures = sorted(ctx.results["measure"].unique())
    cards = [
        (len(ctx.models), "models"),
        (len(ctx.datasets), "datasets"),
        (len(measures), "measures"),
        (len(ctx.results), "numbers"),
    ]
    images, decoded, passes = st.get("images"), st.get("images_decoded"), st.get("forward_passes")
    if images:
        cards.append((f"{images:,}", "images in the datasets"))
    if decoded is not None:
        cards.append((f"{decoded:,}", "images decoded"))
    if passes is not None:
        cards.append((f"{passes:,}", "forward passes"))
    out = ["<div class='cards'>"]
    out += [f"<div class='card'><b>{v}</b><span>{esc(k)}</span></div>" for v, k in cards]
    out.append("</div>")
    kv = [
        ("measures", ", ".join(measures)),
        (
            "models",
            ", ".join(ctx.models)
            if len(ctx.models) <= 30
            else f"{', '.join(list(ctx.models)[:30])}, ... ({len(ctx.models)} in all)",
        ),
    ]
    roles: dict[str, int] = {}
    for info in ctx.datasets.values():
        roles[info.get("role", "other")] = roles.get(info.get("role", "other"), 0) + 1
    kv.append(("datasets by role", ", ".join(f"{r}: {n}" for r, n in roles.items())))
    if passes is not None and images:
        n_models = max(1, len(ctx.models))
        if passes == 0:
            kv.append(("cost", "every number was answered from the store (no forward pass)"))
        else:
            kv.append(
                (
                    "cost",
                    f"{passes / images:.2f} forward passes per image "
                    f"({passes / (images * n_models):.2f} per image and model, all views); "
                    f"{decoded / images:.2f} decodes per image",
                )
            )
    stages = st.get("stage_seconds") or {}
    if stages:
        forward = st.get("forward_seconds")
        timings = [
            f"{k} {duration(v)}"
            + (f" (forward passes {duration(forward)})" if k == "engine" and forward else "")
            for k, v in stages.items()
        ]
        kv.append(("stage timings", ", ".join(timings)))
    n_skipped = sum(len(v) for v in (st.get("skipped") or {}).values())
    if n_skipped:
        kv.append(("skipped files", f"{n_skipped} (listed below, under Skipped files)"))
    failures = st.get("failures") or []
    if failures:
        models = sorted({f["model"] for f in failures})
        kv.append(("failed", f"{len(failures)} measure(s) of {', '.join(models)} (see below)"))
    if links:
        kv.append(
            (
                "exports",
                " &middot; ".join(f"<a href='{esc(h)}'>{esc(n)}</a>" for n, h in links.items()),
            )
        )
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{v if k == 'exports' else esc(v)}</td></tr>" for k, v in kv
    )
    out.append(f"<table class='kv'>{rows}</table>")
    return "".join(out)


def _model_results_html(ctx: ReportContext) -> str:
    """The per-model results: the collapsed table, and the full one when it differs."""
    coll, full = model_tables(ctx)
    n_corrupt = sum(1 for d in ctx.datasets.values() if d.get("role") == "corrupt")
    tbl = (
        "<p>One row per model, one column per <code>dataset | measure.name</code>. Click "
        "a header to sort; type in the box to show only matching columns (all words "
        "must match)."
    )
    if n_corrupt:
        tbl += (
            f" The {n_corrupt} corruption datasets are collapsed to their mean per "
            "measure; the full table is below."
        )
    tbl += "</p>" + table_html(coll, "t-models")
    if full.shape[1] != coll.shape[1]:
        tbl += (
            f"<details><summary>Full table: all {full.shape[1]} columns</summary>"
            f"{table_html(full, 't-full')}</details>"
        )
    return tbl


def _protocols_html(ctx: ReportContext) -> str | None:
    protocols = protocols_table(ctx)
    if protocols is None:
        return None
    return (
        "<p>What each measure's numbers mean: the paper whose protocol it follows and "
        "every parameter that moves its numbers (also in <code>plan.json</code>).</p>"
        + protocols.to_html()
    )


def _qualified(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def render_report(
    ctx: ReportContext,
    title: str | None = None,
    links: dict[str, str] | None = None,
    *,
    cache: Store | None = None,
    skip: Sequence[Path] = (),
    parallel: bool | None = None,
    stats: dict[str, int] | None = None,
) -> tuple[str, list[SectionError]]:
    """Render the whole page; returns (html, errors of the sections that failed).

    Args:
        ctx: what the sections read.
        title: the page title (default from the study name).
        links: ``{name: href}`` of the exports, listed in the summary.
        cache: the store that keeps each part's HTML by its code and inputs
            (:mod:`robustlens.report.fragments`): an unchanged part is read back, not drawn
            again. ``None``: every part is drawn.
        skip: files of the output directory that are not inputs of any part.
        parallel: draw missing parts in worker processes when several are missing
            (default: when ``cache`` is given, as :func:`write_report` does).
        stats: filled with ``{"drawn": n, "reused": n}``, the parts drawn and read back.
    """
    errors: list[SectionError] = []
    title = title or f"robustlens report: {ctx.study.get('name') or 'study'}"
    sections = report_sections()
    drawable = [Part("per-model-results", "Per-model results", _model_results_html)]
    drawable += [Part(_slug(s.title), s.title, s.render) for s in sections]
    drawable.append(Part("what-predicts", "What predicts robustness here", what_predicts_html))
    registry = [[s.title, s.order, _qualified(s.render)] for s in sections]
    parallel = cache is not None if parallel is None else parallel
    fragments = FragmentCache(cache, ctx, skip=skip, parallel=parallel)
    drawn = fragments.draw_all(drawable, registry)
    if stats is not None:
        stats.update(drawn=fragments.drawn, reused=fragments.reused)

    def html_of(d: Drawn) -> str | None:
        if d.error is None:
            return d.html
        err = SectionError(d.part.title, *d.error)
        errors.append(err)
        return _error_box(err)

    parts: list[tuple[str, str, str]] = []  # (id, title, html)
    first, *by_section, last = drawn
    parts.append((first.part.id, first.part.title, html_of(first) or ""))
    faults = faults_html(ctx)
    if faults:
        parts.append(("skipped-files", "Skipped files and failures", faults))
    protocols = _protocols_html(ctx)
    if protocols is not None:
        parts.append(("protocols", "Protocols", protocols))
    for d in by_section:
        frag = html_of(d)
        if frag:
            parts.append((d.part.id, d.part.title, frag))
    parts.append((last.part.id, last.part.title, html_of(last) or ""))
    toc = "".join(f"<a href='#{i}'>{esc(t)}</a>" for i, t, _ in parts)
    body = "".join(f"<section id='{i}'><h2>{esc(t)}</h2>{h}</section>" for i, t, h in parts)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style><script>{_HEAD_JS}</script>"
        f"</head><body><main><h1>{esc(title)}</h1>"
        f"<p class='sub'>Generated {when} by robustlens {esc(__version__)} from the "
        f"store at <code>{esc(ctx.study.get('store', ''))}</code>. Static page: "
        "no network needed.</p>"
        f"{_summary_html(ctx, links or {})}<nav class='toc'>{toc}</nav>{body}"
        "<footer>Correlations are Spearman rank correlations across models; cells and claims "
        "with p &ge; 0.05 are marked as not significant. Per-sample outputs: "
        "<code>per_sample/&lt;model&gt;.parquet</code>.</footer>"
        f"</main><script>{_BODY_JS}</script></body></html>"
    )
    return page, errors


def line_summaries(ctx: ReportContext, cache: bool = True) -> list[Table]:
    """The research lines' short tables (``Line.summaries``, e.g. the validity table), each
    kept in the study's store like a part of the page (:mod:`robustlens.report.fragments`):
    with the same code and inputs it is read back, not computed again. A summary that fails
    raises its error, as it would uncached."""
    summaries = [s for line in lines() for s in line.summaries]
    parts = [Part(f"summary:{_qualified(s)}", _qualified(s), s, kind="table") for s in summaries]
    store = _fragment_store(ctx) if cache else None
    skip = [Path(ctx.output_dir) / SUMMARY_FILE]
    drawn = FragmentCache(store, ctx, skip=skip, parallel=False).draw_all(parts)
    tables = []
    for summary, d in zip(summaries, drawn, strict=True):
        if d.error is not None:
            table = summary(ctx)  # raises the summary's own error here
        else:
            table = None if d.html is None else Table.from_json(d.html)
        if table is not None:
            tables.append(table)
    return tables


def _fragment_store(ctx: ReportContext) -> Store | None:
    """The study's store, which keeps the report's fragments (``None`` if it cannot open)."""
    try:
        return Store(ctx.study["store"])
    except (KeyError, StoreError):
        return None


def _export(store: Store, out_dir: Path, models: list[str], cache: Store | None) -> dict[str, Path]:
    """:func:`export_results`, unless the files it wrote last time for the same results,
    plan and code are all still there, byte for byte (then their paths)."""
    builds = list(_exports.LINE_EXPORTS.items())
    if cache is None or any(code_digest(b) is None for _, b in builds):
        return export_results(store, out_dir, models)
    plan = Path(out_dir) / "plan.json"
    key = hashlib.sha256(
        json.dumps(
            [
                package_digest(cache),
                [[n, _qualified(b)] for n, b in builds],
                results_digest(store.results(models=models)),
                cache.file_digest(plan) if plan.is_file() else None,
                str(Path(out_dir).resolve()),
                models,
                store.scope,
            ],
            default=str,
        ).encode()
    ).hexdigest()
    with contextlib.suppress(ValueError, TypeError, OSError):
        kept = json.loads(cache.memo("report-exports", key) or "null")
        if kept:
            paths = {name: Path(p) for name, (p, _) in kept.items()}
            digests = cache.file_digests(list(paths.values()))
            if digests == [d for _, d in kept.values()]:
                return paths
    paths = export_results(store, out_dir, models)
    with contextlib.suppress(OSError, StoreError):
        digests = cache.file_digests(list(paths.values()))
        cache.put_memo(
            "report-exports",
            key,
            json.dumps({n: [str(p), d] for (n, p), d in zip(paths.items(), digests, strict=True)}),
        )
    return paths


def write_report(
    result_or_dir: Any,
    out_path: str | os.PathLike[str] | None = None,
    *,
    store: Any = None,
    config: Any = None,
    models: Sequence[str] | None = None,
    title: str | None = None,
    stages: dict[str, float] | None = None,
    export: bool = True,
    strict: bool = False,
    cache: bool = True,
    stats: dict[str, int] | None = None,
) -> Path:
    """Write the HTML report of a study and return its path.

    Args:
        result_or_dir: a :class:`robustlens.study.StudyResult`, or the study output directory
            (then ``store`` or ``config`` says where the results are, unless an earlier report
            recorded it in ``study_summary.json``).
        out_path: the HTML file (default ``<output dir>/report.html``).
        store: the store or its directory (only with an output directory).
        config: the study config (exact dataset roles and model recipes).
        models: restrict to these models.
        title: page title (default from the study name).
        stages: extra stage timings in seconds to show (e.g. world, zoo, report).
        export: also write the CSV/Parquet exports next to the report.
        strict: raise :class:`RobustlensError` (after writing the file) when a section failed.
        cache: keep each part of the page in the study's store, keyed by the code that draws
            it and the data it reads, and read back the unchanged ones instead of drawing
            them again (:mod:`robustlens.report.fragments`).
        stats: filled with ``{"drawn": n, "reused": n}`` (parts drawn, parts read back).
    """
    ctx = build_report_context(result_or_dir, store=store, config=config, models=models)
    if stages:
        ctx.study["stage_seconds"] = {**ctx.study.get("stage_seconds", {}), **stages}
    out_dir = ctx.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(out_path) if out_path is not None else out_dir / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    fragments = _fragment_store(ctx) if cache else None
    if export:
        st = study_store(ctx.study["store"], ctx.study)
        for name, p in _export(st, out_dir, list(ctx.models), fragments).items():
            if name.endswith(".csv"):
                links[name] = os.path.relpath(p, path.parent)
    summary = {k: v for k, v in ctx.study.items()}
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str))
    page, errors = render_report(
        ctx, title, links, cache=fragments, skip=[out_dir / SUMMARY_FILE, path], stats=stats
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    if errors:
        msg = "; ".join(f"{e.title}: {e.message}" for e in errors)
        if strict:
            raise RobustlensError(f"report {path} written, but sections failed: {msg}")
        warnings.warn(f"report sections failed (shown as error boxes): {msg}", stacklevel=2)
    return path
