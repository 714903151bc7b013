"""Effective invariance and label-free prediction of OOD accuracy (seed 001).

Deng, Gould, Zheng, "On the Strong Correlation Between Model Invariance and Generalization",
NeurIPS 2022; label-free predictors: DoC, ATC, nuclear norm, average confidence, agreement.
"""

from robustlens.lines.invariance.commands import register
from robustlens.lines.invariance.label_free import LabelFreeMeasure
from robustlens.lines.invariance.measure import InvarianceMeasure
from robustlens.lines.invariance.section import render_invariance
from robustlens.measure import Line, Section

LINE = Line(
    name="invariance",
    title="Effective invariance (rotation, grayscale) and label-free OOD accuracy prediction",
    measures=(InvarianceMeasure, LabelFreeMeasure),
    sections=(
        Section("Effective invariance and label-free accuracy prediction", render_invariance, 30),
    ),
    commands=(register,),
    papers=(
        "Deng, Gould, Zheng, On the Strong Correlation Between Model Invariance and "
        "Generalization, NeurIPS 2022",
    ),
)
