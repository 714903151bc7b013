"""The testbed's effective-robustness baselines, fitted from its published table.

Taori et al. (NeurIPS 2020) fit, per natural shift, a line through their standard-trained
models on logit axes (``plotting/plotter.py``: ``scipy.stats.linregress`` of the transformed
accuracies). Which models and which x-axis each plot uses is in its plotting script:

* ``imagenet_v2``: x-axis ``imagenet_val``, models with val >= 55 %
  (``paper_nat_shift_imagenetv2.py``);
* ``imagenet_sketch``: x-axis ``imagenet_val``, val >= 55 % (``paper_appendix_imagenet_sketch.py``);
* ``imagenet_r``: x-axis ``imagenet_val@imagenet_r`` (val on R's 200 classes), x >= 75 %
  (``paper_appendix_imagenet_r.py``);
* ``objectnet``: x-axis ``imagenet_val@objectnet`` (val on ObjectNet's classes), x >= 55 %
  (``paper_objectnet.py``).

A model is *shown* when its name has no ``subsample`` and its x-axis accuracy reaches the
threshold; the line is fitted over the shown models of type ``Standard training`` whose name has
neither ``aws`` nor ``batch64`` (for ImageNet-R also not ``deepaugment``), with both accuracies
present. ImageNet-A is left out: the testbed fits it piecewise (two lines, split at ResNet-50's
accuracy). Fitted on the shipped table these lines are exactly the shipped
:data:`robustlens.metrics.effective_robustness.IMAGENET_BASELINES` (to 4 decimals, logit and
probit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError
from robustlens.metrics.effective_robustness import (
    Baseline,
    effective_robustness,
    fit_baseline,
)
from robustlens.published.testbed import STANDARD

__all__ = [
    "TESTBED_SHIFTS",
    "ShiftPlot",
    "published_baseline",
    "published_effective_robustness",
    "shift_points",
]


@dataclass(frozen=True)
class ShiftPlot:
    """How the testbed plots one natural shift.

    Attributes:
        shift: the shifted dataset (canonical column of the y-axis).
        x: the in-distribution column of the x-axis.
        min_x: the lowest x-axis accuracy shown (a fraction).
        title: the shift's name as the testbed titles the plot.
        exclude: name fragments (lower case) of models left out of the fit besides ``aws``
            and ``batch64``.
    """

    shift: str
    x: str
    min_x: float
    title: str
    exclude: tuple[str, ...] = ()


#: the testbed's natural-shift plots with a linear baseline, keyed by shift
TESTBED_SHIFTS: dict[str, ShiftPlot] = {
    "imagenet_v2": ShiftPlot("imagenet_v2", "imagenet_val", 0.55, "ImageNetV2"),
    "imagenet_sketch": ShiftPlot("imagenet_sketch", "imagenet_val", 0.55, "ImageNet-Sketch"),
    "imagenet_r": ShiftPlot(
        "imagenet_r", "imagenet_val@imagenet_r", 0.75, "ImageNet-R", ("deepaugment",)
    ),
    "objectnet": ShiftPlot("objectnet", "imagenet_val@objectnet", 0.55, "ObjectNet"),
}


def _plot(shift: str) -> ShiftPlot:
    if shift not in TESTBED_SHIFTS:
        raise ValidationError(
            f"shift: expected one of {list(TESTBED_SHIFTS)}, got {shift!r} (ImageNet-A's "
            "testbed baseline is piecewise and not fitted here)"
        )
    return TESTBED_SHIFTS[shift]


def shift_points(table: pd.DataFrame, shift: str) -> pd.DataFrame:
    """The published models of one shift's plot, with their role in the fit.

    Args:
        table: a canonical testbed table (:func:`robustlens.published.load_published`).
        shift: a key of :data:`TESTBED_SHIFTS`.

    Returns:
        DataFrame with ``model``, ``type``, ``acc_id`` (the x-axis), ``acc_ood``, ``shown``
        (in the testbed's plot) and ``in_fit`` (used for the line), one row per model with
        both accuracies.

    Raises:
        ValidationError: the table lacks the shift's columns.
    """
    plot = _plot(shift)
    missing = [c for c in ("model", "type", plot.x, plot.shift) if c not in table.columns]
    if missing:
        raise ValidationError(
            f"the published table has no column {missing} for {shift}; a testbed table has "
            f"{plot.x} and {plot.shift}"
        )
    t = table[["model", "type", plot.x, plot.shift]].rename(
        columns={plot.x: "acc_id", plot.shift: "acc_ood"}
    )
    t = t[np.isfinite(t["acc_id"]) & np.isfinite(t["acc_ood"])].reset_index(drop=True)
    name = t["model"].astype(str).str.lower()
    t["shown"] = ~name.str.contains("subsample") & (t["acc_id"] >= plot.min_x)
    excluded = name.str.contains("aws") | name.str.contains("batch64")
    for fragment in plot.exclude:
        excluded |= name.str.contains(fragment)
    t["in_fit"] = t["shown"] & (t["type"] == STANDARD) & ~excluded
    return t


def published_baseline(table: pd.DataFrame, shift: str, transform: str = "logit") -> Baseline:
    """The testbed's baseline of ``shift``, fitted on the table's standard models.

    Example:
        >>> from robustlens.published import load_published
        >>> b = published_baseline(load_published("testbed"), "imagenet_v2")
        >>> round(b.slope, 4), round(b.intercept, 4), b.n
        (0.9232, -0.4977, 85)
    """
    t = shift_points(table, shift)
    fit = t[t["in_fit"]]
    return fit_baseline(fit["acc_id"].to_numpy(), fit["acc_ood"].to_numpy(), transform)


def published_effective_robustness(
    table: pd.DataFrame, shift: str, baseline: Baseline
) -> pd.DataFrame:
    """:func:`shift_points` with each model's effective robustness ``er`` against ``baseline``."""
    t = shift_points(table, shift)
    t["er"] = np.asarray(
        effective_robustness(t["acc_id"].to_numpy(), t["acc_ood"].to_numpy(), baseline),
        dtype=np.float64,
    )
    return t
