"""Tests of the ``label_free`` measure (seed 001): source selection, golden ATC/DoC cases."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from robustlens.data.base import ClassMapping
from robustlens.errors import ConfigError
from robustlens.lines.invariance.label_free import LabelFreeMeasure
from robustlens.measure import DatasetInfo, ModelInfo, get_measure
from robustlens.metrics.label_free import atc, average_confidence, nuclear_norm

CLASSES = ("a", "b", "c", "d")
MODEL = ModelInfo("m", "fp-m", CLASSES)


def _info(name: str, role: str, classes: tuple[str, ...] = CLASSES) -> DatasetInfo:
    return DatasetInfo(name, f"fp-{name}", role, classes)


class FakeArrays:
    """Duck-typed StoredArrays: clean logits and labels only."""

    def __init__(self, logits: np.ndarray, labels: np.ndarray) -> None:
        self._logits, self._labels = logits, np.asarray(labels, dtype=np.int64)

    def labels(self) -> np.ndarray:
        return self._labels

    def sample_ids(self) -> np.ndarray:
        return np.arange(len(self._labels))

    def logits(self, view: str = "clean") -> np.ndarray:
        if view != "clean":
            raise KeyError(view)
        return self._logits


def _data(n: int, seed: int, k: int = 4, scale: float = 2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k)) * scale
    logits[np.arange(n), labels] += 1.5  # better than chance
    return logits, labels


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(
    datasets: Mapping[str, tuple[DatasetInfo, np.ndarray, np.ndarray]],
    measure: LabelFreeMeasure | None = None,
    mappings=None,
):
    m = measure or LabelFreeMeasure()
    infos = {n: d[0] for n, d in datasets.items()}
    arrays = {n: FakeArrays(d[1], d[2]) for n, d in datasets.items()}
    maps = mappings or {n: ClassMapping.identity(len(d[0].classes)) for n, d in datasets.items()}
    return m.compute(MODEL, infos, arrays, maps)


def test_requests_clean_view_on_every_non_train_dataset():
    m = get_measure("label_free")
    assert m.requests(_info("x", "train")) == {}
    for role in ("id", "v2", "corrupt", "sketch", "adversarial", "natural"):
        assert m.requests(_info("x", role)) == {"clean": False}


def test_atc_and_doc_on_the_source_reproduce_source_accuracy():
    z, y = _data(200, seed=0)  # continuous scores: no ties at the ATC threshold
    zt, yt = _data(150, seed=1, scale=1.0)
    out = _run({"val": (_info("val", "id"), z, y), "shift": (_info("shift", "corrupt"), zt, yt)})
    acc = float(np.mean(z.argmax(1) == y))
    assert 0.3 < acc < 1.0
    assert out.values[("val", "atc_maxconf")] == pytest.approx(acc)
    assert out.values[("val", "atc_negentropy")] == pytest.approx(acc)
    assert out.values[("val", "doc")] == pytest.approx(acc)
    assert out.artifacts["source"] == "val"
    assert out.artifacts["source_accuracy"] == pytest.approx(acc)


def test_target_values_match_the_pure_functions_and_ignore_target_labels():
    z, y = _data(120, seed=2)
    zt, yt = _data(90, seed=3, scale=1.0)
    a = _run({"val": (_info("val", "id"), z, y), "s": (_info("s", "sketch"), zt, yt)})
    b = _run({"val": (_info("val", "id"), z, y), "s": (_info("s", "sketch"), zt, (yt + 1) % 4)})
    pt, ps = _softmax(zt), _softmax(z)
    assert a.values[("s", "avg_confidence")] == pytest.approx(average_confidence(pt))
    assert a.values[("s", "nuclear_norm")] == pytest.approx(nuclear_norm(pt))
    assert a.values[("s", "atc_maxconf")] == pytest.approx(atc(ps, y, pt, score="maxconf"))
    drop = ps.max(1).mean() - pt.max(1).mean()
    assert a.values[("s", "doc")] == pytest.approx(np.mean(z.argmax(1) == y) - drop)
    assert a.values == b.values  # label-free: the target labels are never read


def test_missing_id_dataset_is_an_error_naming_the_role():
    z, y = _data(20, seed=4)
    with pytest.raises(ConfigError, match=r"role 'id'.*measure_options\.label_free\.source"):
        _run({"s": (_info("s", "sketch"), z, y)})


def test_several_id_datasets_need_an_explicit_source():
    z, y = _data(30, seed=5)
    zt, yt = _data(30, seed=6)
    data = {"a": (_info("a", "id"), z, y), "b": (_info("b", "id"), zt, yt)}
    with pytest.raises(ConfigError, match="several datasets have role 'id'"):
        _run(data)
    out = _run(data, LabelFreeMeasure(source="b"))
    assert out.artifacts["source"] == "b"
    assert out.values[("b", "atc_maxconf")] == pytest.approx(np.mean(zt.argmax(1) == yt))
    with pytest.raises(ConfigError, match="'nope' is not among"):
        _run(data, LabelFreeMeasure(source="nope"))


def test_subset_dataset_with_other_class_count_skips_doc_and_atc():
    z, y = _data(40, seed=7)
    zt, yt = _data(30, seed=8, k=4)
    sub = _info("r", "rendition", classes=("a", "c"))
    maps = {"val": ClassMapping.identity(4), "r": ClassMapping.from_indices([0, 2], "mask")}
    out = _run({"val": (_info("val", "id"), z, y), "r": (sub, zt, yt % 2)}, mappings=maps)
    assert ("r", "avg_confidence") in out.values and ("r", "nuclear_norm") in out.values
    assert ("r", "atc_maxconf") not in out.values and ("r", "doc") not in out.values
    assert "2 classes vs 4" in out.artifacts["skipped"]["r"]
