"""Report section: how will my model do on this (unlabelled) data?

For each unlabelled dataset of the study, every model's estimated accuracy from the
label-free predictor most reliable on the study's labelled shifts, with its expected error and
interval, then every predictor's estimate, how reliable each predictor was, and the measures
that skipped the unlabelled datasets because they need labels. Never runs a model.
"""

from __future__ import annotations

from robustlens.formatting import esc
from robustlens.lines.estimate.analysis import TOP1, Estimates, estimate_study
from robustlens.lines.estimate.tables import (
    estimate_table,
    predictor_estimates_table,
    reliability_table,
    skips_table,
)
from robustlens.report.context import ReportContext
from robustlens.roles import UNLABELED

__all__ = ["estimate_context", "render_estimate"]


def estimate_context(ctx: ReportContext, alpha: float = 0.1) -> Estimates:
    """:func:`~robustlens.lines.estimate.analysis.estimate_study` on a report's context."""
    return estimate_study(
        ctx.results,
        ctx.datasets,
        ctx.iter_per_sample(["sample_id", TOP1]),
        alpha=alpha,
    )


def render_estimate(ctx: ReportContext) -> str | None:
    """The section, or ``None`` when the study has no unlabelled dataset."""
    if not ctx.datasets_with_role(UNLABELED):
        return None
    est = estimate_context(ctx)
    parts = [
        "<p>The study's unlabelled datasets have no labels, so no accuracy is measured on them. "
        "Each label-free predictor (average confidence, DoC, ATC, the nuclear norm, effective "
        "invariance, agreement between the models, clustering indicators) is calibrated per "
        "model on the study's labelled shifted datasets (a least-squares line of accuracy on "
        "the predictor) and gives an estimate, with the error it made on the labelled shifts "
        "when each was left out in turn.</p>"
    ]
    if est.recommended:
        parts.append(
            f"<p><b>Recommended predictor: {esc(est.recommended)}</b>, the lowest error on the "
            "labelled shifts.</p>"
        )
    for d in est.unlabeled:
        parts.append(estimate_table(est, d).to_html())
        if not est.estimates.empty:
            parts.append(predictor_estimates_table(est, d).to_html())
    parts.append(reliability_table(est).to_html())
    skips = ctx.study.get("label_skips") or []
    if skips:
        parts.append(skips_table(skips).to_html())
    return "".join(parts)
