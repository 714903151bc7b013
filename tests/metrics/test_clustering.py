"""Tests of robustlens.metrics.clustering (Ho, Pfreundt, Keuper & Keuper, AAAI-22 workshop)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from robustlens.errors import ValidationError
from robustlens.metrics.clustering import _cluster_accuracy, _purity, cluster_indicators

LABEL_KEYS = ("nmi", "ari", "purity", "cluster_accuracy")
FREE_KEYS = ("silhouette", "davies_bouldin", "calinski_harabasz")


def _blobs(n_per_class: int = 30, k: int = 3, dim: int = 8, noise: float = 0.01, seed: int = 0):
    """Tight clusters around orthogonal directions (well separated after L2 normalization)."""
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[:k] * 5.0
    labels = np.repeat(np.arange(k), n_per_class)
    feats = centers[labels] + rng.normal(scale=noise, size=(labels.size, dim))
    order = rng.permutation(labels.size)
    return feats[order], labels[order]


def test_perfectly_separated_clusters_score_one():
    feats, labels = _blobs()
    out = cluster_indicators(feats, labels)
    for key in LABEL_KEYS:
        assert out[key] == pytest.approx(1.0), key
    assert out["silhouette"] > 0.95
    assert out["davies_bouldin"] < 0.05
    assert out["n_clusters"] == 3
    assert out["n_samples"] == 90


def test_permuting_class_names_leaves_scores_unchanged():
    feats, labels = _blobs(noise=3.0, seed=1)  # overlapping clusters: scores below 1
    permuted = np.array([2, 0, 1])[labels]
    a = cluster_indicators(feats, labels)
    b = cluster_indicators(feats, permuted)
    assert a["nmi"] < 1.0
    assert a == b


def test_random_features_give_nmi_near_zero():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(300, 16))
    labels = rng.integers(0, 3, size=300)
    out = cluster_indicators(feats, labels)
    assert out["nmi"] < 0.05
    assert abs(out["ari"]) < 0.05


def test_same_seed_gives_identical_dict_and_other_seed_may_differ():
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(400, 10))
    labels = rng.integers(0, 4, size=400)
    a = cluster_indicators(feats, labels, seed=11, max_samples=150)
    b = cluster_indicators(feats, labels, seed=11, max_samples=150)
    c = cluster_indicators(feats, labels, seed=12, max_samples=150)
    assert a == b
    assert a != c  # a different subsample


def test_subsampling_reports_n_samples():
    feats, labels = _blobs(n_per_class=100)
    out = cluster_indicators(feats, labels, max_samples=60)
    assert out["n_samples"] == 60
    assert cluster_indicators(feats, labels)["n_samples"] == 300


def test_features_are_l2_normalized():
    feats, labels = _blobs(noise=3.0, seed=2)
    scales = np.random.default_rng(9).uniform(0.1, 10.0, size=(feats.shape[0], 1))
    a = cluster_indicators(feats, labels)
    b = cluster_indicators(feats * scales, labels)
    for key in (*LABEL_KEYS, *FREE_KEYS):
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key


def test_label_free_mode_needs_n_clusters():
    feats, _ = _blobs()
    with pytest.raises(ValidationError, match="n_clusters is required"):
        cluster_indicators(feats)
    out = cluster_indicators(feats, n_clusters=3)
    assert set(out) == {"n_samples", "n_clusters", *FREE_KEYS}
    assert out["silhouette"] > 0.95


def test_n_clusters_overrides_the_class_count():
    feats, labels = _blobs()
    out = cluster_indicators(feats, labels, n_clusters=6)
    assert out["n_clusters"] == 6
    assert out["purity"] == pytest.approx(1.0)  # splitting a class keeps clusters pure
    assert out["cluster_accuracy"] < 1.0 or out["nmi"] < 1.0


def test_accepts_torch_tensors():
    feats, labels = _blobs()
    out = cluster_indicators(torch.tensor(feats, dtype=torch.float32), torch.tensor(labels))
    assert out["cluster_accuracy"] == pytest.approx(1.0)


def test_identical_features_give_nan_label_free_scores():
    feats = np.ones((10, 3))
    with warnings.catch_warnings():  # scikit-learn warns that fewer clusters were found
        warnings.simplefilter("ignore")
        out = cluster_indicators(feats, n_clusters=2)
    assert math.isnan(out["silhouette"])


def test_purity_and_cluster_accuracy_hand_case():
    labels = np.array([0, 0, 0, 1, 1, 1])
    clusters = np.array([0, 1, 2, 2, 2, 2])
    # purity: cluster majorities 1 + 1 + 3; one-to-one matching: 2->1 (3) and 0->0 (1)
    assert _purity(labels, clusters) == pytest.approx(5 / 6)
    assert _cluster_accuracy(labels, clusters) == pytest.approx(4 / 6)


def test_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"features=4.*labels=3"):
        cluster_indicators(np.eye(4), [0, 1, 0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_clusters": 1}, "n_clusters"),
        ({"n_clusters": 90}, "n_clusters"),
        ({"n_clusters": 3, "max_samples": 1}, "max_samples"),
        ({"n_clusters": 3, "n_init": 0}, "n_init"),
        ({"n_clusters": 3, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    feats, _ = _blobs()
    with pytest.raises(ValidationError, match=match):
        cluster_indicators(feats, **kwargs)


def test_rejects_non_finite_features():
    feats, labels = _blobs()
    feats[0, 0] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        cluster_indicators(feats, labels)
