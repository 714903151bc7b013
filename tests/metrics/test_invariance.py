"""Tests of robustlens.metrics.invariance: effective invariance (Deng et al., NeurIPS 2022)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlens._validation import softmax
from robustlens.errors import ValidationError
from robustlens.metrics.invariance import (
    effective_invariance,
    invariance_per_view,
    prediction_agreement_per_sample,
    rotation_invariance,
)

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])


def test_ei_of_identical_predictions_is_their_confidence():
    np.testing.assert_allclose(effective_invariance(P, P), [0.7, 0.5, 0.4])


def test_ei_is_zero_when_the_argmax_changes():
    p_t = np.array([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.4, 0.3, 0.3]])
    np.testing.assert_array_equal(effective_invariance(P, p_t), [0.0, 0.0, 0.0])


def test_ei_golden_geometric_mean_of_confidences():
    p_t = np.array([[0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.5, 0.2, 0.3]])
    expected = [np.sqrt(0.7 * 0.9), np.sqrt(0.5 * 0.6), 0.0]
    np.testing.assert_allclose(effective_invariance(P, p_t), expected)


def test_ei_is_symmetric_and_in_unit_interval():
    rng = np.random.default_rng(1)
    a = softmax(rng.normal(size=(50, 5)))
    b = softmax(rng.normal(size=(50, 5)))
    ei = effective_invariance(a, b)
    np.testing.assert_allclose(ei, effective_invariance(b, a))
    assert ei.shape == (50,)
    assert np.all((ei >= 0) & (ei <= 1))


def test_ei_accepts_torch_tensors():
    t = torch.tensor(P, dtype=torch.float64)
    np.testing.assert_allclose(effective_invariance(t, t), [0.7, 0.5, 0.4])


def test_ei_rejects_logits():
    with pytest.raises(ValidationError, match="softmax"):
        effective_invariance(np.log(P) * 3, P)


def test_ei_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"probs=3.*probs_t=2"):
        effective_invariance(P, P[:2])


def test_ei_mismatched_class_counts_are_rejected():
    with pytest.raises(ValidationError, match="classes"):
        effective_invariance(P, np.full((3, 2), 0.5))


def test_rotation_ei_is_the_mean_over_the_three_angles():
    rng = np.random.default_rng(2)
    p = softmax(rng.normal(size=(20, 4)) * 2)
    views = [softmax(rng.normal(size=(20, 4)) * 2) for _ in range(3)]
    # make view 0 agree with the upright prediction, so at least some terms are non-zero
    views[0] = p.copy()
    expected = np.mean([effective_invariance(p, v) for v in views], axis=0)
    np.testing.assert_allclose(rotation_invariance(p, views), expected)


def test_rotation_ei_golden():
    p = [[0.8, 0.2], [0.6, 0.4]]
    r90 = [[0.8, 0.2], [0.4, 0.6]]
    r180 = [[0.6, 0.4], [0.1, 0.9]]
    r270 = [[0.2, 0.8], [0.6, 0.4]]
    expected = [(0.8 + np.sqrt(0.8 * 0.6) + 0.0) / 3, (0.0 + 0.0 + 0.6) / 3]
    np.testing.assert_allclose(rotation_invariance(p, [r90, r180, r270]), expected)


def test_rotation_ei_of_one_or_two_views():
    p_t = np.array([[0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.5, 0.2, 0.3]])
    ei = effective_invariance(P, p_t)
    np.testing.assert_allclose(rotation_invariance(P, [p_t]), ei)
    np.testing.assert_allclose(rotation_invariance(P, [p_t, P]), (ei + P.max(axis=1)) / 2)


def test_rotation_ei_accepts_a_stacked_array_of_views():
    views = np.stack([P, P, P])
    np.testing.assert_allclose(rotation_invariance(P, views), [0.7, 0.5, 0.4])


def test_rotation_ei_rejects_no_views():
    with pytest.raises(ValidationError, match="at least one"):
        rotation_invariance(P, [])


def test_rotation_ei_names_the_bad_view():
    with pytest.raises(ValidationError, match=r"probs=3.*probs_rotated\[1\]=2"):
        rotation_invariance(P, [P, P[:2], P])
    with pytest.raises(ValidationError, match=r"probs_rotated\[2\]"):
        rotation_invariance(P, [P, P, P * 2])


def test_prediction_agreement_per_sample():
    p_t = np.array([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.0, 0.0, 1.0]])
    out = prediction_agreement_per_sample(P, p_t)
    assert out.dtype == bool
    assert out.tolist() == [True, False, True]


def test_prediction_agreement_accepts_logits():
    logits = np.log(P)
    assert prediction_agreement_per_sample(logits, logits * 5).tolist() == [True] * 3


def test_prediction_agreement_mismatched_lengths():
    with pytest.raises(ValidationError, match=r"probs=3.*probs_t=1"):
        prediction_agreement_per_sample(P, P[:1])


def test_per_view_invariance_golden():
    # view 0 keeps every argmax; view 1 flips sample 1's (class 1 -> 0)
    v0 = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    v1 = np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    ei, agree = invariance_per_view(P, [v0, v1])
    assert ei.shape == agree.shape == (2, 3)
    expected = [
        [np.sqrt(0.7 * 0.8), np.sqrt(0.5 * 0.7), np.sqrt(0.4 * 0.8)],
        [np.sqrt(0.7 * 0.5), 0.0, np.sqrt(0.4 * 0.6)],
    ]
    np.testing.assert_allclose(ei, expected, rtol=1e-12)
    assert agree.tolist() == [[True, True, True], [True, False, True]]


@pytest.mark.parametrize("seed", range(3))
def test_per_view_invariance_rows_are_exactly_ei_and_agreement_of_each_view(seed):
    rng = np.random.default_rng(seed)
    p = softmax(rng.normal(size=(40, 6)) * 2)
    views = [softmax(rng.normal(size=(40, 6)) * 2) for _ in range(3)] + [p.copy()]
    ei, agree = invariance_per_view(p, views)
    for v, p_v in enumerate(views):
        assert np.array_equal(ei[v], effective_invariance(p, p_v))
        assert np.array_equal(agree[v], prediction_agreement_per_sample(p, p_v))
    # the identical view: EI is the confidence, and every prediction agrees
    assert np.array_equal(ei[3], p.max(axis=1)) and agree[3].all()
    assert np.array_equal(ei[:3].mean(axis=0), rotation_invariance(p, views[:3]))


def test_per_view_invariance_names_the_bad_view():
    with pytest.raises(ValidationError, match=r"probs=3.*probs_views\[1\]=2"):
        invariance_per_view(P, [P, P[:2]])
    with pytest.raises(ValidationError, match=r"probs_views\[0\].*softmax"):
        invariance_per_view(P, [P * 2])
    with pytest.raises(ValidationError, match="at least one"):
        invariance_per_view(P, [])
