"""Measures: declare the views they need per dataset; compute numbers from stored arrays.

A measure never runs a model. The study planner takes, for each (model, dataset), the union
of the views its measures request and hands one job to the engine.
"""

from robustlens.measures.base import (
    DatasetInfo,
    Measure,
    MeasureOutput,
    ModelInfo,
    available_measures,
    get_measure,
    register_measure,
)

__all__ = [
    "DatasetInfo",
    "Measure",
    "MeasureOutput",
    "ModelInfo",
    "available_measures",
    "get_measure",
    "register_measure",
]
