"""Report section "Validity: does each measure recover the cause we planted?".

The synthetic world plants each cause a research line claims to detect (a spurious mark,
texture, rotation and grayscale, corruptions, generated data) at a known strength in each
zoo model's training. The section shows, per research line, whether the line's measure
recovers it across the zoo, with the evidence (Spearman rho, p-value, bootstrap interval, n),
then the planted causes and measured ground truth per model. Never runs a model.
"""

from __future__ import annotations

from robustlens.formatting import esc
from robustlens.lines.validity.analysis import ValidityOptions, evidence
from robustlens.lines.validity.tables import (
    causes_table,
    family_table,
    validity_of,
    validity_table,
)
from robustlens.report.context import ReportContext

__all__ = ["SECTION_TITLE", "render_validity"]

SECTION_TITLE = "Validity: does each measure recover the cause we planted?"

_INTRO = (
    "<p>Each research line claims to detect a cause of (non-)robustness. The synthetic world "
    "plants those causes at known strengths in the zoo's training (the causes are recorded "
    "in each model's config), and the <code>ground_truth</code> measure of this line "
    "measures them directly from labels and predictions, never through the measure under "
    "test: <b>mark reliance</b> = the fraction of the <code>spurious</code> split (class "
    "k's mark on an image not of class k) predicted as k; <b>texture reliance</b> = texture "
    "decisions among shape-or-texture decisions on cue-conflict images; <b>rotation and "
    "grayscale robustness</b> = accuracy under those views; <b>corruption robustness</b> = "
    "mean accuracy over the corrupted sets. A check is <b>recovered</b> when Spearman's rho "
    "across the zoo has the expected sign, |rho| &ge; {t:g} and p &lt; {a:g}; the other "
    "checks state their rule. Where a measure does not recover its cause, the table says so "
    "with the evidence: the measures' settings were not tuned to these results.</p>"
)


def render_validity(ctx: ReportContext, options: ValidityOptions | None = None) -> str | None:
    """The validity table, what was not recovered and why, and the causes per model;
    ``None`` for a study without planted causes or ground truth."""
    o = options or ValidityOptions()
    frame = validity_of(ctx, o)
    if frame is None:
        return None
    counts = frame["recovered"].value_counts()
    parts = [
        _INTRO.format(t=o.threshold, a=o.alpha),
        f"<p><b>{counts.get('yes', 0)}</b> checks recovered, <b>{counts.get('no', 0)}</b> "
        f"not recovered, {counts.get('n/a', 0)} not testable on this study.</p>",
        validity_table(frame, o).to_html(table_id="t-validity"),
    ]
    failed = frame[frame["recovered"] == "no"]
    if len(failed):
        items = "".join(
            f"<li><b>seed {esc(r['seed'])}, {esc(r['check'])}</b>: {esc(evidence(r))}"
            f"{' (' + esc(r['note']) + ')' if r['note'] else ''}</li>"
            for r in failed.to_dict("records")
        )
        parts.append(f"<h4>Not recovered, with the evidence</h4><ul>{items}</ul>")
    untestable = frame[frame["recovered"] == "n/a"]
    if len(untestable):
        items = "".join(
            f"<li>seed {esc(r['seed'])}, {esc(r['check'])}: {esc(r['note'] or 'reported')}</li>"
            for r in untestable.to_dict("records")
        )
        summary = "<summary>Not testable or reported only</summary>"
        parts.append(f"<details>{summary}<ul>{items}</ul></details>")
    causes = causes_table(ctx.results, ctx.models)
    if causes is not None:
        parts.append(causes.to_html())
    fam = family_table(ctx.results, ctx.datasets, o)
    if fam is not None:
        parts.append(f"<details><summary>{esc(fam.title)}</summary>{fam.to_html()}</details>")
    return "".join(parts)
