"""Training on real + generated images, and effective robustness on natural shifts (seed 004)."""

from robustlens.lines.robustness.commands import register
from robustlens.lines.robustness.measure import RobustnessMeasure
from robustlens.lines.robustness.section import robustness_section
from robustlens.measure import Line, Section

LINE = Line(
    name="robustness",
    title="Effective robustness on natural shifts, and real + generated training",
    measures=(RobustnessMeasure,),
    sections=(Section("Effective robustness on natural shifts", robustness_section, 70),),
    commands=(register,),
    papers=(
        "Taori et al., Measuring Robustness to Natural Distribution Shifts in Image "
        "Classification, NeurIPS 2020",
    ),
)
