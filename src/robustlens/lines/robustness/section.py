"""Report section: effective robustness on natural shifts (Taori et al. 2020; seed 004).

Per shift, a scatter of ID accuracy vs OOD accuracy on logit axes (ticks in accuracy) with
the baseline fitted over the zoo's standard models (solid) and, where the shift has one, the
shipped ImageNet baseline (dashed). Models trained on generated data are highlighted and
joined to their real-only twins. Below: the ER table (per model and shift) with each fit's
slope, intercept and R^2, and the matched-pair table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError
from robustlens.formatting import number
from robustlens.lines.robustness.analysis import (
    er_pairs_table,
    matched_pairs,
    models_config_from_artifacts,
    zoo_effective_robustness,
)
from robustlens.lines.robustness.tables import er_table, pairs_table
from robustlens.metrics.effective_robustness import imagenet_baseline, logit
from robustlens.report.context import ReportContext, figure_html

_TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _shipped_keys(ctx: ReportContext) -> dict[str, str]:
    """{shift dataset: shipped-baseline shift} from the robustness artifacts."""
    out: dict[str, str] = {}
    for per in ctx.artifacts.values():
        for ds, rec in ((per.get("robustness") or {}).get("shifts") or {}).items():
            if rec.get("shift_key"):
                out[ds] = rec["shift_key"]
    return out


def _scatter(
    ax: Any,
    shift: str,
    table: pd.DataFrame,
    line: Any,
    shipped: str | None,
    pairs: list[tuple[str, str]],
) -> None:
    t = table[table["shift"] == shift]
    x, y = np.asarray(logit(t["acc_id"].to_numpy())), np.asarray(logit(t["acc_ood"].to_numpy()))
    pos = dict(zip(t["model"], zip(x, y, strict=True), strict=True))
    for gen, real in pairs:
        if gen in pos and real in pos:
            (x0, y0), (x1, y1) = pos[real], pos[gen]
            ax.annotate(
                "",
                xy=(x1, y1),
                xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "color": "tab:orange", "lw": 1},
            )
    kinds = (
        (t["in_baseline"] & ~t["generated"], "tab:blue", "o", "standard (baseline)"),
        (~t["in_baseline"] & ~t["generated"], "tab:gray", "s", "other training"),
        (t["generated"], "tab:orange", "^", "real + generated"),
    )
    for mask, color, marker, label in kinds:
        if mask.any():
            ax.scatter(
                x[mask.to_numpy()],
                y[mask.to_numpy()],
                c=color,
                marker=marker,
                s=36,
                label=label,
                zorder=3,
                edgecolors="k",
                linewidths=0.4,
            )
    lo = min(x.min(), y.min()) - 0.4
    hi = max(x.max(), y.max()) + 0.4
    xs = np.linspace(lo, hi, 50)
    ax.plot(xs, xs, color="0.75", lw=0.8, ls=":", label="y = x")
    if line is not None:
        r2 = "" if line.r2 is None else f", R²={number(line.r2, 2)}"
        ax.plot(
            xs,
            line.slope * xs + line.intercept,
            color="tab:blue",
            lw=1.2,
            label=f"fit over standard models (n={line.n}{r2})",
        )
    if shipped is not None:
        b = imagenet_baseline(shipped, "logit")
        ax.plot(
            xs,
            b.slope * xs + b.intercept,
            color="tab:green",
            lw=1.2,
            ls="--",
            label=f"shipped {shipped} baseline",
        )
    ticks = [v for v in _TICKS if lo <= logit(v) <= hi]
    ax.set_xticks([logit(v) for v in ticks], [f"{100 * v:g}" for v in ticks])
    ax.set_yticks([logit(v) for v in ticks], [f"{100 * v:g}" for v in ticks])
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("ID accuracy (%, logit axis)")
    ax.set_ylabel(f"{shift} accuracy (%, logit axis)")
    ax.set_title(shift, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")


def robustness_section(ctx: ReportContext) -> str | None:
    """ID-vs-OOD scatter per shift with baselines, ER table and matched pairs."""
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    models_config = models_config_from_artifacts(ctx.artifacts, ctx.models)
    try:
        table, baselines = zoo_effective_robustness(ctx.results, models_config)
    except ValidationError:
        return None
    pairs = matched_pairs(models_config)
    shipped = _shipped_keys(ctx)
    shifts = sorted(table["shift"].unique())
    n = len(shifts)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, shift in zip(axes.ravel(), shifts, strict=False):
        _scatter(ax, shift, table, baselines.get(shift), shipped.get(shift), pairs)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    intro = (
        "<p>Effective robustness (Taori et al. 2020): OOD accuracy above the line that "
        "standard-trained models follow on logit axes, "
        "<code>ER = acc_ood − logit⁻¹(slope·logit(acc_id) + intercept)</code>. The line is "
        "fitted over the zoo's standard models (no generated data, augmentation none or "
        "standard); dashed lines are the shipped ImageNet baselines. Orange triangles were "
        "trained on real + generated images (Bansal &amp; Grover 2023); arrows go from each "
        "real-only twin to its generated-data model. For ImageNet-R/-A the ID accuracy is "
        "restricted to their 200 classes.</p>"
    )
    pairs_df = er_pairs_table(table, pairs)
    return (
        intro
        + figure_html(fig, "ID vs OOD accuracy on logit axes with baselines", width=1200)
        + er_table(table, baselines).to_html()
        + ("" if pairs_df.empty else pairs_table(pairs_df).to_html())
    )
