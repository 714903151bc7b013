"""Report section of seed 001: effective invariance and label-free OOD-accuracy prediction.

Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model Invariance
and Generalization", NeurIPS 2022; ATC: Garg et al., ICLR 2022; DoC: Guillory et al., ICCV 2021.

Shows the per-sample EI distributions on the in-distribution set (read from the per-sample
parquet files, one model at a time), scatters of EI / ATC against OOD accuracy across models
(one panel per shift family), the model-centric correlation table and the leave-one-model-out
MAE of each label-free predictor. Computed from the results table; never runs a model.
"""

from __future__ import annotations

import numpy as np

from robustlens.analysis.correlation import correlate
from robustlens.errors import RobustlensError
from robustlens.formatting import esc, short, signed
from robustlens.lines.invariance.analysis import (
    TARGET,
    family_means,
    model_centric,
    ood_predictor_mae,
    results_cube,
    shift_families,
)
from robustlens.lines.invariance.tables import lowest_mae, mae_table, model_centric_table
from robustlens.report.context import ReportContext, figure_html
from robustlens.roles import dataset_roles

__all__ = ["render_invariance"]

_LABEL_POINTS = 12  # name the points when there are at most this many models
_SCATTER_PREDICTORS = (
    ("invariance.ei_rotation", "EI rotation"),
    ("invariance.ei_gray", "EI grayscale"),
    ("label_free.atc_maxconf", "ATC (max conf), predicted acc"),
)
#: shift families of the scatter, in panel order (the corrupt mean first)
_SCATTER_ROLES = ("corrupt", "sketch", "rendition", "v2", "natural")
_MAX_PANELS = 6


# ----------------------------------------------------------------------------- EI distribution
def _ei_distributions(ctx: ReportContext, roles: dict[str, str]) -> str:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    ids = [d for d in roles if roles[d] == "id"]
    if not ids:
        return ""
    data: dict[str, dict[str, np.ndarray]] = {}
    for model, df in ctx.iter_per_sample(columns=["ei_rotation", "ei_gray"], datasets=ids[:1]):
        cols = {
            c: df[c].dropna().to_numpy(dtype=float)
            for c in ("ei_rotation", "ei_gray")
            if c in df.columns
        }
        if cols and any(len(v) for v in cols.values()):
            data[model] = cols
    if not data:
        return ""
    models = sorted(data)
    fig = Figure(figsize=(11, 0.5 * len(models) + 1.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, col, title in zip(
        axes,
        ("ei_rotation", "ei_gray"),
        ("rotation EI (mean over 90/180/270°)", "grayscale EI"),
        strict=True,
    ):
        for i, m in enumerate(models):
            v = data[m].get(col, np.zeros(0))
            if len(v) == 0:
                continue
            if np.ptp(v) > 0:
                parts = ax.violinplot(
                    v,
                    positions=[i],
                    orientation="horizontal",
                    widths=0.8,
                    showmeans=False,
                    showextrema=False,
                )
                for body in parts["bodies"]:
                    body.set_alpha(0.45)
            ax.plot([v.mean()], [i], marker="D", color="black", ms=4)
            ax.plot([np.median(v)], [i], marker="|", color="#c62828", ms=12)
        ax.set_title(title)
        ax.set_xlabel("per-sample EI (0 = prediction changes, 1 = same and fully confident)")
        ax.set_xlim(-0.02, 1.02)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(models)), models)
    axes[0].set_ylabel("model")
    fig.suptitle(
        f"Per-sample effective invariance on {short(ids[0])} (diamond: mean, red bar: median)"
    )
    fig.tight_layout()
    img = figure_html(fig, f"per-sample EI distributions on {ids[0]} per model")
    return (
        f"<h3>EI distributions on {esc(short(ids[0]))}</h3><p>EI of a sample = "
        "sqrt(p(y) &middot; p<sub>t</sub>(y<sub>t</sub>)) when the prediction y is unchanged "
        "by the transformation, else 0. Rotation EI averages 90, 180 and 270 degrees; "
        "grayscale is applied to pixels before normalization.</p>" + img
    )


# ----------------------------------------------------------------------------- scatter
def _scatter(ctx: ReportContext, roles: dict[str, str]) -> str:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    cube = results_cube(ctx.results)
    if TARGET not in cube.columns:
        return ""
    preds = [(p, lab) for p, lab in _SCATTER_PREDICTORS if p in cube.columns]
    families = shift_families(roles, roles, _SCATTER_ROLES)
    if not preds or not families:
        return ""
    fams = list(families)[:_MAX_PANELS]
    fig = Figure(figsize=(3.4 * len(fams) + 0.6, 3.1 * len(preds)))
    axes = fig.subplots(len(preds), len(fams), squeeze=False)
    for j, fam in enumerate(fams):
        means = family_means(cube, families[fam], [TARGET, *(p for p, _ in preds)])
        y_all = means[TARGET]
        for i, (p, lab) in enumerate(preds):
            ax = axes[i][j]
            x = means[p]
            ok = x.notna() & y_all.notna()
            xs, ys = x[ok].to_numpy(), y_all[ok].to_numpy()
            ax.scatter(xs, ys, s=28, color="#1f77b4", edgecolor="white", zorder=3)
            if ok.sum() <= _LABEL_POINTS:
                for name, xv, yv in zip(x[ok].index, xs, ys, strict=True):
                    ax.annotate(
                        str(name), (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points"
                    )
            if p.startswith("label_free.atc") and len(xs):
                lo = float(min(xs.min(), ys.min(), 0.0))
                hi = float(max(xs.max(), ys.max(), 1.0))
                ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1, label="y = x")
            r = correlate(xs, ys, n_boot=0)
            rho = signed(r.coefficient, significant=r.significant)
            ax.set_title(f"{short(fam)}: Spearman ρ = {rho}", fontsize=9)
            ax.set_xlabel(f"{lab} on {short(fam)}", fontsize=8)
            if j == 0:
                ax.set_ylabel("true accuracy", fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("Label-free predictors vs OOD accuracy across models (* p < 0.05)")
    fig.tight_layout()
    return (
        "<h3>Predictors vs OOD accuracy</h3><p>One point per model. Corruption panels "
        "average the predictor and the accuracy over every corruption type and severity. "
        "ATC is itself a predicted accuracy: points on the dashed line are predicted "
        "exactly.</p>" + figure_html(fig, "scatter of EI and ATC vs OOD accuracy per shift")
    )


# ----------------------------------------------------------------------------- tables
def _model_centric_html(ctx: ReportContext, roles: dict[str, str]) -> str:
    t = model_centric(ctx.results, roles=roles, n_boot=1000, each_corrupt=False)
    table = model_centric_table(t)
    if table is None:
        return ""
    return (
        f"<h3>Model-centric correlation</h3><p>Across {int(t['n'].max())} models: Spearman ρ / "
        "Pearson r between each label-free measure on a shifted set and the true accuracy on "
        "that set; * = significant (p &lt; 0.05).</p>"
        f"<div class='table-wrap'>{table.to_html()}</div>"
    )


def _mae_html(ctx: ReportContext, roles: dict[str, str]) -> str:
    t = ood_predictor_mae(ctx.results, roles=roles)
    table = mae_table(t)
    if table is None:
        return ""
    return (
        "<h3>Predicting OOD accuracy without labels</h3><p>Mean absolute error of each "
        "predictor over every (model, shifted set) pair. <i>regression</i>: the score is "
        "mapped to accuracy by a line fitted on the other models (leave-one-model-out); "
        "<i>direct</i>: the predictor is already an accuracy (ATC, DoC, average confidence). "
        f"Lowest MAE: <b>{esc(lowest_mae(t))}</b>.</p>{table.to_html()}"
    )


# ----------------------------------------------------------------------------- section


def render_invariance(ctx: ReportContext) -> str | None:
    """EI distributions, predictor scatters, model-centric table and predictor MAE."""
    res = ctx.results
    if res.empty or not res["measure"].isin(["invariance", "label_free"]).any():
        return None
    roles = dataset_roles(res["dataset"].unique(), ctx.datasets)
    parts = [
        "<p>Effective invariance (Deng et al., NeurIPS 2022) and label-free accuracy "
        "predictors (average confidence, nuclear norm, DoC, ATC): do they rank models by "
        "their accuracy under distribution shift, and how close do they get to it?</p>"
    ]
    for fn in (_ei_distributions, _scatter, _model_centric_html, _mae_html):
        try:
            frag = fn(ctx, roles)
        except RobustlensError as exc:  # one broken part must not hide the others
            frag = f"<p class='note'>{esc(fn.__name__.strip('_'))}: {esc(exc)}</p>"
        if frag:
            parts.append(frag)
    return "\n".join(parts)
