"""Validity: does each research line's measure recover the cause the world planted?

The measure ``ground_truth`` (:mod:`robustlens.lines.validity.measure`) measures each planted
cause directly; :mod:`robustlens.lines.validity.analysis` correlates every line's measure with
it across the zoo (read from the results table, never by importing the line); the report
section and ``validity.csv`` show the verdicts with their evidence.
"""

from robustlens.lines.validity.commands import register
from robustlens.lines.validity.measure import GroundTruthMeasure
from robustlens.lines.validity.section import SECTION_TITLE, render_validity
from robustlens.lines.validity.tables import validity_export, validity_summary
from robustlens.measure import Line, Section
from robustlens.report.exports import register_export

__all__ = ["LINE", "validity_summary"]

register_export("validity.csv", validity_export)

LINE = Line(
    name="validity",
    title="Validity: each measure against the cause the synthetic world planted",
    measures=(GroundTruthMeasure,),
    sections=(Section(SECTION_TITLE, render_validity, 95),),
    commands=(register,),
    summaries=(validity_summary,),
    papers=(),
)
