"""Tests of the ``clustering`` measure (seed 000): stored features only, no forward pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from robustlens.config import parse_config
from robustlens.data.base import ClassMapping
from robustlens.errors import ConfigError, RobustlensError
from robustlens.lines.clustering.measure import (
    PROJECTION_POINTS,
    ClusteringMeasure,
    pca_projection,
)
from robustlens.measure import DatasetInfo, ModelInfo, get_measure
from robustlens.metrics.clustering import l2_normalize, sample_rows
from robustlens.models.base import ModelAdapter
from robustlens.study import run_study

CLASSES = ("a", "b", "c", "d")
MODEL = ModelInfo("m", "fp-m", CLASSES)
KEYS = {
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "nmi",
    "ari",
    "purity",
    "cluster_accuracy",
    "n_samples",
    "n_clusters",
    "n_classes_sampled",
}


def _info(name: str, role: str) -> DatasetInfo:
    return DatasetInfo(name, f"fp-{name}", role, CLASSES)


class FakeArrays:
    def __init__(self, features: np.ndarray | None, labels: np.ndarray, first_id: int = 0) -> None:
        self._f, self._y = features, np.asarray(labels, dtype=np.int64)
        self._first = first_id

    def labels(self) -> np.ndarray:
        return self._y

    def sample_ids(self) -> np.ndarray:
        return self._first + np.arange(len(self._y))

    def has(self, view: str, name: str = "logits") -> bool:
        return view == "clean" and (name != "features" or self._f is not None)

    def features(self, view: str = "clean") -> np.ndarray:
        assert self._f is not None
        return self._f


def _blobs(n: int, spread: float, seed: int = 0, d: int = 16):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    centres = np.eye(d)[:4] * 5.0
    return centres[y] + rng.normal(scale=spread, size=(n, d)), y


def _compute(measure: ClusteringMeasure, feats, labels, role: str = "id"):
    return measure.compute(
        MODEL,
        {"val": _info("val", role)},
        {"val": FakeArrays(feats, labels)},
        {"val": ClassMapping.identity(4)},
    )


def test_requests_features_of_the_clean_view_on_id_or_all():
    m = get_measure("clustering")
    assert m.requests(_info("v", "id")) == {"clean": True}
    assert m.requests(_info("s", "sketch")) == {}
    m_all = get_measure("clustering", datasets="all")
    assert m_all.requests(_info("s", "sketch")) == {"clean": True}
    assert m_all.requests(_info("t", "train")) == {}
    with pytest.raises(ConfigError, match="'id' or 'all'"):
        ClusteringMeasure(datasets="some")


def test_separated_features_give_perfect_label_scores_and_a_small_projection():
    x, y = _blobs(1200, spread=0.1)
    out = _compute(ClusteringMeasure(max_samples=800, seed=3), x, y)
    vals = {name: v for (ds, name), v in out.values.items() if ds == "val"}
    assert set(vals) == KEYS
    for k in ("nmi", "ari", "purity", "cluster_accuracy"):
        assert vals[k] == pytest.approx(1.0)
    assert vals["n_samples"] == 800 and vals["n_clusters"] == 4
    proj = out.artifacts["projection"]
    assert len(proj["x"]) == len(proj["y"]) == len(proj["cluster"]) == PROJECTION_POINTS
    assert proj["n_clustered"] == 800 and proj["dataset"] == "val"
    assert sum(proj["explained_variance"]) <= 1.0 + 1e-9


def test_projection_clusters_are_the_indicators_clusters_and_deterministic():
    x, y = _blobs(300, spread=3.0, seed=1)  # overlapping: an imperfect partition
    m = ClusteringMeasure(seed=5)
    a, b = _compute(m, x, y), _compute(m, x, y)
    assert a.values == b.values and a.artifacts == b.artifacts
    proj = a.artifacts["projection"]
    nmi = normalized_mutual_info_score(proj["label"], proj["cluster"])
    assert 0.05 < a.values[("val", "nmi")] < 0.99
    assert nmi == pytest.approx(a.values[("val", "nmi")])


def test_projection_plots_the_rows_and_partition_the_indicators_scored():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(12), 60)  # 12 classes x 60 rows; 12 x 5 > 40: a class subset
    x = np.eye(16)[y] * 5.0 + rng.normal(scale=2.0, size=(y.size, 16))
    m = ClusteringMeasure(max_samples=40, min_per_class=5, seed=4)
    arrays = FakeArrays(x, y, first_id=1000)
    out = m.compute(
        MODEL, {"val": _info("val", "id")}, {"val": arrays}, {"val": ClassMapping.identity(4)}
    )
    rec = out.artifacts["samples"]["val"]
    expected = sample_rows(y.size, y, max_samples=40, min_per_class=5, seed=4)
    assert rec["rows"] == (1000 + expected.indices).tolist()  # recorded as sample ids
    assert rec["classes"] == expected.classes.tolist() and len(rec["classes"]) == 8
    assert rec["n_classes_total"] == 12 and rec["n_rows_total"] == 720
    assert rec["n_samples"] == out.values[("val", "n_samples")] == 40
    assert rec["n_clusters"] == out.values[("val", "n_clusters")] == 8
    assert out.values[("val", "n_classes_sampled")] == 8
    proj = out.artifacts["projection"]
    assert proj["rows"] == rec["rows"] and proj["n_clustered"] == 40
    assert proj["label"] == y[expected.indices].tolist()
    xy, _ = pca_projection(l2_normalize(x[expected.indices]))
    np.testing.assert_allclose(proj["x"], np.round(xy[:, 0], 4))
    nmi = normalized_mutual_info_score(proj["label"], proj["cluster"])
    assert nmi == pytest.approx(out.values[("val", "nmi")])


def test_every_dataset_records_its_sample():
    x, y = _blobs(200, spread=0.1)
    m = ClusteringMeasure(datasets="all", max_samples=60)
    infos = {"val": _info("val", "id"), "sk": _info("sk", "sketch")}
    arrays = {"val": FakeArrays(x, y), "sk": FakeArrays(x[:100], y[:100])}
    maps = {k: ClassMapping.identity(4) for k in infos}
    out = m.compute(MODEL, infos, arrays, maps)
    samples = out.artifacts["samples"]
    assert set(samples) == {"val", "sk"} and samples["sk"]["n_samples"] == 60
    assert samples["val"]["class_names"] == list(CLASSES)
    assert out.artifacts["projection"]["dataset"] == "val"


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"min_per_class": 0}, "min_per_class"),
        ({"min_per_class": 2.5}, "min_per_class"),
        ({"max_samples": 9}, "max_samples"),  # cannot hold 2 classes of 5 rows
        ({"max_samples": 30, "min_per_class": 20}, "max_samples"),
        ({"n_init": 0}, "n_init"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_raise_a_config_error_naming_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=f"option {option} "):
        ClusteringMeasure(**kwargs)


def test_options_are_checked_and_recorded_in_the_protocol():
    with pytest.raises(ConfigError, match="min_per_class"):
        get_measure("clustering", min_per_class="five")
    params = get_measure("clustering", min_per_class=10, max_samples=500).protocol()["parameters"]
    assert params["min_per_class"] == 10 and params["max_samples"] == 500


def test_missing_features_name_the_cause():
    with pytest.raises(RobustlensError, match="no stored penultimate features"):
        _compute(ClusteringMeasure(), None, np.zeros(10))


@pytest.fixture(scope="module")
def clustering_study(tiny_world, tiny_zoo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cl_study")
    data = {
        "store": str(root / "store"),
        "output": str(root / "out"),
        "world": dataclasses.asdict(tiny_world.config),
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": ["val", "sketch"]}],
        "measures": ["accuracy", "clustering"],
        "measure_options": {"clustering": {"max_samples": 40, "seed": 1}},
    }
    return data, run_study(parse_config(data))


def test_clustering_runs_no_forward_pass(clustering_study, monkeypatch):
    data, first = clustering_study
    # the engine ran once; from here on any forward pass is an error
    assert first.forward_passes == sum(r.images for r in first.engine_reports) * len(first.models)

    def boom(self, x):
        raise AssertionError("a forward pass was run to compute the clustering indicators")

    monkeypatch.setattr(ModelAdapter, "forward_with_features", boom)
    monkeypatch.setattr(ModelAdapter, "forward", boom)
    again = run_study(parse_config(data))
    assert again.forward_passes == 0
    df = again.results()
    cl = df[df["measure"] == "clustering"]
    assert set(cl["dataset"]) == {"world/val"}
    assert set(cl["name"]) == KEYS
    assert (cl[cl["name"] == "n_samples"]["value"] == 40).all()  # max_samples honoured
    # 4 classes x 12 rows, 40 kept: stratified, 10 rows of each class, k = 4 classes present
    assert (cl[cl["name"] == "n_clusters"]["value"] == 4).all()
    assert (cl[cl["name"] == "n_classes_sampled"]["value"] == 4).all()
    assert set(again.artifacts) == set(again.models)
    assert all(len(a["clustering"]["projection"]["x"]) == 40 for a in again.artifacts.values())
    for a in again.artifacts.values():
        rec = a["clustering"]["samples"]["world/val"]
        assert len(rec["classes"]) == 4 and a["clustering"]["projection"]["rows"] == rec["rows"]
