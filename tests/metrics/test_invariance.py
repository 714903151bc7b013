"""Tests of robustlens.metrics.invariance: effective invariance (Deng et al., NeurIPS 2022)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlens._validation import softmax
from robustlens.errors import ValidationError
from robustlens.metrics.invariance import (
    effective_invariance,
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
