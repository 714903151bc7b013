"""Report sections of seed 002: spectral curves, critical bands, shape bias, and the bias x
generalization heatmap (Gavrikov et al., "Can Biases in ImageNet Models Explain
Generalization?", CVPR 2024).

Every section reads the results frame and the ``biases`` measure's artifacts from the
:class:`~robustlens.report.context.ReportContext`; none runs a model. A section returns
``None`` when the study has nothing for it.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from robustlens.report.context import ReportContext, figure_html

__all__ = [
    "render_bias_heatmap",
    "render_critical_band",
    "render_shape_bias",
    "render_spectral",
]

_MEASURE = "biases"
_TEXRAND_COLOR = "#c2185b"
_OTHER_COLOR = "#607d8b"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _part(ctx: ReportContext, part: str) -> dict[str, dict[str, Any]]:
    """{dataset: {model: artifact}} for one part of the biases artifacts."""
    out: dict[str, dict[str, Any]] = {}
    for model, by_measure in sorted(ctx.artifacts.items()):
        for ds, art in ((by_measure or {}).get(_MEASURE, {}) or {}).get(part, {}).items():
            out.setdefault(ds, {})[model] = art
    return out


def _augment(ctx: ReportContext, model: str) -> str:
    cfg = ctx.models.get(model) or {}
    member = cfg.get("member") or {}
    return str(member.get("augment") or cfg.get("augment") or "")


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _esc(x: Any) -> str:
    return html.escape(str(x))


def render_spectral(ctx: ReportContext) -> str | None:
    """Accuracy ratio to clean accuracy vs FFT cutoff, low- and high-pass, one line per model."""
    data = _part(ctx, "spectral")
    if not data:
        return None
    plt = _plt()
    parts = [
        "<p>Accuracy on FFT low- and high-pass filtered images divided by clean accuracy. "
        "Low-frequency bias = mean low-pass ratio over cutoffs 0.1-0.5; high-frequency bias = "
        "the same for high-pass.</p>"
    ]
    for ds, by_model in data.items():
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
        for model, art in by_model.items():
            x = art.get("cutoffs") or []
            texrand = _augment(ctx, model) == "texrand"
            for ax, key in zip(axes, ("low_curve", "high_curve"), strict=True):
                y = [_num(v) for v in art.get(key) or []]
                if len(y) == len(x) and x:
                    ax.plot(
                        x,
                        y,
                        marker="o",
                        ms=3,
                        ls="--" if texrand else "-",
                        label=f"{model} (texrand)" if texrand else model,
                    )
        for ax, title in zip(axes, ("low-pass", "high-pass"), strict=True):
            ax.set_title(f"{title} ({ds})")
            ax.set_xlabel("cutoff (fraction of the half spectrum)")
            ax.axhline(1.0, color="0.7", lw=0.8, ls="--")
        axes[0].set_ylabel("accuracy / clean accuracy")
        axes[1].legend(fontsize=7, loc="best")
        parts.append(figure_html(fig, f"spectral curves on {ds}"))
        failed = [(m, a.get("reason")) for m, a in by_model.items() if a.get("reason")]
        if failed:
            parts.append(
                "<ul>" + "".join(f"<li>{_esc(m)}: {_esc(r)}</li>" for m, r in failed) + "</ul>"
            )
    return "\n".join(parts)


def render_critical_band(ctx: ReportContext) -> str | None:
    """Noise sensitivity per band with the fitted Gaussian; failed fits are labelled."""
    data = _part(ctx, "critical_band")
    if not data:
        return None
    plt = _plt()
    parts = [
        "<p>Sensitivity log2(1 / threshold) per noise band, where the threshold is the noise "
        "level that brings accuracy halfway from the noise-free low-contrast accuracy to chance; "
        "the curve is the fitted Gaussian over log2 frequency (bandwidth = its FWHM in "
        "octaves). A fit that failed is labelled with its reason and gives no numbers.</p>"
    ]
    for ds, by_model in data.items():
        models = list(by_model)
        ncols = min(4, len(models))
        nrows = math.ceil(len(models) / ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False, sharey=True
        )
        unit = ""
        rows = []
        for ax, model in zip(axes.flat, models, strict=False):
            art = by_model[model]
            unit = art.get("frequency_unit") or unit
            f = np.asarray([_num(v) for v in art.get("bands_cpi") or []])
            s = np.asarray([_num(v) for v in art.get("sensitivities") or []])
            ok = bool(art.get("ok"))
            if f.size and f.size == s.size:
                ax.plot(f, s, "o", color="k", ms=4)
            if ok and f.size:
                a, mu, w = (
                    _num(art.get(k)) for k in ("peak_sensitivity", "mu_log2", "width_octaves")
                )
                x = np.linspace(np.log2(f.min()) - 0.5, np.log2(f.max()) + 0.5, 200)
                # the fitted curve of robustlens.metrics.critical_band: A exp(-(x-mu)^2 / 2w^2)
                ax.plot(2.0**x, a * np.exp(-((x - mu) ** 2) / (2 * w**2)), color="tab:blue")
                ax.set_title(f"{model}", fontsize=9)
            else:
                ax.set_title(f"{model}: fit failed", fontsize=9, color="tab:red")
                reason = str(art.get("reason") or "")
                ax.text(
                    0.02,
                    0.95,
                    _wrap(reason, 40),
                    transform=ax.transAxes,
                    fontsize=6,
                    va="top",
                    color="tab:red",
                )
            ax.set_xscale("log", base=2)
            ax.set_xlabel("band centre (cycles/image)", fontsize=8)
            rows.append((model, ok, art))
        for ax in list(axes.flat)[len(models) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("sensitivity", fontsize=8)
        fig.suptitle(f"critical band on {ds}", fontsize=10)
        fig.tight_layout()
        parts.append(figure_html(fig, f"critical band on {ds}"))
        table = "".join(
            f"<tr><td>{_esc(m)}</td>"
            + (
                f"<td>{_num(a.get('bandwidth_octaves')):.2f}</td>"
                f"<td>{_num(a.get('centre_cpi')):.3g}</td>"
                f"<td>{_num(a.get('peak_sensitivity')):.2f}</td><td>ok</td>"
                if ok
                else f"<td>-</td><td>-</td><td>-</td><td>failed: {_esc(a.get('reason'))}</td>"
            )
            + "</tr>"
            for m, ok, a in rows
        )
        parts.append(
            f"<table><tr><th>model</th><th>bandwidth (octaves)</th><th>centre "
            f"({_esc(unit)})</th><th>peak sensitivity</th><th>fit</th></tr>{table}</table>"
        )
    return "\n".join(parts)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:6])


def render_shape_bias(ctx: ReportContext) -> str | None:
    """Bar chart of shape bias per model; texture-randomized models are highlighted."""
    res = ctx.results
    sb = res[(res["measure"] == _MEASURE) & (res["name"] == "shape_bias")]
    if sb.empty:
        return None
    plt = _plt()
    values = sb.groupby("model")["value"].mean().sort_values()
    colors = [
        _TEXRAND_COLOR if _augment(ctx, str(m)) == "texrand" else _OTHER_COLOR for m in values.index
    ]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(values) + 1.2))
    ax.barh([str(m) for m in values.index], values.fillna(0).to_numpy(), color=colors)
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias = shape / (shape + texture decisions)")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color=_TEXRAND_COLOR, label="texture-randomized"),
            Patch(color=_OTHER_COLOR, label="other"),
        ],
        fontsize=7,
        loc="lower right",
    )
    html_parts = [
        "<p>Shape bias on cue-conflict images (shape of one class, texture of another; images "
        "whose shape and texture agree are excluded).</p>",
        figure_html(fig, "shape bias per model"),
    ]
    tex = [m for m in values.index if _augment(ctx, str(m)) == "texrand"]
    rest = [m for m in values.index if m not in tex]
    if tex and rest:
        html_parts.append(
            f"<p>Mean shape bias: texture-randomized {values[tex].mean():.3f} "
            f"(n={len(tex)}), others {values[rest].mean():.3f} (n={len(rest)}).</p>"
        )
    per_cat = _part(ctx, "shape_bias")
    for ds, by_model in per_cat.items():
        cats = sorted({c for a in by_model.values() for c in (a.get("per_category") or {})})
        if not cats:
            continue
        head = "".join(f"<th>{_esc(c)}</th>" for c in cats)
        body = "".join(
            f"<tr><td>{_esc(m)}</td>"
            + "".join(f"<td>{_fmt((a.get('per_category') or {}).get(c))}</td>" for c in cats)
            + "</tr>"
            for m, a in by_model.items()
        )
        html_parts.append(
            f"<details><summary>per-category shape bias ({_esc(ds)})</summary>"
            f"<table><tr><th>model</th>{head}</tr>{body}</table></details>"
        )
    return "\n".join(html_parts)


def _fmt(v: Any) -> str:
    v = _num(v)
    return "-" if not math.isfinite(v) else f"{v:.2f}"


def _roles(ctx: ReportContext) -> dict[str, Any]:
    return dict(ctx.datasets or {})


def render_bias_heatmap(ctx: ReportContext, alpha: float = 0.05, n_boot: int = 1000) -> str | None:
    """Heatmap of bias x generalization-dimension correlations.

    Cells are coloured by ``shown`` (the coefficient where p < alpha, else 0, seed 002's
    convention) and annotated with the true coefficient and its p-value; the title gives n.
    """
    from robustlens.analysis.generalization import (
        bias_generalization_matrix,
        generalization_table,
    )

    res = ctx.results
    if res[res["measure"] == _MEASURE].empty:
        return None
    mt = bias_generalization_matrix(res, _roles(ctx), alpha=alpha, n_boot=n_boot)
    gt = generalization_table(res, _roles(ctx))
    plt = _plt()
    shown = mt.pivot(index="x", columns="y", values="shown")
    coef = mt.pivot(index="x", columns="y", values="coefficient")
    pval = mt.pivot(index="x", columns="y", values="p_value")
    count = mt.pivot(index="x", columns="y", values="n")
    rows = list(dict.fromkeys(mt["x"]))
    cols = list(dict.fromkeys(mt["y"]))
    shown, coef, pval, count = (
        t.reindex(index=rows, columns=cols) for t in (shown, coef, pval, count)
    )
    fig, ax = plt.subplots(figsize=(1.7 * len(cols) + 2.5, 0.6 * len(rows) + 1.5))
    im = ax.imshow(shown.fillna(0).to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
    for i, b in enumerate(rows):
        for j, d in enumerate(cols):
            c, p, v = coef.loc[b, d], pval.loc[b, d], shown.loc[b, d]
            text = f"n/a\nn={count.loc[b, d]:.0f}" if not np.isfinite(c) else f"{c:.2f}\np={p:.2g}"
            dark = np.isfinite(v) and abs(v) > 0.5
            ax.text(
                j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black"
            )
    ax.set_xticks(range(len(cols)), cols, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    n_vals = sorted({int(n) for n in mt["n"]})
    method = mt["method"].iloc[0] if len(mt) else "spearman"
    ax.set_title(
        f"{method} correlation across models (n = {', '.join(map(str, n_vals))}); "
        f"colour 0 where p >= {alpha}",
        fontsize=9,
    )
    fig.colorbar(im, ax=ax, shrink=0.8)
    html_parts = [
        "<p>Correlation across models of each bias with each generalization dimension "
        "(in-distribution: id and v2 accuracy; robustness: mean corruption accuracy; concepts: "
        "sketch, rendition and cue-conflict shape fraction; adversarial: PGD accuracy). "
        f"Cells with p &ge; {alpha} are coloured as 0; the annotation keeps the coefficient "
        "and p.</p>",
        figure_html(fig, "bias x generalization correlation heatmap"),
        pd.DataFrame(gt).round(3).to_html(classes="table", na_rep="-"),
    ]
    return "\n".join(html_parts)
