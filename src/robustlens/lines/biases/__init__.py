"""Shape bias, spectral bias and critical band vs four dimensions of generalization (seed 002)."""

from robustlens.lines.biases.commands import register
from robustlens.lines.biases.measure import BiasesMeasure
from robustlens.lines.biases.section import (
    render_bias_heatmap,
    render_critical_band,
    render_shape_bias,
    render_spectral,
)
from robustlens.measure import Line, Section

LINE = Line(
    name="biases",
    title="Shape, spectral and critical-band biases, PGD, and the dimensions of generalization",
    measures=(BiasesMeasure,),
    sections=(
        Section("Spectral bias", render_spectral, 60),
        Section("Critical band", render_critical_band, 61),
        Section("Shape bias", render_shape_bias, 62),
        Section("Biases vs generalization", render_bias_heatmap, 63),
    ),
    commands=(register,),
    papers=("Gavrikov et al., Can Biases in ImageNet Models Explain Generalization?, CVPR 2024",),
)
