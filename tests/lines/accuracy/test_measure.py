"""The accuracy line: per-dataset accuracy, ECE, ReaL accuracy and per-sample columns."""

from __future__ import annotations

import numpy as np
import pytest

from robustlens.data.base import ClassMapping
from robustlens.lines.accuracy.measure import AccuracyMeasure
from robustlens.measure import DatasetInfo, ModelInfo, get_measure


class _Arrays:
    """What the engine stored for one (model, dataset), without a store."""

    def __init__(self, logits, labels, acceptable=None):
        self._logits = np.asarray(logits, dtype=np.float32)
        self._labels = np.asarray(labels)
        self._acceptable = acceptable

    def logits(self, view="clean"):
        assert view == "clean"
        return self._logits

    def labels(self):
        return self._labels

    def sample_ids(self):
        return np.arange(len(self._labels))

    def acceptable_labels(self):
        return self._acceptable


MODEL = ModelInfo("m", "fp", ("a", "b", "c"))


def _info(name, role="id"):
    return DatasetInfo(name, f"fp-{name}", role, ("a", "b", "c"))


def test_hand_worked_accuracy_ece_and_per_sample_columns():
    # predictions 0, 1, 1, 2 against labels 0, 1, 2, 2: three of four correct
    logits = [[5, 0, 0], [0, 5, 0], [0, 5, 0], [0, 0, 5]]
    arrays = {"val": _Arrays(logits, [0, 1, 2, 2])}
    out = AccuracyMeasure().compute(
        MODEL, {"val": _info("val")}, arrays, {"val": ClassMapping.identity(3)}
    )
    assert out.values[("val", "accuracy")] == pytest.approx(0.75)
    assert out.values[("val", "n")] == 4.0
    conf = np.exp(5) / (np.exp(5) + 2)  # every sample has the same confidence
    # one bin holds all four samples: |accuracy - confidence|
    assert out.values[("val", "ece")] == pytest.approx(abs(0.75 - conf), abs=1e-6)
    cols = out.per_sample["val"]
    assert cols["prediction"].tolist() == [0, 1, 1, 2]
    assert cols["correct"].tolist() == [True, True, False, True]
    assert "correct_real" not in cols and ("val", "accuracy_real") not in out.values


def test_real_labels_count_any_acceptable_label_and_skip_unlabelled():
    logits = [[5, 0, 0], [0, 5, 0], [0, 0, 5]]
    acceptable = np.array([[0, 2], [2, -1], [-1, -1]])  # third sample: no ReaL label
    arrays = {"val": _Arrays(logits, [1, 1, 2], acceptable)}
    out = AccuracyMeasure().compute(
        MODEL, {"val": _info("val")}, arrays, {"val": ClassMapping.identity(3)}
    )
    assert out.values[("val", "accuracy_real")] == pytest.approx(0.5)
    assert out.values[("val", "n_real")] == 2.0


def test_training_split_is_not_evaluated():
    measure = AccuracyMeasure()
    assert measure.requests(_info("train", role="train")) == {}
    assert measure.requests(_info("val")) == {"clean": False}
    out = measure.compute(
        MODEL,
        {"train": _info("train", role="train")},
        {"train": _Arrays([[1, 0, 0]], [0])},
        {"train": ClassMapping.identity(3)},
    )
    assert out.values == {}


def test_accuracy_is_registered_by_its_line():
    assert isinstance(get_measure("accuracy"), AccuracyMeasure)
