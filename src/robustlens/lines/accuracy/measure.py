"""Accuracy and calibration on every dataset of a study, with per-sample outputs."""

from __future__ import annotations

import numpy as np

from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput
from robustlens.metrics.classification import ece, multi_label_accuracy


class AccuracyMeasure(Measure):
    """Top-1 accuracy and ECE (15 bins) on the clean view of every labelled dataset.

    On the ``spurious`` role the label is the class whose mark the image carries, so the
    "accuracy" there is the rate at which the mark alone triggers its class.

    Where a dataset lists several acceptable labels per sample (ImageNet ReaL, or the
    photos' hand labels), ``accuracy_real`` is the ReaL top-1 accuracy of Beyer et al.
    (2020): the mean over samples with at least one acceptable label of
    ``1[prediction in acceptable labels]`` (:func:`robustlens.metrics.classification.
    multi_label_accuracy`), with the per-sample column ``correct_real``.
    """

    name = "accuracy"
    description = "top-1 accuracy and expected calibration error per dataset"
    paper = (
        "Guo et al., On Calibration of Modern Neural Networks, ICML 2017 (ECE); Beyer et "
        "al., Are we done with ImageNet?, arXiv 2020 (ReaL accuracy)"
    )

    def __init__(self, mce_baseline: str | None = None) -> None:
        # the model whose ImageNet-C errors normalise mCE in the report (default: AlexNet's
        # published errors on ImageNet sets); a zoo member on the synthetic world
        self.mce_baseline = mce_baseline

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {} if dataset.role == "train" else {"clean": False}

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        name, a = data.name, data.arrays
        probs, pred = data.predictions("clean")
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
        acceptable = a.acceptable_labels()
        if acceptable is not None:
            value, hits = multi_label_accuracy(pred, acceptable)
            out.values[(name, "accuracy_real")] = value
            out.values[(name, "n_real")] = float((acceptable >= 0).any(axis=1).sum())
            out.per_sample[name]["correct_real"] = hits
