"""Your models among the published zoos: the imagenet-testbed, seed 002 and RobustBench.

No measure: the sections read the study's results and the published tables the study lists
(``published: [testbed, bvg, robustbench]``; :mod:`robustlens.published`).
"""

from robustlens.lines.published.section import (
    render_biases,
    render_natural_shifts,
    render_robustbench,
)
from robustlens.measure import Line, Section

LINE = Line(
    name="published",
    title="Your models among the published zoos (imagenet-testbed, seed 002, RobustBench)",
    sections=(
        Section("Among the published models: natural shifts", render_natural_shifts, 75),
        Section("Among the published models: biases and generalization", render_biases, 76),
        Section("Among the published models: RobustBench", render_robustbench, 77),
    ),
    papers=(
        "Taori et al., Measuring Robustness to Natural Distribution Shifts in Image "
        "Classification, NeurIPS 2020",
        "Gavrikov and Keuper, Can Biases in ImageNet Models Explain Generalization?, CVPR 2024",
        "Croce et al., RobustBench: a standardized adversarial robustness benchmark, NeurIPS "
        "2021 Datasets and Benchmarks",
    ),
)
