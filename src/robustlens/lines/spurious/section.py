"""Report section "Spurious features": score vs ground truth, SpuFix, neural-PCA image grids.

The section reads results and the files already in the output directory; it never opens a
dataset. The image grids are written beforehand by ``robustlens spurious``
(:func:`robustlens.lines.spurious.grids.render_component_grids`) under
``output_dir/spurious/`` with the index ``grids.json``; the section embeds whatever PNGs it
finds there (base64) and says so when there are none.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd

from robustlens.formatting import esc, number, p_eq
from robustlens.lines.spurious.analysis import (
    GROUND_TRUTH,
    score_vs_ground_truth,
    spufix_effect,
    spurious_table,
)
from robustlens.lines.spurious.grid_files import INDEX_FILE, grid_folder
from robustlens.lines.spurious.tables import correlation_table, model_table, spufix_table
from robustlens.report.context import ReportContext, figure_html

__all__ = ["protocol_html", "spurious_section"]

INTRO = (
    "<p>Neural PCA of each class logit and the spurious score of Neuhaus et al. "
    "(ICCV 2023): the average precision of the class probability separating real class "
    "images from spurious-only images (the class's spurious feature without its object), "
    "mean over classes. <b>High score = less spurious</b>; reliance = 1 − score. "
    "SpuFix removes the positive part of the components flagged as spurious (flagged "
    "automatically: the components that raise the class logit on spurious-only images "
    "beyond in-class images). The components are chosen on a selection part of each "
    "class's spurious-only and in-class images, and SpuFix's before / after numbers are "
    "computed on the disjoint evaluation part, so that they are not measured on the images "
    "that chose the components.</p>"
)


def protocol_html(artifacts: dict[str, dict[str, Any]]) -> str | None:
    """The spurious measure's recorded protocol (name, paper, parameters), one line per
    distinct parameter set, naming the models that used it; ``None`` without one.

    Example:
        >>> art = {"m": {"spurious": {"protocol": {"name": "p", "paper": "X 2023",
        ...                                        "parameters": {"split_seed": 0}}}}}
        >>> protocol_html(art)
        '<p>Protocol <b>p</b> (X 2023): split_seed = 0 (models: m)</p>'
    """
    groups: dict[str, list[str]] = {}
    for model in sorted(artifacts):
        protocol = (artifacts[model] or {}).get("spurious", {}).get("protocol")
        if not isinstance(protocol, dict):
            continue
        params = protocol.get("parameters") or {}
        line = (
            f"Protocol <b>{esc(protocol.get('name', '?'))}</b> ({esc(protocol.get('paper', ''))})"
            f": {esc(', '.join(f'{k} = {v}' for k, v in params.items()))}"
        )
        groups.setdefault(line, []).append(model)
    if not groups:
        return None
    return "\n".join(
        f"<p>{line} (models: {esc(', '.join(models))})</p>" for line, models in groups.items()
    )


def _png_html(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _captions(index: Path) -> dict[str, str]:
    """PNG file name -> caption, from ``grids.json`` (empty when missing or unreadable)."""
    if not index.is_file():
        return {}
    captions: dict[str, str] = {}
    try:
        for e in json.loads(index.read_text()):
            flagged = ", ".join(f"c{c}" for c in e.get("flagged", [])) or "none"
            captions[e["file"]] = (
                f"{e['model']} — class {e['class_name']} ({e['class_index']}) on "
                f"{e['dataset']}: AP {number(e['ap'])}; flagged components: {flagged}"
            )
    except (ValueError, KeyError, TypeError):
        return {}
    return captions


def _grids_html(output_dir: Path) -> str:
    folder = grid_folder(output_dir)
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pngs:
        return (
            f"<p>No neural-PCA image grids in <code>{esc(folder)}</code>: the "
            "report holds no dataset pixels; run <code>robustlens spurious STUDY</code> "
            "to write them, then rebuild the report.</p>"
        )
    captions = _captions(folder / INDEX_FILE)
    parts = []
    for p in pngs:
        cap = captions.get(p.name, p.stem)
        parts.append(f"<figure>{_png_html(p, cap)}<figcaption>{esc(cap)}</figcaption></figure>")
    return "\n".join(parts)


def _scatter(table: pd.DataFrame, corr: pd.DataFrame) -> str | None:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    if GROUND_TRUTH not in table.columns or "spurious_score" not in table.columns:
        return None
    t = table[[GROUND_TRUTH, "spurious_score"]].dropna()
    if t.empty:
        return None
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.subplots()
    ax.scatter(t[GROUND_TRUTH], t["spurious_score"], color="tab:purple")
    for name, row in t.iterrows():
        ax.annotate(
            str(name),
            (row[GROUND_TRUTH], row["spurious_score"]),
            fontsize=6,
            xytext=(3, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("training mark rate (ground truth)")
    ax.set_ylabel("spurious score (AP; high = less spurious)")
    row = corr[corr["metric"] == "spurious_score"] if len(corr) else corr
    if len(row):
        r = row.iloc[0]
        ax.set_title(
            f"Spearman ρ = {number(r['coefficient'], 2)} ({p_eq(r['p_value'])}, n = {int(r['n'])})",
            fontsize=9,
        )
    return figure_html(fig, "spurious score vs training mark rate")


def spurious_section(ctx: ReportContext) -> str | None:
    """Spurious score vs mark rate, SpuFix before/after, and neural-PCA image grids."""
    table = spurious_table(ctx.results)
    if table.empty:
        return None
    corr = score_vs_ground_truth(ctx.results)
    parts = [INTRO]
    scatter = _scatter(table, corr)
    if scatter:
        parts.append(scatter)
    if len(corr):
        parts.append(correlation_table(corr).to_html())
    parts.append(model_table(table).to_html())
    parts.append(spufix_table(spufix_effect(ctx.results)).to_html())
    protocol = protocol_html(ctx.artifacts or {})
    if protocol:
        parts.append(protocol)
    parts.append("<h4>Neural-PCA components: top-activating images</h4>")
    parts.append(_grids_html(ctx.output_dir))
    return "\n".join(parts)
