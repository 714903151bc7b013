"""Tests of robustlens.metrics.clustering (Ho, Pfreundt, Keuper & Keuper, AAAI-22 workshop)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from robustlens.errors import ValidationError
from robustlens.metrics.clustering import (
    _cluster_accuracy,
    _purity,
    cluster_indicators,
    kmeans_clusters,
    l2_normalize,
    sample_rows,
)

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


# --- the clustered sample: stratified by class, k = classes present (issue 16, item 5) ---

HAND = np.repeat([0, 1, 2, 3], [20, 10, 3, 7])  # 40 rows, class sizes 20, 10, 3, 7


def test_stratified_draw_hand_case_proportional_with_a_minimum():
    # base min(count, 5) = 5, 5, 3, 5 (18 rows); the other 2 rows are shared in proportion to
    # the rows left (15, 5, 0, 2 of 22): shares 1.36, 0.45, 0, 0.18 -> floors 1, 0, 0, 0 and
    # the last row to the largest remainder (class 1): 6, 6, 3, 5
    s = sample_rows(HAND.size, HAND, max_samples=20, min_per_class=5, seed=0)
    assert np.bincount(HAND[s.indices], minlength=4).tolist() == [6, 6, 3, 5]
    assert s.n_samples == 20 and s.classes.tolist() == [0, 1, 2, 3]
    assert s.n_classes_sampled == 4 and s.n_classes_total == 4 and s.n_rows_total == 40
    assert np.all(np.diff(s.indices) > 0)  # sorted, no row twice


def test_stratified_draw_keeps_a_subset_of_classes_when_the_minimum_does_not_fit():
    # 5 + 5 + 3 + 5 = 18 > 12: whole classes (>= min_per_class rows) in a random order, as many
    # as fit with min_per_class rows each; the 3-row class only after every full class
    s = sample_rows(HAND.size, HAND, max_samples=12, min_per_class=4, seed=0)
    counts = np.bincount(HAND[s.indices], minlength=4)
    assert counts.tolist() == [4, 4, 0, 4] and s.classes.tolist() == [0, 1, 3]
    s = sample_rows(HAND.size, HAND, max_samples=12, min_per_class=5, seed=0)
    counts = np.bincount(HAND[s.indices], minlength=4)
    assert sorted(counts.tolist()) == [0, 0, 5, 5] and s.n_samples == 10
    assert s.classes.tolist() == np.flatnonzero(counts).tolist()  # the classes kept
    assert 2 not in s.classes.tolist()


def test_stratified_draw_is_deterministic_for_a_seed():
    y = np.repeat(np.arange(50), 20)  # 50 classes x 20 rows, room for 20 classes of 5
    a = sample_rows(y.size, y, max_samples=100, min_per_class=5, seed=3)
    b = sample_rows(y.size, y, max_samples=100, min_per_class=5, seed=3)
    c = sample_rows(y.size, y, max_samples=100, min_per_class=5, seed=4)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.classes, b.classes)
    assert not np.array_equal(a.classes, c.classes)
    assert a.n_classes_sampled == 20 and a.n_classes_total == 50
    assert set(np.bincount(y[a.indices])[a.classes].tolist()) == {5}


def test_all_rows_when_they_fit_and_a_uniform_draw_without_labels():
    s = sample_rows(HAND.size, HAND, max_samples=40, min_per_class=30)
    assert s.indices.tolist() == list(range(40)) and s.n_classes_sampled == 4
    u = sample_rows(400, None, max_samples=150, seed=11)
    expected = np.sort(np.random.default_rng(11).choice(400, size=150, replace=False))
    assert np.array_equal(u.indices, expected) and u.classes is None


def test_k_is_the_number_of_classes_present_in_the_sample():
    feats, labels = _blobs(n_per_class=10, k=8, dim=8)  # 8 classes x 10 rows
    out = cluster_indicators(feats, labels, max_samples=20, min_per_class=5)
    # 8 x 5 = 40 > 20: 4 classes of 5 rows; k = 4, not the 8 classes of the label set
    assert out["n_samples"] == 20 and out["n_clusters"] == out["n_classes_sampled"] == 4
    assert out["nmi"] == pytest.approx(1.0)  # each sampled class is still a pure cluster
    full = cluster_indicators(feats, labels)
    assert full["n_clusters"] == full["n_classes_sampled"] == 8 and full["n_samples"] == 80


def test_indicators_score_the_rows_of_the_shared_sample():
    feats, labels = _blobs(n_per_class=30, k=5, noise=2.0, seed=4)
    fc = kmeans_clusters(feats, labels, seed=2, max_samples=40, min_per_class=5)
    s = sample_rows(len(labels), labels, max_samples=40, min_per_class=5, seed=2)
    assert np.array_equal(fc.sample.indices, s.indices)
    np.testing.assert_allclose(fc.features, l2_normalize(feats[s.indices]))
    assert np.array_equal(fc.labels, labels[s.indices])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_per_class": 0}, "min_per_class"),
        ({"min_per_class": 1.5}, "min_per_class"),
        ({"max_samples": 8, "min_per_class": 5}, "max_samples=8.*min_per_class=5"),
    ],
)
def test_bad_sampling_options_are_rejected(kwargs, match):
    feats, labels = _blobs(n_per_class=10)
    with pytest.raises(ValidationError, match=match):
        cluster_indicators(feats, labels, **kwargs)


def test_a_single_sampled_class_is_rejected():
    feats, _ = _blobs(n_per_class=10)
    with pytest.raises(ValidationError, match="distinct classes in the sampled labels"):
        cluster_indicators(feats, np.zeros(30, dtype=int))
