"""Report sections: the study's models drawn among the published ones.

Shown only when the study lists published tables (``ctx.study["published"]``, e.g.
``[testbed, bvg, robustbench]``); each section draws from the tables of its format:

* :func:`render_natural_shifts` (imagenet-testbed, Taori et al. 2020): per natural shift, ID
  vs OOD accuracy on logit axes with the line fitted on the published standard models, the
  user's models highlighted, and their effective robustness with its rank among the published
  models of each type;
* :func:`render_biases` (seed 002, Gavrikov and Keuper 2024): each bias against each
  generalization dimension, the published ResNet-50s in grey and the user's models
  highlighted, Spearman with and without the user's models;
* :func:`render_robustbench` (RobustBench, Croce et al. 2021): clean vs robust accuracy on the
  L-inf leaderboard and clean vs ImageNet-C accuracy on the corruptions leaderboard.

Every plot is followed by a table naming its points; what the study lacks is named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from robustlens.analysis.generalization import BIASES, DIMENSIONS
from robustlens.formatting import esc, number, signed
from robustlens.lines.published.analysis import (
    BiasPoints,
    CorruptionPoints,
    RobustPoints,
    ShiftResult,
    bias_points,
    corruption_points,
    describe_components,
    natural_shifts,
    robust_points,
    tables_of_format,
    user_datasets,
)
from robustlens.lines.published.hover import HOVER_STYLE, figure_with_hover
from robustlens.lines.published.tables import (
    bias_points_table,
    correlations_table,
    corruption_table,
    leaderboard_table,
    shift_points_table,
    shift_user_table,
)
from robustlens.metrics.effective_robustness import logit
from robustlens.report.context import ReportContext
from robustlens.tables import Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_biases", "render_natural_shifts", "render_robustbench"]

#: the testbed's colours per model type (plotting/model_types.py)
TYPE_COLORS = {
    "Standard training": "tab:blue",
    "Lp adversarially robust": "tab:olive",
    "Other robustness intervention": "tab:brown",
    "Trained with more data": "tab:green",
}
_USER = {"color": "tab:red", "marker": "*", "s": 170, "edgecolors": "k", "linewidths": 0.6}
#: a point of a plot: (axes, x, y, the name shown on hover)
Point = tuple[Any, float, float, str]
_TICKS = (1, 2, 5, *range(10, 95, 5), 95, 98, 99)


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in dict.fromkeys(notes))
    return f"<div class='warn'><ul>{items}</ul></div>"


def _details(table: Table) -> str:
    """A long table, collapsed under its title."""
    return f"<details><summary>{esc(table.title)}</summary>{table.to_html(heading='h5')}</details>"


def _points(ax: Any, published: Any, user: Any, hover: Callable[[Any, Any], str]) -> list[Point]:
    """The hover points of one panel: ``published`` then ``user`` rows as ``(x, y, row)``
    triples, each named by ``hover(name, row)`` (the user's models marked ``(yours)``)."""
    points: list[Point] = [(ax, float(x), float(y), hover(n, r)) for n, x, y, r in published]
    points += [(ax, float(x), float(y), f"{n} (yours)") for n, x, y, _ in user]
    return points


def _finish_axes(ax: Any, xlabel: str, ylabel: str, title: str, **legend: Any) -> None:
    """Labels, title, grid and legend of a single-panel scatter."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, **legend)


def _section(
    ctx: ReportContext,
    fmt: str,
    intro: str,
    render_table: Callable[[ReportContext, Any], list[str]],
    notes: Callable[[ReportContext], Sequence[str]] = lambda ctx: (),
) -> str | None:
    """One section over the study's published tables of format ``fmt`` (``None`` without
    any): the hover style, ``intro`` and ``notes(ctx)``, then per table (headed by its label
    where there are several) what ``render_table(ctx, table)`` gives."""
    tables = tables_of_format(ctx, fmt)
    if not tables:
        return None
    parts = [HOVER_STYLE, intro, _notes(notes(ctx))]
    for label, table in tables:
        if len(tables) > 1:
            parts.append(f"<h3>{esc(label)}</h3>")
        parts += render_table(ctx, table)
    return "".join(parts)


def _label_points(ax: Any, xs: Sequence[float], ys: Sequence[float], names: Sequence[str]) -> None:
    for x, y, name in zip(xs, ys, names, strict=True):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(
                str(name),
                (x, y),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=8,
                color="tab:red",
            )


# --------------------------------------------------------------------- (a) natural shifts
def _logit_axis(axis: Any, values: np.ndarray) -> tuple[float, float]:
    """Limits (logit units) around ``values`` and ticks labelled in percent."""
    lo, hi = float(np.nanmin(values)) - 0.15, float(np.nanmax(values)) + 0.15
    ticks = [t for t in _TICKS if lo <= logit(t / 100) <= hi]
    if len(ticks) > 9:  # every 10 %, and the ends of the scale
        ticks = [t for t in ticks if t % 10 == 0 or t < 10 or t > 90]
    axis.set_ticks([logit(t / 100) for t in ticks], [str(t) for t in ticks])
    return lo, hi


def _shift_figure(res: ShiftResult) -> tuple[Figure, list[Point]]:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    fig = Figure(figsize=(6.4, 5.4))
    ax = fig.subplots()
    pub = res.published[res.published["shown"]]
    x = np.concatenate([np.asarray(logit(pub["acc_id"])), np.asarray(logit(res.user["acc_id"]))])
    y = np.concatenate([np.asarray(logit(pub["acc_ood"])), np.asarray(logit(res.user["acc_ood"]))])
    x_lo, x_hi = _logit_axis(ax.xaxis, x)
    y_lo, y_hi = _logit_axis(ax.yaxis, y)
    xs = np.linspace(x_lo, x_hi, 100)
    ax.plot(xs, xs, ls="--", color="k", lw=1, label="y = x")
    b = res.baseline
    ax.plot(
        xs,
        b.slope * xs + b.intercept,
        color="tab:red",
        lw=1.5,
        alpha=0.6,
        label=f"linear fit ({b.n} standard models)",
    )
    for t, g in pub.groupby(pub["type"].astype(str)):
        ax.scatter(
            logit(g["acc_id"]),
            logit(g["acc_ood"]),
            s=18,
            alpha=0.55,
            linewidths=0,
            color=TYPE_COLORS.get(t, "tab:gray"),
            label=f"{t} ({len(g)})",
        )
    if len(res.user):
        ux = np.atleast_1d(logit(res.user["acc_id"]))
        uy = np.atleast_1d(logit(res.user["acc_ood"]))
        ax.scatter(ux, uy, zorder=5, label="your models", **_USER)
        _label_points(ax, ux, uy, list(res.user["model"]))
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    _finish_axes(
        ax,
        f"{res.x_label} (top-1, %)",
        f"{res.title} (top-1, %)",
        f"Distribution shift to {res.title}",
        loc="upper left",
    )

    def rows(frame: Any) -> list[tuple[Any, Any, Any, Any]]:
        return [
            (r["model"], logit(r["acc_id"]), logit(r["acc_ood"]), r) for _, r in frame.iterrows()
        ]

    points = _points(ax, rows(pub), rows(res.user), lambda n, r: f"{n} ({r['type']})")
    return fig, points


def _shift_notes(ctx: ReportContext) -> list[str]:
    if user_datasets(ctx, "imagenet_a"):
        return [
            "ImageNet-A: the testbed fits it with two lines (split at ResNet-50's "
            "accuracy), not one; it is not drawn here."
        ]
    return []


_SHIFTS_INTRO = (
    "<p>Your models among the imagenet-testbed's (Taori et al., NeurIPS 2020). On logit "
    "axes standard-trained models lie on a line, fitted here on the published standard "
    "models exactly as the testbed does; a model's effective robustness (ER) is how far "
    "its OOD accuracy lies above that line, "
    "<code>ER = acc_ood − logit⁻¹(slope·logit(acc_id) + intercept)</code>. Your models "
    "are the red stars. For ImageNet-R and ObjectNet the x-axis is ImageNet accuracy on "
    "their classes (the <code>robustness</code> measure computes it). Hover a point for "
    "its model; the table below each plot lists them all.</p>"
)


def _shift_parts(ctx: ReportContext, table: Any) -> list[str]:
    parts: list[str] = []
    for res in natural_shifts(ctx, table):
        b = res.baseline
        parts.append(f"<h4>{esc(res.title)}</h4>")
        parts.append(
            f"<p>Line fitted on {b.n} published standard models: slope "
            f"{number(b.slope, 4)}, intercept {number(b.intercept, 4)}, R² "
            f"{number(b.r2, 3)}.</p>"
        )
        parts.append(_notes(res.notes))
        fig, points = _shift_figure(res)
        alt = f"ID vs {res.title} accuracy, logit axes"
        parts.append(figure_with_hover(fig, alt, 720, points))
        if len(res.user):
            parts.append(shift_user_table(res).to_html())
        parts.append(_details(shift_points_table(res)))
    return parts


def render_natural_shifts(ctx: ReportContext) -> str | None:
    """ID vs OOD on each of the testbed's natural shifts, the user's models among ~200."""
    return _section(ctx, "testbed", _SHIFTS_INTRO, _shift_parts, _shift_notes)


# ------------------------------------------------------------------------------ (b) biases
def _bias_figure(bp: BiasPoints) -> tuple[Figure, list[Point]]:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib is slow to import

    biases = [b for b in BIASES if np.isfinite(bp.published[b]).any()]
    fig = Figure(figsize=(2.7 * len(DIMENSIONS), 2.2 * len(biases)))
    axes = fig.subplots(len(biases), len(DIMENSIONS), squeeze=False)
    corr = bp.correlations.set_index(["bias", "dimension"])
    points: list[Point] = []
    for i, b in enumerate(biases):
        for j, dim in enumerate(DIMENSIONS):
            ax = axes[i, j]
            ax.scatter(
                bp.published[b], bp.published[dim], s=14, color="0.55", alpha=0.8, linewidths=0
            )
            if len(bp.user):
                ux, uy = bp.user[b].to_numpy(float), bp.user[dim].to_numpy(float)
                ax.scatter(ux, uy, zorder=5, **{**_USER, "s": 110})
                _label_points(ax, ux, uy, list(bp.user.index))
            values = np.concatenate([bp.published[b].to_numpy(float), bp.user[b].to_numpy(float)])
            values = values[np.isfinite(values)]
            if len(values) and values.min() > 0 and values.max() / values.min() > 100:
                ax.set_xscale("log")
            else:
                ax.ticklabel_format(axis="x", useOffset=False)
                ax.xaxis.set_major_locator(MaxNLocator(4))
            r = corr.loc[(b, dim)]
            star = "*" if r["p"] < 0.05 else ""
            star_w = "*" if r["p_with"] < 0.05 else ""
            ax.set_title(
                f"ρ {signed(r['rho'])}{star} | with yours {signed(r['rho_with'])}{star_w}",
                fontsize=8,
            )
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.set_ylabel(dim, fontsize=8)
            ax.set_xlabel(b, fontsize=8)
            points += _points(
                ax,
                [(m, r[b], r[dim], r) for m, r in bp.published.iterrows()],
                [(m, r[b], r[dim], r) for m, r in bp.user.iterrows()],
                lambda m, r: f"{m} ({r['category']})",
            )
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.04, top=0.98, hspace=0.6, wspace=0.35)
    return fig, points


_BIASES_INTRO = (
    "<p>Your models among seed 002's 48 ResNet-50s (Gavrikov and Keuper, CVPR 2024): each "
    "bias against each generalization dimension. Grey: the published models; red stars: "
    "yours. Each panel gives Spearman's ρ over the published models and with yours added "
    "(* p &lt; 0.05). Accuracies are fractions; the critical band's numbers are the "
    "reference's absolute criterion (its degenerate fits, with bandwidths of ~11,000 "
    "octaves, are the authors' own numbers). Hover a point for its model.</p>"
)


def _bias_parts(ctx: ReportContext, table: Any) -> list[str]:
    bp = bias_points(ctx, table)
    parts = [f"<p>Dimensions: {esc(describe_components(bp.components))}.</p>", _notes(bp.notes)]
    fig, points = _bias_figure(bp)
    parts.append(figure_with_hover(fig, "biases vs generalization dimensions", 1100, points))
    parts.append(correlations_table(bp).to_html())
    parts.append(_details(bias_points_table(bp)))
    return parts


def render_biases(ctx: ReportContext) -> str | None:
    """Seed 002's scatter of each bias against each generalization dimension."""
    return _section(ctx, "bvg", _BIASES_INTRO, _bias_parts)


# ------------------------------------------------------------------------- (c) RobustBench
def _leaderboard_figure(
    pts: RobustPoints | CorruptionPoints, y: str, extra: Any, ylabel: str, title: str
) -> tuple[Figure, list[Point]]:
    """Clean accuracy vs column ``y`` of a RobustBench leaderboard (``extra``: the entries
    trained with extra data) with the user's models."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    fig = Figure(figsize=(6.0, 4.6))
    ax = fig.subplots()
    extra = np.asarray(extra, dtype=bool)
    px, py = np.asarray(pts.published["clean"], float), np.asarray(pts.published[y], float)
    ux, uy = np.asarray(pts.user["clean"], float), np.asarray(pts.user[y], float)
    names = list(pts.user["model"])
    ax.scatter(px[~extra], py[~extra], s=26, color="tab:blue", alpha=0.7, label="leaderboard")
    if extra.any():
        ax.scatter(
            px[extra],
            py[extra],
            s=26,
            color="tab:green",
            alpha=0.7,
            marker="s",
            label="leaderboard, extra data",
        )
    if len(names):
        ax.scatter(pts.user["clean"], pts.user[y], zorder=5, label="your models", **_USER)
        _label_points(ax, ux, uy, names)
    _finish_axes(ax, "clean accuracy", ylabel, title)
    pub = zip(list(pts.published["model"]), px, py, px, strict=True)
    points = _points(ax, pub, zip(names, ux, uy, ux, strict=True), lambda n, _: str(n))
    return fig, points


_ROBUSTBENCH_INTRO = (
    "<p>Your models on RobustBench's ImageNet leaderboards (Croce et al., NeurIPS 2021 "
    "Datasets and Benchmarks), at the same threat model only: L-inf eps 4/255 "
    "(AutoAttack) and ImageNet-C. Hover a point for its model.</p>"
)


def _robustbench_parts(ctx: ReportContext, table: Any) -> list[str]:
    rp = robust_points(ctx, table)
    parts = ["<h4>L-inf, eps 4/255</h4>", _notes(rp.notes)]
    if len(rp.published):
        fig, points = _leaderboard_figure(
            rp,
            "robust",
            rp.published["additional_data"],
            "robust accuracy (L-inf 4/255)",
            "RobustBench ImageNet L-inf",
        )
        parts.append(figure_with_hover(fig, "RobustBench L-inf leaderboard", 640, points))
        parts.append(leaderboard_table(rp).to_html())
    cp = corruption_points(ctx, table)
    if len(cp.published):
        parts.append("<h4>Common corruptions (ImageNet-C)</h4>")
        parts.append(_notes(cp.notes))
        fig, points = _leaderboard_figure(
            cp,
            "corruption",
            np.zeros(len(cp.published)),
            "ImageNet-C accuracy (mean)",
            "RobustBench ImageNet corruptions",
        )
        alt = "RobustBench corruptions leaderboard"
        parts.append(figure_with_hover(fig, alt, 640, points))
        parts.append(corruption_table(cp).to_html())
    return parts


def render_robustbench(ctx: ReportContext) -> str | None:
    """Clean vs robust accuracy on RobustBench's ImageNet leaderboards."""
    return _section(ctx, "robustbench", _ROBUSTBENCH_INTRO, _robustbench_parts)
