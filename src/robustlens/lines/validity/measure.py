"""Measured ground truth of each planted cause, computed directly from labels and predictions.

The validity line asks whether each research line's measure recovers a cause the synthetic
world planted. Its reference numbers must not come from the measure under test, so this
measure computes them from the stored logits and the datasets' own labels, nothing else:

* ``mark_reliance`` (on each ``spurious`` dataset): the fraction of its images predicted as
  the class whose mark they carry (the ``spurious_label`` extra, else the label). Images whose
  object class equals the mark's class are left out, since predicting the object there is no
  reliance on the mark; on a split whose images show no object (the label *is* the mark's
  class), every image counts. ``mark_reliance_n``: the images counted.
* ``texture_reliance`` (on each ``cue_conflict`` dataset): the fraction of texture decisions
  among the decisions that are the shape or the texture (images whose shape and texture
  labels agree are left out); ``texture_decisions_n``: how many such decisions. This is the
  same decision count the shape bias is built on (shape bias = 1 - texture reliance), so it
  is a consistency check of that number, not an independent cause.
* ``clean_accuracy``, ``rotation_accuracy`` (the mean top-1 accuracy over the ``rot90``,
  ``rot180`` and ``rot270`` views) and ``gray_accuracy`` (the ``gray`` view) on each ``id``
  dataset: the model's robustness to those views, measured with labels. The views are the ones
  the invariance line requests, so they cost no extra forward pass in a study that runs it.
* ``corruption_accuracy`` (dataset ``"*"``): the mean top-1 accuracy over every ``corrupt``
  dataset (types x severities, each weighted once); ``corruption_datasets_n``: how many.

Predictions are dataset-space (:func:`robustlens.measure.dataset_predictions` through each
dataset's class mapping), as every other line's accuracies.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robustlens.errors import ValidationError
from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput

__all__ = ["GROUND_TRUTH_VALUES", "ROTATION_VIEWS", "VIEWS_BY_ROLE", "GroundTruthMeasure"]

#: the rotated views averaged into ``rotation_accuracy`` (those of the invariance line)
ROTATION_VIEWS = ("rot90", "rot180", "rot270")
#: views requested per dataset role (no features: only logits are read)
VIEWS_BY_ROLE: dict[str, tuple[str, ...]] = {
    "spurious": ("clean",),
    "cue_conflict": ("clean",),
    "id": ("clean", *ROTATION_VIEWS, "gray"),
    "corrupt": ("clean",),
}
#: every value the measure reports
GROUND_TRUTH_VALUES = (
    "mark_reliance",
    "mark_reliance_n",
    "texture_reliance",
    "texture_decisions_n",
    "clean_accuracy",
    "rotation_accuracy",
    "gray_accuracy",
    "corruption_accuracy",
    "corruption_datasets_n",
)
_NAN = float("nan")


def _accuracy(data: DatasetContext, view: str) -> float:
    labels = np.asarray(data.arrays.labels(), dtype=np.int64)
    if not len(labels):
        return _NAN
    pred = data.predictions(view)[1]
    return float(np.mean(pred == labels))


def _rate(hits: np.ndarray, n: int) -> float:
    return float(hits.sum()) / n if n else _NAN


class GroundTruthMeasure(Measure):
    """Ground truth of the planted causes: mark and texture reliance, view and corruption
    accuracy (see the module doc). Labels and stored logits only; never another measure."""

    name = "ground_truth"
    description = (
        "measured ground truth of planted causes: mark reliance, texture reliance, accuracy "
        "under rotation, grayscale and corruption"
    )
    paper = (
        "none (ground truth of the planted causes, from labels and predictions); it validates "
        "the measures of Ho et al. 2022, Deng et al. NeurIPS 2022, Gavrikov et al. CVPR 2024, "
        "Neuhaus et al. ICCV 2023 and Bansal & Grover 2023"
    )

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return dict.fromkeys(VIEWS_BY_ROLE.get(dataset.role, ()), False)

    def compute_datasets(self, data: Mapping[str, DatasetContext], out: MeasureOutput) -> None:
        corrupt: list[float] = []
        for d in data.values():
            role = d.info.role
            if role == "spurious":
                self._marks(d, out)
            elif role == "cue_conflict":
                self._texture(d, out)
            elif role == "id":
                self._views(d, out)
            elif role == "corrupt":
                corrupt.append(_accuracy(d, "clean"))
        if corrupt:
            finite = [a for a in corrupt if np.isfinite(a)]
            out.values[("*", "corruption_accuracy")] = float(np.mean(finite)) if finite else _NAN
            out.values[("*", "corruption_datasets_n")] = float(len(finite))

    @staticmethod
    def _marks(data: DatasetContext, out: MeasureOutput) -> None:
        labels = np.asarray(data.arrays.labels(), dtype=np.int64)
        try:
            marks = np.asarray(data.arrays.extra("spurious_label"), dtype=np.int64)
        except KeyError:
            marks = labels
        used = labels != marks
        if not used.any():  # no object in the images: the label is the mark's class
            used = np.ones(len(labels), dtype=bool)
        pred = data.predictions("clean")[1] if len(labels) else np.zeros(0, np.int64)
        hit = (pred == marks) & used
        n = int(used.sum())
        out.values[(data.name, "mark_reliance")] = _rate(hit, n)
        out.values[(data.name, "mark_reliance_n")] = float(n)
        out.per_sample[data.name] = {"sample_id": data.arrays.sample_ids(), "mark_hit": hit}

    @staticmethod
    def _texture(data: DatasetContext, out: MeasureOutput) -> None:
        try:
            texture = np.asarray(data.arrays.extra("texture_label"), dtype=np.int64)
        except KeyError as exc:
            raise ValidationError(
                f"dataset {data.name!r} has role 'cue_conflict' but no 'texture_label' per "
                "sample; texture reliance needs the texture class of each image"
            ) from exc
        shape = np.asarray(data.arrays.labels(), dtype=np.int64)
        pred = data.predictions("clean")[1] if len(shape) else np.zeros(0, np.int64)
        used = shape != texture
        shape_hit = (pred == shape) & used
        texture_hit = (pred == texture) & used
        n = int(shape_hit.sum() + texture_hit.sum())
        out.values[(data.name, "texture_reliance")] = _rate(texture_hit, n)
        out.values[(data.name, "texture_decisions_n")] = float(n)

    @staticmethod
    def _views(data: DatasetContext, out: MeasureOutput) -> None:
        out.values[(data.name, "clean_accuracy")] = _accuracy(data, "clean")
        rot = [_accuracy(data, v) for v in ROTATION_VIEWS]
        out.values[(data.name, "rotation_accuracy")] = float(np.mean(rot))
        out.values[(data.name, "gray_accuracy")] = _accuracy(data, "gray")
