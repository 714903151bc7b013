"""Accuracy and calibration on every dataset of a study, with per-sample outputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustlens.measure import (
    DatasetContext,
    DatasetInfo,
    Measure,
    MeasureOutput,
    dataset_predictions,
)
from robustlens.metrics.classification import ece, multi_label_accuracy
from robustlens.roles import is_labelled


def class_names(classes: Sequence[str], indices: np.ndarray) -> np.ndarray:
    """The name of each class index (``""`` for -1 or an index without a name), as an
    object array.

    >>> class_names(["cat", "dog"], np.array([1, -1, 0, 7])).tolist()
    ['dog', '', 'cat', '']
    """
    names = np.array([*classes, ""], dtype=object)
    idx = np.asarray(indices, dtype=np.int64)
    return names[np.where((idx >= 0) & (idx < len(classes)), idx, len(classes))]


class AccuracyMeasure(Measure):
    """Top-1 accuracy and ECE (15 bins) on the clean view of every labelled dataset.

    On the ``spurious`` role the label is the class whose mark the image carries, so the
    "accuracy" there is the rate at which the mark alone triggers its class.

    Where a dataset lists several acceptable labels per sample (ImageNet ReaL, or the
    photos' hand labels), ``accuracy_real`` is the ReaL top-1 accuracy of Beyer et al.
    (2020): the mean over samples with at least one acceptable label of
    ``1[prediction in acceptable labels]`` (:func:`robustlens.metrics.classification.
    multi_label_accuracy`), with the per-sample column ``correct_real``.

    Per-sample ``label`` and ``prediction`` are model class indices, with ``label_name`` and
    ``prediction_name`` (the model's class names), wherever each dataset class is one model
    output: a dataset scored over the model's classes has its labels there already, and
    under a mask (ImageNet-R/-A, ``restrict_classes: true``) each dataset class is mapped to
    its model index. Under a many-to-one mapping no single model index exists (ObjectNet's
    classes, scored by the max logit over several ImageNet outputs; the 16 cue-conflict
    categories, by the mean probability): ``label`` and ``prediction`` are then the dataset's
    class (category) indices and the names are the dataset's.
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
        # an unlabelled dataset has no labels to score against (the study records the skip)
        if dataset.role == "train" or not is_labelled(dataset.role):
            return {}
        return {"clean": False}

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        name, a, mapping = data.name, data.arrays, data.mapping
        logits = a.logits("clean")
        probs, pred = dataset_predictions(logits, mapping)
        labels = a.labels()
        correct = pred == labels
        out.values[(name, "accuracy")] = float(correct.mean()) if len(correct) else float("nan")
        out.values[(name, "ece")] = ece(probs, labels) if len(labels) else float("nan")
        out.values[(name, "n")] = float(len(labels))
        pred = pred.astype(np.int64)
        if mapping.one_output_per_class:  # identity or a mask: in model class indices
            label_idx, pred_idx = mapping.model_indices(labels), mapping.model_indices(pred)
            names = data.model.classes
        else:  # ObjectNet, cue-conflict: no single model index (see the docstring)
            label_idx, pred_idx, names = labels, pred, data.info.classes
        out.per_sample[name] = {
            "sample_id": a.sample_ids(),
            "label": label_idx,
            "prediction": pred_idx,
            "label_name": class_names(names, label_idx),
            "prediction_name": class_names(names, pred_idx),
            "confidence": probs.max(axis=1),
            "correct": correct,
        }
        acceptable = a.acceptable_labels()
        if acceptable is not None:
            value, hits = multi_label_accuracy(pred, acceptable)
            out.values[(name, "accuracy_real")] = value
            out.values[(name, "n_real")] = float((acceptable >= 0).any(axis=1).sum())
            out.per_sample[name]["correct_real"] = hits
