"""Report section of seed 000: clustering indicators of clean features vs robustness.

Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
Adversarial Machine Learning and Beyond (arXiv:2106.12303).

Shows the indicators per model next to their accuracies, their correlation with mean
corruption / sketch / rendition accuracy across models, scatters of each indicator against
corruption accuracy, and the k-means clusters of two models in a 2-D PCA projection (from the
``clustering`` measure's artifacts). Never runs a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError
from robustlens.formatting import esc, number, signed
from robustlens.lines.clustering.analysis import (
    CORRUPT_MEAN,
    INDICATORS,
    indicator_correlations,
    indicator_table,
    strongest_label_free_indicator,
)
from robustlens.lines.clustering.tables import (
    correlations_table,
    indicators_table,
    strongest_detail,
)
from robustlens.report.context import ReportContext, annotate_points, figure_html
from robustlens.roles import dataset_roles

__all__ = ["render_clustering"]

_MIN_MODELS = 5
_LABEL_POINTS = 12
#: axis labels of the indicators in the figures
_NAMES = {
    "silhouette": "silhouette (higher = better clustered)",
    "davies_bouldin": "Davies-Bouldin (lower = better)",
    "calinski_harabasz": "Calinski-Harabasz (higher = better)",
    "nmi": "NMI with classes",
    "ari": "ARI with classes",
    "purity": "purity",
    "cluster_accuracy": "cluster accuracy (Hungarian)",
}


def _scatter(table: pd.DataFrame, corr: pd.DataFrame) -> str:
    """One panel per indicator: its value on clean id features vs mean corruption accuracy."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    target = CORRUPT_MEAN
    if target not in table.columns:
        return ""
    inds = [i for i in INDICATORS if i in table.columns and table[i].notna().any()]
    if not inds:
        return ""
    ncol = min(4, len(inds))
    nrow = int(np.ceil(len(inds) / ncol))
    fig = Figure(figsize=(3.5 * ncol, 3.1 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for k, ind in enumerate(inds):
        ax = axes[k // ncol][k % ncol]
        ok = table[[ind, target]].dropna()
        ax.scatter(ok[ind], ok[target], s=28, color="#2e7d32", edgecolor="white", zorder=3)
        if len(ok) <= _LABEL_POINTS:
            annotate_points(ax, ok.index, ok[ind], ok[target])
        r = corr[(corr["indicator"] == ind) & (corr["target"] == target)]
        rho = (
            signed(r["coefficient"].iloc[0], significant=r["significant"].iloc[0])
            if len(r)
            else "n/a"
        )
        ax.set_title(f"{ind}: Spearman ρ = {rho}", fontsize=9)
        ax.set_xlabel(_NAMES.get(ind, ind) + " (clean id)", fontsize=8)
        if k % ncol == 0:
            ax.set_ylabel("mean corruption accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    for k in range(len(inds), nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
    fig.suptitle(
        "Clustering indicator on clean features vs mean corruption accuracy "
        "(one point per model, * p < 0.05)"
    )
    fig.tight_layout()
    return figure_html(fig, "scatter of clustering indicators vs corruption accuracy")


def _projection(ctx: ReportContext, table: pd.DataFrame) -> str:
    """The PCA projections (measure artifacts) of the best- and worst-clustered models."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    arts = {m: (a or {}).get("clustering", {}).get("projection") for m, a in ctx.artifacts.items()}
    arts = {m: p for m, p in arts.items() if p and p.get("x")}
    if not arts:
        return ""
    if "silhouette" in table.columns:
        ranked = [m for m in table["silhouette"].dropna().sort_values().index if m in arts]
    else:
        ranked = sorted(arts)
    chosen = list(dict.fromkeys([ranked[-1], ranked[0]])) if ranked else sorted(arts)[:2]
    fig = Figure(figsize=(5.2 * len(chosen), 4.4))
    axes = fig.subplots(1, len(chosen), squeeze=False)
    markers = "os^vD<>phx*+"
    for ax, m in zip(axes[0], chosen, strict=True):
        p = arts[m]
        x, y = np.asarray(p["x"], float), np.asarray(p["y"], float)
        lab, cl = np.asarray(p["label"]), np.asarray(p["cluster"])
        for c in np.unique(cl):
            sel = cl == c
            ax.scatter(
                x[sel],
                y[sel],
                c=lab[sel],
                cmap="tab10",
                vmin=0,
                vmax=9,
                s=14,
                marker=markers[int(c) % len(markers)],
                alpha=0.8,
            )
        sil = table["silhouette"].get(m, np.nan) if "silhouette" in table.columns else np.nan
        ev = p.get("explained_variance") or [np.nan, np.nan]
        ax.set_title(f"{m} (silhouette {number(sil, 2)})", fontsize=10)
        ax.set_xlabel(f"PC 1 ({_percent(ev[0])} of variance)")
        ax.set_ylabel(f"PC 2 ({_percent(ev[1])} of variance)" if len(ev) > 1 else "PC 2")
        ax.grid(alpha=0.3)
    fig.suptitle("Clean id features, 2-D PCA: colour = true class, marker = k-means cluster")
    fig.tight_layout()
    return (
        "<p>Best- and worst-clustered models (by silhouette): well separated, single-colour "
        "groups mean the features cluster into the classes.</p>"
        + figure_html(fig, "PCA projection of clean features with k-means clusters")
    )


def _sample_note(table: pd.DataFrame) -> str:
    """The indicators depend on the sample size: say so, and warn when the models differ."""
    note = (
        "Indicators depend on sample size: compare models at equal <code>max_samples</code> "
        "(n = rows clustered, k = clusters; Calinski-Harabasz grows about in proportion to the "
        "rows per cluster)."
    )
    sizes = sorted({int(v) for v in table.get("n_samples", pd.Series(dtype=float)).dropna()})
    if len(sizes) > 1:
        note += (
            f" <b>The models were clustered on different numbers of rows "
            f"({', '.join(map(str, sizes))}): their indicators are not comparable.</b>"
        )
    return f"<p class='note'>{note}</p>"


def _percent(ratio: Any) -> str:
    return f"{number(100 * float(ratio), 0)}%"


def _correlations(corr: pd.DataFrame) -> list[str]:
    """The correlation table, with a warning when there are too few models, and the
    strongest label-free indicator of mean corruption accuracy."""
    n = int(corr["n"].max()) if len(corr) else 0
    note = (
        f"<p class='note'><b>Only {n} models: too few for a meaningful correlation (use at "
        f"least {_MIN_MODELS}).</b></p>"
        if n < _MIN_MODELS
        else ""
    )
    parts = ["<h3>Correlation with robustness</h3>", note, correlations_table(corr).to_html()]
    if (corr["target"] == CORRUPT_MEAN).any():
        try:
            best = strongest_label_free_indicator(corr, target=CORRUPT_MEAN)
        except ValidationError:
            return parts
        parts.append(
            f"<p>Strongest label-free indicator of mean corruption accuracy: "
            f"<b>{esc(best['indicator'])}</b> ({esc(strongest_detail(best, 'spearman'))}).</p>"
        )
    return parts


def render_clustering(ctx: ReportContext) -> str | None:
    """Indicator table, correlations with robustness, scatters and PCA projections."""
    res = ctx.results
    if res.empty or not (res["measure"] == "clustering").any():
        return None
    roles = dataset_roles(res["dataset"].unique(), ctx.datasets)
    try:
        table = indicator_table(res, roles=roles)
    except ValidationError as exc:
        return f"<p class='note'>{esc(exc)}</p>"
    parts = [
        "<p>k-means on the L2-normalised penultimate features of clean in-distribution "
        "images (Ho et al., 2022), k = number of classes present in the clustered sample: at "
        "most <code>max_samples</code> rows, stratified by class with at least "
        "<code>min_per_class</code> rows of each class kept (a seeded random subset of "
        "classes when they do not all fit). Label-free indicators: silhouette, "
        "Davies-Bouldin, Calinski-Harabasz; label-based: NMI, ARI, purity, cluster accuracy. "
        "Do better-clustered features mean a more robust model?</p>",
        _sample_note(table),
        indicators_table(table).to_html(),
    ]
    try:
        corr = indicator_correlations(res, roles=roles)
    except ValidationError as exc:
        parts.append(f"<p class='note'>No correlations: {esc(exc)}</p>")
    else:
        parts += _correlations(corr)
        parts.append(_scatter(table, corr))
    parts.append(_projection(ctx, table))
    return "\n".join(p for p in parts if p)
