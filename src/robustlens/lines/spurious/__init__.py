"""Spurious features: neural PCA of a class logit, spurious score, SpuFix (seed 003)."""

from robustlens.lines.spurious.commands import register
from robustlens.lines.spurious.measure import PAPER, SpuriousMeasure
from robustlens.lines.spurious.section import spurious_section
from robustlens.measure import Line, Section

LINE = Line(
    name="spurious",
    title="Neural PCA, spurious score and SpuFix",
    measures=(SpuriousMeasure,),
    sections=(Section("Spurious features", spurious_section, 60),),
    commands=(register,),
    papers=(PAPER,),
)
