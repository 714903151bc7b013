"""Report sections of seed 002: spectral curves, critical bands, shape bias, and the bias x
generalization heatmap (Gavrikov et al., "Can Biases in ImageNet Models Explain
Generalization?", CVPR 2024).

Every section reads the results frame and the ``biases`` measure's artifacts from the
:class:`~robustlens.report.context.ReportContext`; none runs a model. A section returns
``None`` when the study has nothing for it.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from robustlens.analysis.generalization import bias_generalization_matrix, generalization_table
from robustlens.formatting import esc, number
from robustlens.lines.biases.tables import (
    MEASURE,
    augment,
    by_dataset,
    critical_band_rows,
    generalization_dimensions_table,
    per_category_table,
    shape_bias_comparison,
)
from robustlens.report.context import ReportContext, figure_html

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "render_bias_heatmap",
    "render_critical_band",
    "render_shape_bias",
    "render_spectral",
]

_TEXRAND_COLOR = "#c2185b"
_OTHER_COLOR = "#607d8b"
_SPECTRAL_INTRO = (
    "<p>Accuracy on FFT low- and high-pass filtered images divided by clean accuracy. "
    "Low-frequency bias = mean low-pass ratio over cutoffs 0.1-0.5; high-frequency bias = "
    "the same for high-pass.</p>"
)
_CRITICAL_BAND_INTRO = (
    "<p>Sensitivity log2(1 / threshold) per noise band, where the threshold is the noise "
    "level that brings accuracy halfway from the noise-free low-contrast accuracy to chance; "
    "the curve is the fitted Gaussian over log2 frequency (bandwidth = its FWHM in "
    "octaves). A fit that failed is labelled with its reason and gives no numbers.</p>"
)


def _augments(ctx: ReportContext) -> dict[str, str]:
    return {str(m): augment(cfg) for m, cfg in ctx.models.items()}


def _floats(values: Any) -> np.ndarray:
    """A list from an artifact as floats (``None``, as JSON writes NaN, becomes NaN)."""
    return np.asarray(values or [], dtype=np.float64)


def render_spectral(ctx: ReportContext) -> str | None:
    """Accuracy ratio to clean accuracy vs FFT cutoff, low- and high-pass, one line per model."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    data = by_dataset(ctx.artifacts, "spectral")
    if not data:
        return None
    parts = [_SPECTRAL_INTRO]
    augments = _augments(ctx)
    for ds, by_model in data.items():
        fig = Figure(figsize=(10, 3.6))
        axes = fig.subplots(1, 2, sharey=True)
        for model, art in by_model.items():
            x = art.get("cutoffs") or []
            texrand = augments.get(model) == "texrand"
            for ax, key in zip(axes, ("low_curve", "high_curve"), strict=True):
                y = _floats(art.get(key))
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
                "<ul>" + "".join(f"<li>{esc(m)}: {esc(r)}</li>" for m, r in failed) + "</ul>"
            )
    return "\n".join(parts)


def _critical_band_figure(ds: str, by_model: dict[str, Any]) -> Figure:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    models = list(by_model)
    ncols = min(4, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax, model in zip(axes.flat, models, strict=False):
        art = by_model[model]
        f, s = _floats(art.get("bands_cpi")), _floats(art.get("sensitivities"))
        if f.size and f.size == s.size:
            ax.plot(f, s, "o", color="k", ms=4)
        if art.get("ok") and f.size:
            a, mu, w = (np.float64(art.get(k)) for k in ("amplitude", "mu_log2", "width_octaves"))
            x = np.linspace(np.log2(f.min()) - 0.5, np.log2(f.max()) + 0.5, 200)
            # the fitted curve of robustlens.metrics.critical_band over log2 frequency:
            # A exp(-(x - mu)^2 / 2w^2), A in noise steps (peak sensitivity is 2**(A - 4))
            ax.plot(2.0**x, a * np.exp(-((x - mu) ** 2) / (2 * w**2)), color="tab:blue")
            ax.set_title(f"{model}", fontsize=9)
        else:
            ax.set_title(f"{model}: fit failed", fontsize=9, color="tab:red")
            reason = "\n".join(textwrap.wrap(str(art.get("reason") or ""), 40)[:6])
            ax.text(
                0.02, 0.95, reason, transform=ax.transAxes, fontsize=6, va="top", color="tab:red"
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("band centre (cycles/image)", fontsize=8)
    for ax in list(axes.flat)[len(models) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("threshold (noise steps)", fontsize=8)
    fig.suptitle(f"critical band on {ds}", fontsize=10)
    fig.tight_layout()
    return fig


def render_critical_band(ctx: ReportContext) -> str | None:
    """Noise sensitivity per band with the fitted Gaussian; failed fits are labelled."""
    data = by_dataset(ctx.artifacts, "critical_band")
    if not data:
        return None
    parts = [_CRITICAL_BAND_INTRO]
    for ds, by_model in data.items():
        parts.append(figure_html(_critical_band_figure(ds, by_model), f"critical band on {ds}"))
        # plain <td> cells, as this table has always been written (a test reads them)
        columns, rows = critical_band_rows(by_model)
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "\n".join(parts)


def render_shape_bias(ctx: ReportContext) -> str | None:
    """Bar chart of shape bias per model; texture-randomized models are highlighted."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import
    from matplotlib.patches import Patch  # lazy: matplotlib is slow to import

    values = ctx.values(MEASURE, "shape_bias").sort_values()
    if values.empty:
        return None
    augments = _augments(ctx)
    tex = [m for m in values.index if augments.get(str(m)) == "texrand"]
    colors = [_TEXRAND_COLOR if m in tex else _OTHER_COLOR for m in values.index]
    fig = Figure(figsize=(6, 0.3 * len(values) + 1.2))
    ax = fig.subplots()
    ax.barh([str(m) for m in values.index], values.fillna(0).to_numpy(), color=colors)
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias = shape / (shape + texture decisions)")
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
    if tex and len(tex) < len(values):
        html_parts.append(
            f"<p>Mean shape bias: {esc(shape_bias_comparison(values, augments))}.</p>"
        )
    for ds, by_model in by_dataset(ctx.artifacts, "shape_bias").items():
        table = per_category_table(ds, by_model)
        if table is not None:
            html_parts.append(
                f"<details><summary>{esc(table.title)}</summary>"
                f"{dataclasses.replace(table, title='').to_html()}</details>"
            )
    return "\n".join(html_parts)


def render_bias_heatmap(ctx: ReportContext, alpha: float = 0.05, n_boot: int = 1000) -> str | None:
    """Heatmap of bias x generalization-dimension correlations.

    Cells are coloured by ``shown`` (the coefficient where p < alpha, else 0, seed 002's
    convention) and annotated with the true coefficient and its p-value; the title gives n.
    """
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    res = ctx.results
    if res[res["measure"] == MEASURE].empty:
        return None
    mt = bias_generalization_matrix(res, ctx.datasets, alpha=alpha, n_boot=n_boot)
    gt = generalization_table(res, ctx.datasets)
    rows = list(dict.fromkeys(mt["x"]))
    cols = list(dict.fromkeys(mt["y"]))
    shown, coef, pval, count = (
        mt.pivot(index="x", columns="y", values=v).reindex(index=rows, columns=cols)
        for v in ("shown", "coefficient", "p_value", "n")
    )
    fig = Figure(figsize=(1.7 * len(cols) + 2.5, 0.6 * len(rows) + 1.5))
    ax = fig.subplots()
    im = ax.imshow(shown.fillna(0).to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
    for i, b in enumerate(rows):
        for j, d in enumerate(cols):
            c, p, v = coef.loc[b, d], pval.loc[b, d], shown.loc[b, d]
            text = (
                f"n/a\nn={number(count.loc[b, d], 0)}"
                if not np.isfinite(c)
                else f"{number(c, 2)}\np={number(p, 3)}"
            )
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
        "<p>Correlation across models of each bias with each generalization dimension, as "
        "seed 002 defines them: in-distribution = mean accuracy on ImageNet val, ImageNet-V2 "
        "and ImageNet-ReaL; robustness = mean of ImageNet-A, ImageNet-C and ImageNet-C-bar "
        "(each corruption set: the mean over its corruptions and severities); concepts = mean "
        "of ImageNet-Sketch, ImageNet-R and Stylized-ImageNet; adversarial = PGD-40 robust "
        "accuracy at the low budget (the synthetic world's counterparts stand in for each). "
        "A dimension is the mean of the components present; the table below names the missing "
        "ones. No bias enters a dimension. "
        f"Cells with p &ge; {alpha} are coloured as 0; the annotation keeps the coefficient "
        "and p.</p>",
        figure_html(fig, "bias x generalization correlation heatmap"),
        generalization_dimensions_table(gt).to_html(),
    ]
    return "\n".join(html_parts)
