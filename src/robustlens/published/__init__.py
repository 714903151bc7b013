"""Published per-model tables, read into one canonical table: where do my models stand?

Readers of the imagenet-testbed's table (Taori et al., NeurIPS 2020), seed 002's benchmark
(Gavrikov and Keuper, CVPR 2024) and RobustBench's ImageNet leaderboards (Croce et al., 2021),
all three shipped as package data next to their licences and citations;
:func:`load_published` reads a shipped table by name or a newer copy from a path. The testbed's
baselines are refitted from its table by :func:`published_baseline`.
"""

from robustlens.published.baselines import (
    TESTBED_SHIFTS,
    ShiftPlot,
    published_baseline,
    published_effective_robustness,
    shift_points,
)
from robustlens.published.bvg import read_bvg
from robustlens.published.load import (
    FORMATS,
    SOURCES,
    detect_format,
    load_published,
    shipped_data,
)
from robustlens.published.robustbench import read_robustbench
from robustlens.published.testbed import STANDARD, parse_model_types, read_testbed

__all__ = [
    "FORMATS",
    "SOURCES",
    "STANDARD",
    "TESTBED_SHIFTS",
    "ShiftPlot",
    "detect_format",
    "load_published",
    "parse_model_types",
    "published_baseline",
    "published_effective_robustness",
    "read_bvg",
    "read_robustbench",
    "read_testbed",
    "shift_points",
    "shipped_data",
]
