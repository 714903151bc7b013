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

import html
from typing import Any

import numpy as np
import pandas as pd

from robustlens.report.context import ReportContext, figure_html

__all__ = ["render_clustering"]

_MIN_MODELS = 5
_LABEL_POINTS = 12
_NAMES = {
    "silhouette": "silhouette (higher = better clustered)",
    "davies_bouldin": "Davies-Bouldin (lower = better)",
    "calinski_harabasz": "Calinski-Harabasz (higher = better)",
    "nmi": "NMI with classes",
    "ari": "ARI with classes",
    "purity": "purity",
    "cluster_accuracy": "cluster accuracy (Hungarian)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _roles(ctx: ReportContext) -> dict[str, str]:
    from robustlens.lines.invariance.analysis import dataset_roles

    named = {d: str(info.get("role")) for d, info in ctx.datasets.items() if info.get("role")}
    return dataset_roles(ctx.results["dataset"].unique(), named)


def _table_html(table: pd.DataFrame) -> str:
    from robustlens.lines.clustering.analysis import INDICATOR_LABELS

    cols = ("model", *table.columns)
    head = "".join(f"<th>{_esc(INDICATOR_LABELS.get(c, c))}</th>" for c in cols)
    rows = []
    for model, row in table.iterrows():
        cells = []
        for c in table.columns:
            v = row[c]
            if v != v:
                cells.append("<td class='na'>-</td>")
            elif c in ("n_samples",):
                cells.append(f"<td>{int(v)}</td>")
            elif c == "calinski_harabasz":
                cells.append(f"<td>{v:.1f}</td>")
            else:
                cells.append(f"<td>{v:.3f}</td>")
        rows.append(f"<tr><th class='sticky'>{_esc(model)}</th>{''.join(cells)}</tr>")
    return (
        f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _corr_html(corr: pd.DataFrame) -> str:
    targets = list(dict.fromkeys(corr["target"]))
    head = "".join(f"<th>{_esc(t)}</th>" for t in ("indicator", "label-free", *targets))
    rows = []
    for ind in dict.fromkeys(corr["indicator"]):
        sub = corr[corr["indicator"] == ind]
        cells = []
        for t in targets:
            r = sub[sub["target"] == t]
            if r.empty or r["coefficient"].iloc[0] != r["coefficient"].iloc[0]:
                cells.append("<td class='na'>n/a</td>")
                continue
            r = r.iloc[0]
            style = "" if r["significant"] else " style='color:#8a93a3'"
            ci = (
                f"<br><small>[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]</small>"
                if r["ci_low"] == r["ci_low"]
                else ""
            )
            cells.append(f"<td{style}>ρ {r['coefficient']:+.2f} (p {r['p_value']:.2g}){ci}</td>")
        lf = "yes" if sub["label_free"].iloc[0] else "no (uses labels)"
        rows.append(
            f"<tr><th class='sticky'>{_esc(_NAMES.get(ind, ind))}</th><td>{lf}</td>"
            f"{''.join(cells)}</tr>"
        )
    return (
        f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _scatter(table: pd.DataFrame, corr: pd.DataFrame) -> str:
    from robustlens.lines.clustering.analysis import INDICATORS

    target = "corrupt (mean)"
    if target not in table.columns:
        return ""
    inds = [i for i in INDICATORS if i in table.columns and table[i].notna().any()]
    if not inds:
        return ""
    plt = _plt()
    ncol = min(4, len(inds))
    nrow = int(np.ceil(len(inds) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.5 * ncol, 3.1 * nrow), squeeze=False)
    for k, ind in enumerate(inds):
        ax = axes[k // ncol][k % ncol]
        ok = table[[ind, target]].dropna()
        ax.scatter(ok[ind], ok[target], s=28, color="#2e7d32", edgecolor="white", zorder=3)
        if len(ok) <= _LABEL_POINTS:
            for name, row in ok.iterrows():
                ax.annotate(
                    str(name),
                    (row[ind], row[target]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        r = corr[(corr["indicator"] == ind) & (corr["target"] == target)]
        rho = (
            "n/a"
            if r.empty or r["coefficient"].iloc[0] != r["coefficient"].iloc[0]
            else f"{r['coefficient'].iloc[0]:+.2f}" + ("*" if r["significant"].iloc[0] else "")
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
    arts = {m: (a or {}).get("clustering", {}).get("projection") for m, a in ctx.artifacts.items()}
    arts = {m: p for m, p in arts.items() if p and p.get("x")}
    if not arts:
        return ""
    if "silhouette" in table.columns:
        ranked = [m for m in table["silhouette"].dropna().sort_values().index if m in arts]
    else:
        ranked = sorted(arts)
    chosen = list(dict.fromkeys([ranked[-1], ranked[0]])) if ranked else sorted(arts)[:2]
    plt = _plt()
    fig, axes = plt.subplots(1, len(chosen), figsize=(5.2 * len(chosen), 4.4), squeeze=False)
    for ax, m in zip(axes[0], chosen, strict=True):
        p = arts[m]
        x, y = np.asarray(p["x"], float), np.asarray(p["y"], float)
        lab, cl = np.asarray(p["label"]), np.asarray(p["cluster"])
        markers = "os^vD<>phx*+"
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
        ax.set_title(f"{m} (silhouette {sil:.2f})", fontsize=10)
        ax.set_xlabel(f"PC 1 ({ev[0]:.0%} of variance)")
        ax.set_ylabel(f"PC 2 ({ev[1]:.0%} of variance)" if len(ev) > 1 else "PC 2")
        ax.grid(alpha=0.3)
    fig.suptitle("Clean id features, 2-D PCA: colour = true class, marker = k-means cluster")
    fig.tight_layout()
    return (
        "<p>Best- and worst-clustered models (by silhouette): well separated, single-colour "
        "groups mean the features cluster into the classes.</p>"
        + figure_html(fig, "PCA projection of clean features with k-means clusters")
    )


def render_clustering(ctx: ReportContext) -> str | None:
    """Indicator table, correlations with robustness, scatters and PCA projections."""
    from robustlens.errors import ValidationError
    from robustlens.lines.clustering.analysis import (
        indicator_correlations,
        indicator_table,
        strongest_label_free_indicator,
    )

    res = ctx.results
    if res.empty or not (res["measure"] == "clustering").any():
        return None
    roles = _roles(ctx)
    try:
        table = indicator_table(res, roles=roles)
    except ValidationError as exc:
        return f"<p class='note'>{_esc(exc)}</p>"
    parts = [
        "<p>k-means (k = number of classes) on the L2-normalised penultimate features of "
        "clean in-distribution images (Ho et al., 2022). Label-free indicators: "
        "silhouette, Davies-Bouldin, Calinski-Harabasz; label-based: NMI, ARI, purity, "
        "cluster accuracy. Do better-clustered features mean a more robust model?</p>",
        _table_html(table),
    ]
    try:
        corr = indicator_correlations(res, roles=roles)
    except ValidationError as exc:
        parts.append(f"<p class='note'>No correlations: {_esc(exc)}</p>")
        parts.append(_projection(ctx, table))
        return "\n".join(p for p in parts if p)
    n = int(corr["n"].max()) if len(corr) else 0
    note = (
        (
            f" <b>Only {n} models: too few for a meaningful correlation (use at least "
            f"{_MIN_MODELS}).</b>"
        )
        if n < _MIN_MODELS
        else ""
    )
    parts.append(
        f"<h3>Correlation with robustness</h3><p>Spearman ρ across {n} models (p-value, "
        f"95% bootstrap CI); grey = not significant (p &ge; 0.05).{note}</p>"
    )
    parts.append(_corr_html(corr))
    target = "corrupt (mean)" if (corr["target"] == "corrupt (mean)").any() else None
    if target:
        try:
            best = strongest_label_free_indicator(corr, target=target)
            sig = "significant" if best["significant"] else "not significant"
            parts.append(
                f"<p>Strongest label-free indicator of mean corruption accuracy: "
                f"<b>{_esc(best['indicator'])}</b> (ρ {best['coefficient']:+.2f}, "
                f"p {best['p_value']:.2g}, {sig}).</p>"
            )
        except ValidationError:
            pass
    parts.append(_scatter(table, corr))
    parts.append(_projection(ctx, table))
    return "\n".join(p for p in parts if p)
