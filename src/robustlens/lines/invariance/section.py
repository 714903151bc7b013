"""Report section of seed 001: effective invariance and label-free OOD-accuracy prediction.

Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model Invariance
and Generalization", NeurIPS 2022; ATC: Garg et al., ICLR 2022; DoC: Guillory et al., ICCV 2021.

Shows the per-sample EI distributions on the in-distribution set (read from the per-sample
parquet files, one model at a time), scatters of EI / ATC against OOD accuracy across models
(one panel per shift family), the model-centric correlation table and the leave-one-model-out
MAE of each label-free predictor. Computed from the results table; never runs a model.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

from robustlens.report.context import ReportContext, figure_html

__all__ = ["render_invariance"]

_MIN_MODELS = 5
_LABEL_POINTS = 12  # name the points when there are at most this many models
_SCATTER_PREDICTORS = (
    ("invariance.ei_rotation", "EI rotation"),
    ("invariance.ei_gray", "EI grayscale"),
    ("label_free.atc_maxconf", "ATC (max conf), predicted acc"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _short(name: str) -> str:
    return name.replace("world/", "")


def _roles(ctx: ReportContext) -> dict[str, str]:
    from robustlens.lines.invariance.analysis import dataset_roles

    named = {d: str(info.get("role")) for d, info in ctx.datasets.items() if info.get("role")}
    return dataset_roles(ctx.results["dataset"].unique(), named)


def _label(p: str) -> str:
    from robustlens.lines.invariance.analysis import predictor_label

    return predictor_label(p)


# ----------------------------------------------------------------------------- EI distribution
def _ei_distributions(ctx: ReportContext, roles: dict[str, str]) -> str:
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
    plt = _plt()
    models = sorted(data)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(models) + 1.8), sharey=True)
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
        f"Per-sample effective invariance on {_short(ids[0])} (diamond: mean, red bar: median)"
    )
    fig.tight_layout()
    img = figure_html(fig, f"per-sample EI distributions on {ids[0]} per model")
    return (
        f"<h3>EI distributions on {_esc(_short(ids[0]))}</h3><p>EI of a sample = "
        "sqrt(p(y) &middot; p<sub>t</sub>(y<sub>t</sub>)) when the prediction y is unchanged "
        "by the transformation, else 0. Rotation EI averages 90, 180 and 270 degrees; "
        "grayscale is applied to pixels before normalization.</p>" + img
    )


# ----------------------------------------------------------------------------- scatter
def _family_values(cube: pd.DataFrame, members: list[str], col: str) -> pd.Series:
    sub = cube.loc[cube.index.get_level_values("dataset").isin(members), col]
    return sub.groupby(level="model").mean()


def _scatter(ctx: ReportContext, roles: dict[str, str]) -> str:
    from robustlens.lines.invariance.analysis import TARGET, shift_families

    df = ctx.results
    cube = df.assign(key=df["measure"] + "." + df["name"]).pivot_table(
        index=["dataset", "model"], columns="key", values="value", aggfunc="first"
    )
    if TARGET not in cube.columns:
        return ""
    preds = [(p, lab) for p, lab in _SCATTER_PREDICTORS if p in cube.columns]
    families = shift_families(roles, roles)
    if not preds or not families:
        return ""
    order = [
        "corrupt (mean)",
        *[d for d in families if roles.get(d) == "sketch"],
        *[d for d in families if roles.get(d) == "rendition"],
        *[d for d in families if roles.get(d) == "v2"],
        *[d for d in families if roles.get(d) == "natural"],
    ]
    fams = [f for f in dict.fromkeys(order) if f in families][:6]
    plt = _plt()
    fig, axes = plt.subplots(
        len(preds), len(fams), figsize=(3.4 * len(fams) + 0.6, 3.1 * len(preds)), squeeze=False
    )
    from robustlens.analysis.correlation import correlate

    for j, fam in enumerate(fams):
        y_all = _family_values(cube, families[fam], TARGET)
        for i, (p, lab) in enumerate(preds):
            ax = axes[i][j]
            x = _family_values(cube, families[fam], p).reindex(y_all.index)
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
            rho = "n/a" if r.coefficient != r.coefficient else f"{r.coefficient:+.2f}"
            ax.set_title(
                f"{_short(fam)}: Spearman ρ = {rho}" + ("*" if r.significant else ""), fontsize=9
            )
            ax.set_xlabel(f"{lab} on {_short(fam)}", fontsize=8)
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
    from robustlens.lines.invariance.analysis import model_centric

    t = model_centric(ctx.results, roles=roles, n_boot=1000, each_corrupt=False)
    if t.empty:
        return ""
    families = list(dict.fromkeys(t["dataset"]))
    n = int(t["n"].max())
    head = "".join(f"<th>{_esc(_short(f))}</th>" for f in families)
    rows = []
    for p in dict.fromkeys(t["predictor"]):
        cells = []
        for f in families:
            sub = t[(t["predictor"] == p) & (t["dataset"] == f)]
            by = {r["method"]: r for _, r in sub.iterrows()}
            s, r = by.get("spearman"), by.get("pearson")
            if s is None or s["coefficient"] != s["coefficient"]:
                cells.append("<td class='na'>n/a</td>")
                continue
            style = "" if s["significant"] else " style='color:#8a93a3'"
            ci = (
                f"<br><small>[{s['ci_low']:+.2f}, {s['ci_high']:+.2f}]</small>"
                if s["ci_low"] == s["ci_low"]
                else ""
            )
            pear = (
                f"<br><small>r {r['coefficient']:+.2f}, p {r['p_value']:.2g}</small>"
                if r is not None and r["coefficient"] == r["coefficient"]
                else ""
            )
            cells.append(
                f"<td{style} data-v='{s['coefficient']:.4f}'>ρ {s['coefficient']:+.2f}"
                f" (p {s['p_value']:.2g}){ci}{pear}</td>"
            )
        rows.append(f"<tr><th class='sticky'>{_esc(_label(p))}</th>{''.join(cells)}</tr>")
    note = ""
    if n < _MIN_MODELS:
        note = (
            f" <b>Only {n} models: too few for a meaningful correlation across models "
            f"(use at least {_MIN_MODELS}).</b>"
        )
    return (
        f"<h3>Model-centric correlation</h3><p>Across {n} models: Spearman ρ (p-value, "
        "95% bootstrap CI) and Pearson r between each label-free measure on a shifted set and "
        f"the true accuracy on that set; grey = not significant (p &ge; 0.05).{note}</p>"
        f"<div class='table-wrap'><table><thead><tr><th class='sticky'>predictor</th>{head}"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _mae_html(ctx: ReportContext, roles: dict[str, str]) -> str:
    from robustlens.lines.invariance.analysis import ood_predictor_mae

    t = ood_predictor_mae(ctx.results, roles=roles)
    if t.empty:
        return ""
    role_cols = [c for c in t.columns if c.startswith("mae_")]
    head = "".join(
        f"<th>{_esc(c)}</th>"
        for c in ("predictor", "kind", "MAE", *(c[4:] for c in role_cols), "pairs")
    )
    body = []
    for _, r in t.iterrows():
        cells = "".join(
            f"<td>{r[c]:.3f}</td>" if r[c] == r[c] else "<td class='na'>-</td>"
            for c in ("mae", *role_cols)
        )
        body.append(
            f"<tr><th class='sticky'>{_esc(_label(r['predictor']))}</th>"
            f"<td>{_esc(r['kind'])}</td>{cells}<td>{int(r['n'])}</td></tr>"
        )
    best = t.iloc[0]
    return (
        "<h3>Predicting OOD accuracy without labels</h3><p>Mean absolute error of each "
        "predictor over every (model, shifted set) pair. <i>regression</i>: the score is "
        "mapped to accuracy by a line fitted on the other models (leave-one-model-out); "
        "<i>direct</i>: the predictor is already an accuracy (ATC, DoC, average confidence). "
        f"Lowest MAE: <b>{_esc(_label(best['predictor']))}</b> ({_esc(best['kind'])}, "
        f"{best['mae']:.3f}).</p><table class='compact'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


# ----------------------------------------------------------------------------- section


def render_invariance(ctx: ReportContext) -> str | None:
    """EI distributions, predictor scatters, model-centric table and predictor MAE."""
    res = ctx.results
    if res.empty or not res["measure"].isin(["invariance", "label_free"]).any():
        return None
    roles = _roles(ctx)
    parts = [
        "<p>Effective invariance (Deng et al., NeurIPS 2022) and label-free accuracy "
        "predictors (average confidence, nuclear norm, DoC, ATC): do they rank models by "
        "their accuracy under distribution shift, and how close do they get to it?</p>"
    ]
    for fn in (_ei_distributions, _scatter, _model_centric_html, _mae_html):
        try:
            frag = fn(ctx, roles)
        except Exception as exc:  # one broken part must not hide the others
            from robustlens.errors import RobustlensError

            if not isinstance(exc, RobustlensError):
                raise
            frag = f"<p class='note'>{_esc(fn.__name__.strip('_'))}: {_esc(exc)}</p>"
        if frag:
            parts.append(frag)
    return "\n".join(parts)
