"""Core report section: generalization overview, the generic correlation heatmap, and the
"what predicts robustness here" summary.

Everything is computed from the long results table of the study (one number per model,
dataset, measure and name), so it works for any set of measures:

* Generalization overview: accuracy of every model on every dataset, grouped by role (the
  corruption datasets collapsed to their mean), and corruption accuracy against severity.
* Correlation heatmap: Spearman rank correlation across models between each measure taken
  on in-distribution data and each OOD accuracy. Cells whose p-value is not below
  alpha = 0.05 are shown as 0 (the convention of Gavrikov et al., "Can Biases in ImageNet
  Models Explain Generalization?", CVPR 2024); the true coefficient is printed in the cell.
* What predicts robustness: the same correlations restricted to label-free measures
  (invariance, label_free, clustering, biases, spurious), ranked by |rho| (the model-centric
  view of Deng et al., "On the Strong Correlation Between Model Invariance and
  Generalization", NeurIPS 2022).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import TABLE_COLUMNS, correlation_table
from robustlens.formatting import esc, is_number, p_eq, p_value, short, signed
from robustlens.report.context import ReportContext, annotate_points, figure_html
from robustlens.report.exports import wide_table
from robustlens.roles import corrupt_group
from robustlens.tables import Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "LABEL_FREE_FAMILIES",
    "MIN_MODELS",
    "class_space_table",
    "correlations",
    "generalization_overview",
    "ood_targets",
    "predictor_columns",
    "predictor_table",
    "summary_targets",
    "what_predicts_html",
]

ALPHA = 0.05
MIN_MODELS = 5  # below this a rank correlation across models says little; we say so
LABEL_FREE_FAMILIES = ("invariance", "label_free", "clustering", "biases", "spurious")
# roles whose accuracy is a generalization number, in display order
ROLE_ORDER = ("id", "v2", "corrupt", "natural", "sketch", "rendition", "cue_conflict", "other")
_COUNT_NAMES = ("n",)
_MAX_HEATMAP_ROWS = 40
_MAX_LEGEND_MODELS = 10


# ----------------------------------------------------------------------------- tables
def _is_count(name: str) -> bool:
    return name in _COUNT_NAMES or name.startswith("n_")


def _group(ctx: ReportContext, dataset: str) -> str:
    """The group a corruption dataset is averaged into (``world/corrupt``), by its tags."""
    return corrupt_group(dataset, ctx.datasets.get(dataset, {}).get("tags"))


def _accuracy(ctx: ReportContext) -> pd.DataFrame:
    """Models x datasets accuracy (measure ``accuracy``, name ``accuracy``)."""
    df = ctx.results
    df = df[(df["measure"] == "accuracy") & (df["name"] == "accuracy")]
    if df.empty:
        return pd.DataFrame()
    return df.pivot_table(index="model", columns="dataset", values="value", aggfunc="first")


def ood_targets(ctx: ReportContext, per_dataset: bool = True) -> pd.DataFrame:
    """OOD accuracies, one row per model.

    Columns: ``<group> corruptions (mean acc)`` (mean over all types and severities of a
    corruption family), then the accuracy on each dataset of role v2, natural, sketch and
    rendition (``per_dataset``) or the mean per role (``per_dataset=False``, columns named
    ``sketch acc`` etc.).
    """
    acc = _accuracy(ctx)
    out = pd.DataFrame(index=acc.index)
    if acc.empty:
        return out
    groups: dict[str, list[str]] = {}
    for d in ctx.datasets_with_role("corrupt"):
        if d in acc.columns:
            groups.setdefault(_group(ctx, d), []).append(d)
    if per_dataset:
        for g, ds in groups.items():
            out[f"{g} (mean acc)"] = acc[ds].mean(axis=1)
    elif groups:
        out["corruption acc"] = acc[[d for ds in groups.values() for d in ds]].mean(axis=1)
    for role in ("v2", "natural", "sketch", "rendition"):
        ds = [d for d in ctx.datasets_with_role(role) if d in acc.columns]
        if not ds:
            continue
        if per_dataset:
            for d in ds:
                out[f"{d} acc"] = acc[d]
        else:
            out[f"{role} acc"] = acc[ds].mean(axis=1)
    return out


def summary_targets(ctx: ReportContext) -> pd.DataFrame:
    """The three targets of the summary: mean corruption, sketch and rendition accuracy."""
    t = ood_targets(ctx, per_dataset=False)
    return t[[c for c in ("corruption acc", "sketch acc", "rendition acc") if c in t.columns]]


def predictor_columns(ctx: ReportContext, label_free_only: bool = False) -> list[str]:
    """``dataset|measure.name`` columns usable as predictors of OOD accuracy.

    A predictor is a number measured without OOD labels: any measure on an in-distribution
    (role ``id``) dataset or a model-level number (dataset ``*``); measures of the biases and
    spurious families also on their probe sets (roles ``cue_conflict`` and ``spurious``).
    With ``label_free_only`` only the families in :data:`LABEL_FREE_FAMILIES` count
    (accuracy and ECE on ID data are then left out). Counts (``n``) never count.
    """
    df = ctx.results
    if df.empty:
        return []
    keys = df[["dataset", "measure", "name"]].drop_duplicates()
    cols = []
    for d, m, n in keys.itertuples(index=False):
        if _is_count(n):
            continue
        role = "model" if d == "*" else ctx.role(d)
        ok = role in ("id", "model") or (
            m in ("biases", "spurious") and role in ("cue_conflict", "spurious")
        )
        if label_free_only:  # an accuracy (ID, SpuFix, cluster) needs labels: reference only
            ok = ok and m in LABEL_FREE_FAMILIES and "accuracy" not in n
        elif m == "accuracy":
            ok = ok and role == "id"
        if ok:
            cols.append(f"{d}|{m}.{n}")

    def key(c: str) -> tuple:
        d, mn = c.split("|", 1)
        m, n = mn.split(".", 1)
        return (m != "accuracy", m, n, d)

    return sorted(cols, key=key)


def predictor_table(ctx: ReportContext, columns: list[str]) -> pd.DataFrame:
    """Models x ``dataset|measure.name`` values for the given columns."""
    if not columns:
        return pd.DataFrame(index=ctx.results["model"].unique() if len(ctx.results) else [])
    wide = wide_table(ctx.results).set_index("model")
    return wide.reindex(columns=columns)


def _usable(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop columns with fewer than 3 finite values or no variation; say which."""
    keep, dropped = [], []
    for c in df.columns:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size >= 3 and np.ptp(v) > 0:
            keep.append(c)
        else:
            dropped.append(c)
    return df[keep], dropped


def correlations(
    predictors: pd.DataFrame, targets: pd.DataFrame, n_boot: int = 1000
) -> pd.DataFrame:
    """Spearman correlation (with p-value and bootstrap CI) of every predictor with every
    target across models, as :func:`robustlens.analysis.correlation.correlation_table`."""
    targets = targets.rename(columns=lambda c: f"{c} (target)" if c in predictors.columns else c)
    joined = predictors.join(targets, how="inner")
    ys = list(targets.columns)
    if not len(predictors.columns) or not ys:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    table = correlation_table(
        joined, list(predictors.columns), ys, method="spearman", alpha=ALPHA, n_boot=n_boot
    )
    # With n <= 4 pairs no rank correlation can reach p < 0.05 under the exact permutation
    # test (the smallest two-sided p is 2/4! = 0.083); scipy's t approximation can still
    # print p = 0 for a perfect rank match of 3 models. Never call those significant.
    small = table["n"] < MIN_MODELS
    table.loc[small, "significant"] = False
    table.loc[small, "shown"] = 0.0
    return table


# ----------------------------------------------------------------------------- plotting
def _figure(w: float, h: float) -> Figure:
    from matplotlib.figure import Figure  # lazy: matplotlib costs ~0.4 s, only plots need it

    return Figure(figsize=(w, h), layout="constrained")


def _model_colors(models: list[str]) -> dict[str, Any]:
    if len(models) > _MAX_LEGEND_MODELS:  # too many to tell apart: grey, with a median line
        return {m: "0.55" for m in models}
    from matplotlib import colormaps  # lazy: matplotlib costs ~0.4 s, only plots need it

    cmap = colormaps["tab10"]
    return {m: cmap(i) for i, m in enumerate(models)}


def _accuracy_by_dataset_plot(ctx: ReportContext, acc: pd.DataFrame) -> str | None:
    cats: list[tuple[str, str, pd.Series]] = []  # (role, label, per-model accuracy)
    for role in ROLE_ORDER:
        ds = [d for d in ctx.datasets_with_role(role) if d in acc.columns]
        if role == "corrupt":
            groups: dict[str, list[str]] = {}
            for d in ds:
                groups.setdefault(_group(ctx, d), []).append(d)
            for g, gd in groups.items():
                cats.append((role, f"{short(g)}\n(mean of {len(gd)})", acc[gd].mean(axis=1)))
        else:
            cats.extend((role, short(d), acc[d]) for d in ds)
    if not cats:
        return None
    models = list(acc.index)
    x = np.arange(len(cats))
    fig = _figure(max(6.5, 1.1 * len(cats) + 3), 4.2)
    ax = fig.add_subplot()
    colors = _model_colors(models)
    many = len(models) > _MAX_LEGEND_MODELS
    for m in models:
        y = [float(s.get(m, np.nan)) for _, _, s in cats]
        ax.plot(
            x,
            y,
            marker="o",
            ms=4 if many else 6,
            lw=0.8 if many else 1.6,
            alpha=0.45 if many else 0.9,
            color=colors[m],
            label=None if many else m,
        )
    if many:
        med = [float(np.nanmedian(s.to_numpy(dtype=float))) for _, _, s in cats]
        ax.plot(x, med, color="black", lw=2.5, marker="s", label="median over models")
        ax.plot([], [], color="0.55", lw=0.8, marker="o", ms=4, label=f"{len(models)} models")
    # shade role groups so the grouping reads without a legend
    start = 0
    for i in range(1, len(cats) + 1):
        if i == len(cats) or cats[i][0] != cats[start][0]:
            if (ROLE_ORDER.index(cats[start][0]) % 2) == 0:
                ax.axvspan(start - 0.5, i - 0.5, color="0.93", zorder=0)
            ax.text(
                (start + i - 1) / 2,
                1.02,
                cats[start][0],
                ha="center",
                va="bottom",
                fontsize=9,
                color="0.35",
                transform=ax.get_xaxis_transform(),
            )
            start = i
    ax.set_xticks(
        x,
        [c[1] for c in cats],
        rotation=30 if len(cats) > 6 else 0,
        ha="right" if len(cats) > 6 else "center",
        fontsize=9,
    )
    ax.set_xlim(-0.5, len(cats) - 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("top-1 accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
        frameon=False,
        title="model" if not many else None,
    )
    fig.suptitle("Accuracy of each model on each dataset, grouped by role", fontsize=11)
    return figure_html(fig, "accuracy per model across datasets grouped by role")


def _severity_plot(ctx: ReportContext, acc: pd.DataFrame) -> str | None:
    rows = []
    for d in ctx.datasets_with_role("corrupt"):
        tags = ctx.datasets[d].get("tags", {}) or {}
        if d in acc.columns and "severity" in tags:
            rows.append(
                (_group(ctx, d), str(tags.get("corruption", "?")), int(tags["severity"]), d)
            )
    if not rows:
        return None
    ids = [d for d in ctx.datasets_with_role("id") if d in acc.columns]
    clean = acc[ids].mean(axis=1) if ids else None
    models = list(acc.index)
    colors = _model_colors(models)
    many = len(models) > _MAX_LEGEND_MODELS
    corruptions = sorted({r[1] for r in rows})
    panels = (
        ["mean over corruption types", *corruptions]
        if len(corruptions) <= 24
        else ["mean over corruption types"]
    )
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(3.3 * ncols + 1.6, 2.7 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for k, panel in enumerate(panels):
        ax = axes[k // ncols][k % ncols]
        sel = [r for r in rows if k == 0 or r[1] == panel]
        sevs = sorted({r[2] for r in sel})
        for m in models:
            ys = [float(np.nanmean([acc.at[m, r[3]] for r in sel if r[2] == s])) for s in sevs]
            xs = list(sevs)
            if clean is not None:
                xs, ys = [0, *xs], [float(clean[m]), *ys]
            ax.plot(
                xs,
                ys,
                marker="o",
                ms=3 if many else 4,
                lw=0.8 if many else 1.4,
                alpha=0.45 if many else 0.9,
                color=colors[m],
                label=m if (k == 0 and not many) else None,
            )
        if many:
            med = [
                float(
                    np.nanmedian(
                        [np.nanmean([acc.at[m, r[3]] for r in sel if r[2] == s]) for m in models]
                    )
                )
                for s in sevs
            ]
            xs = list(sevs)
            if clean is not None:
                xs, med = [0, *xs], [float(np.nanmedian(clean.to_numpy(dtype=float))), *med]
            ax.plot(
                xs,
                med,
                color="black",
                lw=2.2,
                marker="s",
                ms=4,
                label=f"median over {len(models)} models" if k == 0 else None,
            )
        ax.set_title(panel, fontsize=10, fontweight="bold" if k == 0 else "normal")
        ax.set_xticks(
            [0, *sevs] if clean is not None else sevs,
            (["clean"] if clean is not None else []) + [str(s) for s in sevs],
            fontsize=8,
        )
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("accuracy")
        if k // ncols == nrows - 1:
            ax.set_xlabel("severity", fontsize=9)
    for k in range(len(panels), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    fig.legend(
        loc="outside right upper", fontsize=8, frameon=False, title=None if many else "model"
    )
    fig.suptitle("Corruption accuracy vs severity (severity 0 = clean ID data)", fontsize=11)
    return figure_html(fig, "corruption accuracy vs severity per model")


def _heatmap(table: pd.DataFrame, title: str, alt: str) -> str:
    shown = table.pivot(index="x", columns="y", values="shown")
    coef = table.pivot(index="x", columns="y", values="coefficient")
    pval = table.pivot(index="x", columns="y", values="p_value")
    xs = list(dict.fromkeys(table["x"]))
    ys = list(dict.fromkeys(table["y"]))
    shown, coef, pval = (t.reindex(index=xs, columns=ys) for t in (shown, coef, pval))
    fig = _figure(max(5.5, 1.45 * len(ys) + 4.5), max(2.6, 0.42 * len(xs) + 1.6))
    ax = fig.add_subplot()
    im = ax.imshow(shown.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(xs)):
        for j in range(len(ys)):
            r, p, s = coef.iat[i, j], pval.iat[i, j], shown.iat[i, j]
            if not np.isfinite(r):
                txt, color = "n/a", "0.4"
            elif s != 0:
                txt, color = f"{r:+.2f}\n{p_eq(p)}", ("white" if abs(r) > 0.6 else "black")
            else:
                txt, color = f"0\n(r={r:+.2f})", "0.45"
            ax.text(j, i, txt, ha="center", va="center", fontsize=7.5, color=color)
    ax.set_xticks(range(len(ys)), [short(y) for y in ys], rotation=25, ha="right", fontsize=8.5)
    if len(xs) > 12:  # a tall map: column names on top as well, where the reader starts
        ax.tick_params(top=True, labeltop=True)
        for tick in ax.xaxis.get_major_ticks():
            tick.label2.set_rotation(25)
            tick.label2.set_horizontalalignment("left")
    ax.set_yticks(range(len(xs)), [short(x) for x in xs], fontsize=8.5)
    ax.set_xticks(np.arange(-0.5, len(ys)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(xs)), minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    height = fig.get_figheight()
    fig.colorbar(im, ax=ax, shrink=min(0.8, 4.0 / height), label="rho (0 where p >= 0.05)")
    ax.set_title(title, fontsize=10.5)
    return figure_html(fig, alt)


def _corr_rows_html(table: pd.DataFrame, limit: int | None = None) -> str:
    t = table.assign(absr=table["coefficient"].abs()).sort_values(
        "absr", ascending=False, na_position="last"
    )
    if limit:
        t = t.head(limit)
    rows = "".join(
        f"<tr><td>{esc(short(r.x))}</td><td>{esc(short(r.y))}</td>"
        f"<td data-v='{_sort_value(r.coefficient)}'>{signed(r.coefficient, 3)}</td>"
        f"<td data-v='{_sort_value(r.p_value)}'>{esc(p_value(r.p_value))}</td>"
        f"<td>[{signed(r.ci_low)}, {signed(r.ci_high)}]</td>"
        f"<td data-v='{r.n}'>{r.n}</td><td>{'yes' if r.significant else 'no'}</td></tr>"
        for r in t.itertuples(index=False)
    )
    return (
        "<table class='sortable compact'><thead><tr><th>measure</th><th>OOD accuracy</th>"
        "<th>Spearman rho</th><th>p</th><th>95% bootstrap CI</th><th>n</th>"
        f"<th>p &lt; {ALPHA}</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _sort_value(v: Any) -> str:
    """The ``data-v`` a sortable cell sorts by: the full ``repr`` of the number, or empty."""
    return repr(float(v)) if is_number(v) else ""


def _per_sample_html(ctx: ReportContext) -> str | None:
    """Reliability of the per-sample confidences on ID data, streamed one model at a time."""
    ids = ctx.datasets_with_role("id")
    if not ids:
        return None
    edges = np.linspace(0, 1, 11)
    stats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    n_files, n_rows, columns = 0, 0, set()
    for model, df in ctx.iter_per_sample(columns=["confidence", "correct"], datasets=ids):
        n_files += 1
        n_rows += len(df)
        columns |= set(df.columns)
        if not {"confidence", "correct"} <= set(df.columns) or df.empty:
            continue
        conf = df["confidence"].to_numpy(dtype=float)
        corr = df["correct"].to_numpy(dtype=float)
        b = np.clip(np.digitize(conf, edges[1:-1]), 0, len(edges) - 2)
        cnt = np.bincount(b, minlength=len(edges) - 1).astype(float)
        stats[model] = (
            cnt,
            np.bincount(b, corr, len(edges) - 1),
            np.bincount(b, conf, len(edges) - 1),
        )
    if not stats:
        return None
    models = list(stats)
    many = len(models) > _MAX_LEGEND_MODELS
    colors = _model_colors(models)
    fig = _figure(6.8, 4.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="perfect calibration")
    if many:  # pool: one curve over all models
        cnt = sum(s[0] for s in stats.values())
        acc = sum(s[1] for s in stats.values())
        cf = sum(s[2] for s in stats.values())
        ok = cnt > 0
        ax.plot(
            cf[ok] / cnt[ok],
            acc[ok] / cnt[ok],
            marker="o",
            color="black",
            label=f"all {len(models)} models pooled",
        )
    else:
        for m, (cnt, acc, cf) in stats.items():
            ok = cnt > 0
            ax.plot(cf[ok] / cnt[ok], acc[ok] / cnt[ok], marker="o", ms=4, color=colors[m], label=m)
    ax.set_xlabel("confidence (mean in bin)")
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    ax.set_title(
        "Reliability on ID data (10 confidence bins, from per-sample outputs)", fontsize=10.5
    )
    img = figure_html(fig, "reliability diagram from per-sample outputs")
    return (
        f"<h3>Per-sample outputs</h3><p>{n_files} per-sample files, {n_rows:,} ID rows read "
        "one model at a time. Read them with <code>robustlens.report.read_per_sample(out_dir,"
        " model)</code> or <code>pandas.read_parquet('per_sample/&lt;model&gt;.parquet')"
        f"</code>.</p>{img}"
    )


# ----------------------------------------------------------------------------- datasets
#: datasets named per row of the class-space table (the rest are counted)
_SHOWN_DATASETS = 8


def class_space_table(datasets: Mapping[str, Mapping[str, Any]]) -> Table | None:
    """The class space each dataset was scored in, one row per class space (report and CLI).

    Args:
        datasets: ``{name: {"role": ..., "class_space": ...}}`` as the study's plan records
            them (``ReportContext.datasets``).

    Returns:
        The table, or ``None`` when no dataset has a recorded class space (an older plan).

    Example:
        >>> t = class_space_table({"world/val": {"class_space": "10 classes"},
        ...                        "imagenet_r": {"class_space": "200 classes: ImageNet-R mask"},
        ...                        "world/v2": {"class_space": "10 classes"}})
        >>> t.cells()
        [['10 classes', '2', 'val, v2'], ['200 classes: ImageNet-R mask', '1', 'imagenet_r']]
    """
    groups: dict[str, list[str]] = {}
    for name, info in datasets.items():
        space = (info or {}).get("class_space")
        if space:
            groups.setdefault(str(space), []).append(name)
    if not groups:
        return None
    rows = []
    for space, names in groups.items():
        shown = ", ".join(short(n) for n in names[:_SHOWN_DATASETS])
        more = f", ... ({len(names)} in all)" if len(names) > _SHOWN_DATASETS else ""
        rows.append([space, len(names), shown + more])
    return Table(
        "Class space",
        ["class space", "datasets", "names"],
        rows,
        caption=(
            "The classes each prediction is an argmax over. By default a dataset is scored "
            "over all of the model's classes (1000-way for ImageNet models); published "
            "protocols restrict (ImageNet-R/-A mask, ObjectNet mapping, cue-conflict "
            "categories), and so does restrict_classes: true in the study file."
        ),
    )


# ----------------------------------------------------------------------------- section
def generalization_overview(ctx: ReportContext) -> str | None:
    """Accuracy across datasets by role, corruption accuracy vs severity, generic heatmap."""
    parts: list[str] = []
    acc = _accuracy(ctx)
    if not acc.empty:
        parts.append(
            "<p>Top-1 accuracy of every model on every dataset. Corruption datasets "
            "are averaged per family; the severity plot shows them one by one.</p>"
        )
        for fn in (_accuracy_by_dataset_plot, _severity_plot):
            img = fn(ctx, acc)
            if img:
                parts.append(img)
    spaces = class_space_table(ctx.datasets)
    if spaces is not None:
        parts.append(spaces.to_html(table_id="class-space"))
    parts.append(_heatmap_html(ctx))
    ps = _per_sample_html(ctx)
    if ps:
        parts.append(ps)
    return "\n".join(p for p in parts if p)


def _heatmap_html(ctx: ReportContext) -> str:
    targets = ood_targets(ctx)
    preds = predictor_table(ctx, predictor_columns(ctx))
    preds, dropped = _usable(preds)
    targets, _ = _usable(targets)
    head = "<h3>Correlation of measures with OOD accuracy</h3>"
    if preds.empty or targets.empty:
        what = (
            "no OOD accuracy (no corruption, v2, sketch or rendition data)"
            if (targets.empty)
            else "no measure on ID data that varies across models"
        )
        return f"{head}<p class='note'>No heatmap: {what}.</p>"
    table = correlations(preds, targets)
    n = int(table["n"].max()) if len(table) else 0
    if len(preds.columns) > _MAX_HEATMAP_ROWS:
        best = table.assign(a=table["coefficient"].abs()).groupby("x")["a"].max()
        keep = best.sort_values(ascending=False).index[:_MAX_HEATMAP_ROWS]
        shown = table[table["x"].isin(keep)]
        extra = (
            f" Showing the {_MAX_HEATMAP_ROWS} measures with the largest |rho| of "
            f"{len(preds.columns)}; all are in the table below."
        )
    else:
        shown, extra = table, ""
    note = (
        f"<p>Spearman rank correlation across {n} models between each measure on ID data "
        "(rows) and each OOD accuracy (columns). Cells with p &ge; 0.05 are shown as 0 and "
        f"print the true coefficient in brackets.{extra}"
    )
    if n < MIN_MODELS:
        note += (
            f" <b>Only {n} models: too few for a meaningful rank correlation "
            f"(use at least {MIN_MODELS}, better 10 or more).</b>"
        )
    if dropped:
        note += (
            f" Left out (constant or fewer than 3 values): "
            f"{esc(', '.join(short(d) for d in dropped[:12]))}"
            f"{' ...' if len(dropped) > 12 else ''}."
        )
    img = _heatmap(
        shown,
        "Spearman rho across models: measure on ID data vs OOD accuracy",
        "correlation heatmap of measures vs OOD accuracy",
    )
    return (
        f"{head}{note}</p>{img}<details><summary>All {len(table)} correlations "
        f"(sortable)</summary>{_corr_rows_html(table)}</details>"
    )


# ----------------------------------------------------------------------------- summary
def what_predicts_html(ctx: ReportContext) -> str:
    """The "What predicts robustness here" summary as an HTML fragment."""
    cols = predictor_columns(ctx, label_free_only=True)
    targets = summary_targets(ctx)
    if not cols:
        return (
            "<p>This study has no label-free measures on ID data, so nothing here can "
            "predict robustness without OOD labels. Add some of "
            f"<code>{', '.join(LABEL_FREE_FAMILIES)}</code> to the study's "
            "<code>measures:</code> and run it again.</p>"
        )
    if targets.empty:
        return (
            "<p>The study has no corruption, sketch or rendition data with accuracy, so "
            "there is no robustness to predict. Add such datasets and the "
            "<code>accuracy</code> measure.</p>"
        )
    preds, dropped = _usable(predictor_table(ctx, cols))
    targets, _ = _usable(targets)
    if preds.empty or targets.empty:
        return (
            "<p>Every label-free measure (or every OOD accuracy) is constant across models "
            "or has fewer than 3 values, so no correlation can be computed.</p>"
        )
    table = correlations(preds, targets).dropna(subset=["coefficient"])
    if table.empty:
        return "<p>No correlation could be computed (too few models with both numbers).</p>"
    n = int(table["n"].max())
    # one line per measure (its strongest target), significant ones first, then by |rho|
    ranked = table.assign(a=table["coefficient"].abs()).sort_values(
        ["significant", "a"], ascending=[False, False]
    )
    top = _distinct_top(ranked.drop_duplicates("x"), preds, 3)
    items = []
    for r in top.itertuples(index=False):
        sig = "significant" if r.significant else "<b>not significant</b>"
        items.append(
            f"<li><b>{esc(short(r.x))}</b> vs <b>{esc(r.y)}</b>: "
            f"Spearman rho = {r.coefficient:+.2f} (95% CI [{signed(r.ci_low)}, "
            f"{signed(r.ci_high)}]), {esc(p_eq(r.p_value))}, n = {r.n} models, "
            f"{sig} at alpha = {ALPHA}.</li>"
        )
    n_sig = int(table["significant"].sum())
    lines = [
        f"<p>{len(preds.columns)} label-free measures on ID data correlated (Spearman, "
        f"across models) with {', '.join(targets.columns)}: {len(table)} pairs, "
        f"{n_sig} significant at alpha = {ALPHA} (no correction for multiple "
        f"comparisons: about {ALPHA * len(table):.1f} would pass by chance alone).</p>"
    ]
    if n < MIN_MODELS:
        lines.append(
            f"<p class='warn'>Only n = {n} models: far too few to tell what "
            f"predicts robustness (a rank correlation needs at least {MIN_MODELS} "
            "models, better 10 or more). The ranking below is illustrative only.</p>"
        )
    if n_sig == 0:
        lines.append(
            "<p class='warn'>Nothing is significant: on these models no label-free "
            "measure reliably predicts OOD accuracy. The strongest associations "
            "were:</p>"
        )
    else:
        lines.append("<p>Strongest associations (significant ones first):</p>")
    lines.append(f"<ol>{''.join(items)}</ol>")
    lines.append(_reference_line(ctx, targets))
    lines.append(_top_scatter(preds, targets, top))
    if dropped:
        lines.append(
            f"<p class='note'>Left out (constant or fewer than 3 values): "
            f"{esc(', '.join(short(d) for d in dropped[:12]))}.</p>"
        )
    return "\n".join(lines)


def _distinct_top(ranked: pd.DataFrame, preds: pd.DataFrame, k: int) -> pd.DataFrame:
    """The first ``k`` rows whose measures do not rank the models identically to an earlier
    pick (e.g. a score and 1 - score), so the list names different measures."""
    from scipy.stats import spearmanr  # lazy: scipy costs ~1 s to import

    picked: list[int] = []
    for i, r in enumerate(ranked.itertuples(index=False)):
        same = False
        for j in picked:
            a, b = preds[r.x], preds[ranked.iloc[j]["x"]]
            ok = a.notna() & b.notna()
            if ok.sum() >= 3 and abs(float(spearmanr(a[ok], b[ok]).statistic)) > 0.999:
                same = True
                break
        if not same:
            picked.append(i)
        if len(picked) == k:
            break
    return ranked.iloc[picked]


def _reference_line(ctx: ReportContext, targets: pd.DataFrame) -> str:
    """ID accuracy vs the same targets: the baseline a label-free measure has to beat."""
    ids = [f"{d}|accuracy.accuracy" for d in ctx.datasets_with_role("id")]
    ref, _ = _usable(predictor_table(ctx, ids[:1]))
    if ref.empty:
        return ""
    t = correlations(ref, targets, n_boot=0)
    parts = [
        f"{esc(r.y)}: rho = {signed(r.coefficient)} ({esc(p_eq(r.p_value))})"
        for r in t.itertuples(index=False)
    ]
    return (
        "<p class='note'>For reference, ID accuracy (needs ID labels only) correlates with "
        f"{'; '.join(parts)}. A label-free measure is useful when it comes close.</p>"
    )


def _top_scatter(preds: pd.DataFrame, targets: pd.DataFrame, top: pd.DataFrame) -> str:
    k = len(top)
    fig = _figure(4.2 * k + 0.4, 3.7)
    axes = fig.subplots(1, k, squeeze=False)[0]
    for ax, r in zip(axes, top.itertuples(index=False), strict=True):
        y_col = r.y[: -len(" (target)")] if r.y.endswith(" (target)") else r.y
        x = preds[r.x]
        y = targets[y_col].reindex(x.index)
        ax.scatter(x, y, s=28, color="tab:blue", edgecolor="white", lw=0.5, zorder=3)
        if len(x) <= 15:
            annotate_points(ax, x.index, x, y, color="0.3")
        ax.set_xlabel(short(r.x), fontsize=8.5)
        ax.set_ylabel(y_col, fontsize=8.5)
        star = "" if r.significant else " (n.s.)"
        ax.set_title(
            f"rho = {r.coefficient:+.2f}, {p_eq(r.p_value)}, n = {r.n}{star}", fontsize=9.5
        )
        ax.grid(alpha=0.3)
    return figure_html(fig, "top label-free predictors of OOD accuracy")
