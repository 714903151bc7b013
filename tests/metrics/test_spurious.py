"""Tests for robustlens.metrics.spurious (Neuhaus et al., ICCV 2023)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from robustlens.errors import ValidationError
from robustlens.metrics.spurious import (
    NeuralPCA,
    component_contributions,
    contribution_offset,
    find_spurious_components,
    neural_pca,
    spufix,
    spufix_multi,
    spurious_component_scores,
    spurious_score,
    spurious_score_per_class,
    top_components,
)


def _random_setup(seed: int = 0, n: int = 64, d: int = 12, k: int = 5):
    rng = np.random.default_rng(seed)
    features = np.maximum(rng.normal(size=(n, d)), 0.0)  # ReLU-like features
    weight = rng.normal(size=(k, d))
    bias = rng.normal(size=k)
    return rng, features, weight, bias


# --------------------------------------------------------------------------- neural PCA


def test_eigenvalues_descending_and_eigenvectors_orthonormal():
    _, phi, w, _ = _random_setup()
    pca = neural_pca(phi, w, class_index=2)
    assert isinstance(pca, NeuralPCA)
    assert pca.class_index == 2
    assert pca.mean.shape == (12,)
    assert pca.eigenvalues.shape == (12,)
    assert pca.eigenvectors.shape == (12, 12)
    assert np.all(np.diff(pca.eigenvalues) <= 1e-12)
    assert pca.eigenvalues[0] > pca.eigenvalues[-1]
    v = pca.eigenvectors
    np.testing.assert_allclose(v.T @ v, np.eye(12), atol=1e-10)
    # sign convention
    assert np.all(v.sum(axis=0) >= 0)


def test_neural_pca_matches_covariance_of_z():
    _, phi, w, _ = _random_setup(seed=1)
    pca = neural_pca(phi, w, class_index=0)
    z = phi * w[0]
    np.testing.assert_allclose(pca.mean, z.mean(axis=0))
    cov = np.cov(z, rowvar=False)
    v, lam = pca.eigenvectors, pca.eigenvalues
    np.testing.assert_allclose(v @ np.diag(lam) @ v.T, cov, atol=1e-10)
    np.testing.assert_allclose(cov @ v[:, 0], lam[0] * v[:, 0], atol=1e-10)


def test_neural_pca_accepts_weight_row_and_torch():
    _, phi, w, _ = _random_setup(seed=2)
    a = neural_pca(phi, w, class_index=3)
    b = neural_pca(torch.from_numpy(phi).double(), w[3], class_index=3)
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-6)


def test_neural_pca_is_deterministic_and_readonly():
    _, phi, w, _ = _random_setup(seed=3)
    a = neural_pca(phi, w, 1)
    b = neural_pca(phi.copy(), w.copy(), 1)
    np.testing.assert_array_equal(a.eigenvectors, b.eigenvectors)
    with pytest.raises(ValueError):
        a.mean[0] = 1.0


def test_neural_pca_rejects_bad_input():
    _, phi, w, _ = _random_setup()
    with pytest.raises(ValidationError, match="at least 2"):
        neural_pca(phi[:1], w, 0)
    with pytest.raises(ValidationError, match="class_index"):
        neural_pca(phi, w, 9)
    with pytest.raises(ValidationError, match="features"):
        neural_pca(phi[:, :5], w, 0)


# --------------------------------------------------------------------------- contributions


def test_contributions_sum_to_logit_minus_constant_random():
    rng, phi, w, b = _random_setup(seed=4)
    k = 1
    pca = neural_pca(phi, w, k)
    x = np.maximum(rng.normal(size=(30, 12)), 0.0) * 3.0  # other images, not the fit set
    alphas = component_contributions(x, pca)
    assert alphas.shape == (30, 12)
    logit_k = x @ w[k] + b[k]
    offset = contribution_offset(pca, b[k])
    np.testing.assert_allclose(alphas.sum(axis=1) + offset, logit_k, rtol=1e-10, atol=1e-10)
    # the constant is b_k + <1, mu>, not e.g. b_k alone
    assert offset == pytest.approx(b[k] + pca.mean.sum())
    assert not np.allclose(alphas.sum(axis=1) + b[k], logit_k)


def test_contributions_sum_to_logit_of_torch_linear_classifier():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
    head = torch.nn.Linear(16, 4)
    x = torch.randn(80, 8)
    with torch.no_grad():
        phi = backbone(x)
        logits = head(phi)
    k = 2
    pca = neural_pca(phi, head.weight, class_index=k)
    alphas = component_contributions(phi, pca)
    recon = alphas.sum(axis=1) + contribution_offset(pca, float(head.bias[k].detach()))
    np.testing.assert_allclose(recon, logits[:, k].numpy(), rtol=1e-4, atol=1e-4)


def test_contributions_design_argument_order():
    _, phi, w, _ = _random_setup(seed=5)
    pca = neural_pca(phi, w, 0)
    np.testing.assert_allclose(
        component_contributions(phi, w, pca), component_contributions(phi, pca)
    )
    with pytest.raises(ValidationError, match="differs"):
        component_contributions(phi, w[1], pca)
    with pytest.raises(ValidationError, match="12 features"):
        component_contributions(phi[:, :3], pca)


def test_top_components():
    _, phi, w, _ = _random_setup(seed=6)
    pca = neural_pca(phi, w, 0)
    assert top_components(pca, 3).tolist() == [0, 1, 2]
    by_var = top_components(pca, 12, by="logit_variance")
    var = pca.eigenvalues * pca.eigenvectors.sum(axis=0) ** 2
    assert np.all(np.diff(var[by_var]) <= 1e-12)
    # logit variances of the uncorrelated alphas add up to the logit variance
    alphas = component_contributions(phi, pca)
    np.testing.assert_allclose(alphas.var(axis=0, ddof=1), var, atol=1e-9)
    assert len(top_components(pca, 100)) == 12
    with pytest.raises(ValidationError):
        top_components(pca, 2, by="nope")


# --------------------------------------------------------------------------- spurious score


def test_spurious_score_hand_computed_and_sklearn():
    pos, neg = [0.9, 0.6], [0.7, 0.1]
    # ranking: 0.9 (+), 0.7 (-), 0.6 (+), 0.1 (-): AP = 0.5 * 1 + 0.5 * 2/3
    assert spurious_score(pos, neg) == pytest.approx(5 / 6)
    rng = np.random.default_rng(0)
    p, q = rng.uniform(size=20), rng.uniform(size=15)
    expected = average_precision_score(np.r_[np.ones(20), np.zeros(15)], np.r_[p, q])
    assert spurious_score(p, q) == pytest.approx(expected)
    assert spurious_score([0.9, 0.8], [0.1]) == pytest.approx(1.0)


@pytest.mark.parametrize("scores", ["continuous", "quarters", "hundredths", "extremes"])
def test_spurious_score_is_sklearns_average_precision_to_the_bit(scores):
    # computed without scikit-learn's call (its input checks were most of the time): the
    # same operations in the same order, so equal, not approximately equal, ties included
    rng = np.random.default_rng(len(scores))
    draw = {
        "continuous": lambda n: rng.uniform(size=n),
        "quarters": lambda n: rng.integers(0, 5, n) / 4,
        "hundredths": lambda n: np.round(rng.uniform(size=n), 2),
        "extremes": lambda n: rng.choice([0.0, -0.0, 1e-300, 0.5, 1.0], n),
    }[scores]
    for _ in range(300):
        n_pos, n_neg = rng.integers(1, 40, size=2)
        pos, neg = draw(n_pos), draw(n_neg)
        y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
        assert spurious_score(pos, neg) == average_precision_score(y, np.r_[pos, neg])


def test_spurious_score_rejects_empty():
    with pytest.raises(ValidationError):
        spurious_score([], [0.5])
    with pytest.raises(ValidationError):
        spurious_score([0.5], [])


def test_spurious_score_per_class():
    p_in = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.5, 0.0, 0.5]])
    y_in = [0, 0, 1, 2]
    p_sp = np.array([[0.7, 0.3, 0.0], [0.1, 0.9, 0.0], [0.0, 0.9, 0.1]])
    y_sp = [0, 0, 1]
    out = spurious_score_per_class(p_in, y_in, p_sp, y_sp, n_classes=3)
    # class 0: 5/6 (as above); class 1: pos 0.8 vs neg 0.9 -> AP 1/2; class 2 has no spurious
    assert out["per_class"] == pytest.approx({0: 5 / 6, 1: 0.5})
    assert out["mean"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert out["spurious_reliance"] == pytest.approx(1 - out["mean"])
    assert out["n_classes_scored"] == 2
    with pytest.raises(ValidationError, match="no class"):
        spurious_score_per_class(p_in[:2], [0, 0], p_sp[2:], [1], n_classes=3)


def test_spurious_score_direction_more_spurious_means_lower_ap():
    rng = np.random.default_rng(1)
    pos = rng.uniform(0.5, 1.0, size=50)
    separable = spurious_score(pos, rng.uniform(0.0, 0.4, size=50))
    spurious = spurious_score(pos, rng.uniform(0.5, 1.0, size=50))
    assert separable > spurious


# --------------------------------------------------------------------------- find components


def _planted(seed: int = 0, spur_dim: int = 3, d: int = 10):
    """Features where dimension `spur_dim` is large on spurious-only images."""
    rng = np.random.default_rng(seed)
    w = np.abs(rng.normal(size=(3, d))) + 0.1
    phi_in = np.abs(rng.normal(1.0, 0.5, size=(200, d)))
    phi_in[:, spur_dim] = np.abs(rng.normal(0.5, 0.3, size=200))  # weak on real images
    phi_sp = np.abs(rng.normal(0.0, 0.1, size=(100, d)))  # no class object
    phi_sp[:, spur_dim] = rng.normal(6.0, 0.5, size=100)  # but the spurious feature
    return w, phi_in, phi_sp


@pytest.mark.parametrize("spur_dim", [3, 7])
def test_find_spurious_components_recovers_planted_direction(spur_dim):
    k = 0
    w, phi_in, phi_sp = _planted(seed=spur_dim, spur_dim=spur_dim)
    pca = neural_pca(phi_in, w, k)
    a_in = component_contributions(phi_in, pca)
    a_sp = component_contributions(phi_sp, pca)
    flagged = find_spurious_components(a_in, a_sp, n_flag=1)
    assert flagged.shape == (1,)
    v = pca.eigenvectors[:, flagged[0]]
    # the flagged component is (almost) the planted feature axis
    assert abs(v[spur_dim]) > 0.9
    scores = spurious_component_scores(a_in, a_sp)
    assert np.argmax(scores) == flagged[0]
    runner_up = np.sort(scores)[-2]
    assert scores[flagged[0]] > 0.3
    assert scores[flagged[0]] > 3 * max(runner_up, 0.0)
    # SpuFix with the flagged component lowers the class logit on spurious-only images
    logits_sp = phi_sp @ w.T
    fixed = spufix(logits_sp, a_sp, flagged, k)
    assert fixed[:, k].mean() < logits_sp[:, k].mean() - 1.0


def test_find_spurious_components_thresholds():
    a_in = np.array([[1.0, 0.5, 0.0], [-1.0, -0.5, 0.0]])
    a_sp = np.array([[0.0, 3.0, 0.2], [0.0, 2.0, 0.2]])
    assert find_spurious_components(a_in, a_sp, n_flag=3).tolist() == [1, 2]
    assert find_spurious_components(a_in, a_sp, n_flag=3, min_gap=0.5).tolist() == [1]
    assert find_spurious_components(a_in, a_sp, n_flag=0).tolist() == []
    assert find_spurious_components(a_in, a_in, n_flag=3).tolist() == []
    with pytest.raises(ValidationError, match="same number of components"):
        find_spurious_components(a_in, a_sp[:, :2])


# --------------------------------------------------------------------------- SpuFix


def test_spufix_no_flagged_changes_nothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 4))
    alphas = rng.normal(size=(7, 5))
    out = spufix(logits, alphas, [], class_index=1)
    np.testing.assert_array_equal(out, logits)
    assert out is not logits
    out[0, 0] = 99.0
    assert logits[0, 0] != 99.0


def test_spufix_subtracts_exactly_positive_parts_of_flagged():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(9, 4))
    alphas = rng.normal(size=(9, 6))
    out = spufix(logits, alphas, np.array([4, 1, 1]), class_index=2)
    expected = logits.copy()
    expected[:, 2] -= np.maximum(alphas[:, 1], 0) + np.maximum(alphas[:, 4], 0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    # other classes untouched, class k never raised
    np.testing.assert_array_equal(out[:, [0, 1, 3]], logits[:, [0, 1, 3]])
    assert np.all(out[:, 2] <= logits[:, 2])


def test_spufix_accepts_torch_and_validates():
    logits = torch.tensor([[2.0, 1.0], [0.5, 1.0]])
    alphas = torch.tensor([[1.5, -0.2], [-0.3, 0.4]])
    out = spufix(logits, alphas, torch.tensor([0]), 0)
    np.testing.assert_allclose(out, [[0.5, 1.0], [0.5, 1.0]])
    with pytest.raises(ValidationError, match="component indices"):
        spufix(logits, alphas, [2], 0)
    with pytest.raises(ValidationError, match="class_index"):
        spufix(logits, alphas, [0], 5)
    with pytest.raises(ValidationError, match="inconsistent"):
        spufix(logits, alphas[:1], [0], 0)


def test_spufix_multi_matches_repeated_single():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 4))
    alphas = {0: rng.normal(size=(6, 5)), 3: rng.normal(size=(6, 5)), 1: rng.normal(size=(6, 5))}
    flagged = {0: [1, 2], 3: [0], 1: []}
    out = spufix_multi(logits, alphas, flagged)
    expected = spufix(spufix(logits, alphas[0], [1, 2], 0), alphas[3], [0], 3)
    np.testing.assert_allclose(out, expected)
    np.testing.assert_array_equal(spufix_multi(logits, {}, {}), logits)
    with pytest.raises(ValidationError, match="no contributions"):
        spufix_multi(logits, {}, {2: [0]})
