"""Accuracy and calibration: top-1 accuracy and ECE of every model on every labelled dataset."""

from robustlens.lines.accuracy.measure import AccuracyMeasure
from robustlens.lines.accuracy.section import render_corruption_error
from robustlens.measure import Line, Section

LINE = Line(
    name="accuracy",
    title="Top-1 accuracy and expected calibration error",
    measures=(AccuracyMeasure,),
    sections=(Section("Corruption error (mCE)", render_corruption_error, 15),),
    papers=(
        "Guo et al., On Calibration of Modern Neural Networks, ICML 2017",
        "Hendrycks, Dietterich, Benchmarking Neural Network Robustness to Common Corruptions "
        "and Perturbations, ICLR 2019",
    ),
)
