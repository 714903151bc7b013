"""Accuracy and calibration on every dataset of a study, with per-sample outputs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robustlens.data.base import ClassMapping
from robustlens.engine import StoredArrays
from robustlens.measures.base import (
    DatasetInfo,
    Measure,
    MeasureOutput,
    ModelInfo,
    dataset_predictions,
    register_measure,
)
from robustlens.metrics.classification import ece


@register_measure("accuracy")
class AccuracyMeasure(Measure):
    """Top-1 accuracy and ECE (15 bins) on the clean view of every labelled dataset.

    On the ``spurious`` role the label is the class whose mark the image carries, so the
    "accuracy" there is the rate at which the mark alone triggers its class.
    """

    name = "accuracy"
    description = "top-1 accuracy and expected calibration error per dataset"

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {} if dataset.role == "train" else {"clean": False}

    def compute(
        self,
        model: ModelInfo,
        datasets: Mapping[str, DatasetInfo],
        arrays: Mapping[str, StoredArrays],
        mappings: Mapping[str, ClassMapping],
    ) -> MeasureOutput:
        out = MeasureOutput()
        for name, info in datasets.items():
            if not self.requests(info):
                continue
            a = arrays[name]
            probs, pred = dataset_predictions(a.logits("clean"), mappings[name])
            labels = a.labels()
            correct = pred == labels
            out.values[(name, "accuracy")] = float(correct.mean()) if len(correct) else float("nan")
            out.values[(name, "ece")] = ece(probs, labels) if len(labels) else float("nan")
            out.values[(name, "n")] = float(len(labels))
            out.per_sample[name] = {
                "sample_id": a.sample_ids(),
                "label": labels,
                "prediction": pred.astype(np.int64),
                "confidence": probs.max(axis=1),
                "correct": correct,
            }
        return out
