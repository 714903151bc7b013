"""Accuracy and calibration: top-1 accuracy and ECE of every model on every labelled dataset."""

from robustlens.lines.accuracy.measure import AccuracyMeasure
from robustlens.measure import Line

LINE = Line(
    name="accuracy",
    title="Top-1 accuracy and expected calibration error",
    measures=(AccuracyMeasure,),
    papers=("Guo et al., On Calibration of Modern Neural Networks, ICML 2017",),
)
