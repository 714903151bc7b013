"""Tests of robustlens.metrics.classification: predictions, accuracy, ECE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlens._validation import softmax
from robustlens.errors import ValidationError
from robustlens.metrics.classification import accuracy, ece, predictions

LOGITS = np.array(
    [
        [2.0, 1.0, 0.0, 5.0],
        [0.0, 3.0, 1.0, 0.0],
        [1.0, 0.0, 2.0, 9.0],
    ]
)


def _ece_reference(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Slow, literal ECE of Guo et al.: bins ((m-1)/M, m/M], confidence 0 in the first bin."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    total = 0.0
    for m in range(1, n_bins + 1):
        lo, hi = (m - 1) / n_bins, m / n_bins
        in_bin = (conf > lo) & (conf <= hi)
        if m == 1:
            in_bin |= conf == 0
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


def test_predictions_argmax_without_mask():
    assert predictions(LOGITS).tolist() == [3, 1, 3]


def test_predictions_with_mask_are_indices_into_the_mask():
    # column 3 (the largest logit of rows 0 and 2) is outside the mask
    assert predictions(LOGITS, class_mask=[2, 0, 1]).tolist() == [1, 2, 0]


def test_predictions_accepts_torch_tensors():
    assert predictions(torch.tensor(LOGITS, dtype=torch.float32)).tolist() == [3, 1, 3]


def test_accuracy_golden():
    assert accuracy(LOGITS, [3, 1, 0]) == pytest.approx(2 / 3)
    assert accuracy(softmax(LOGITS), [3, 1, 3]) == 1.0


def test_accuracy_with_mask_uses_dataset_space_labels():
    # mask [0, 1, 2]: predictions become [0, 1, 2] in dataset space
    assert accuracy(LOGITS, [0, 1, 2], class_mask=[0, 1, 2]) == 1.0
    # the same labels without the mask: the model predicts class 3 for rows 0 and 2
    assert accuracy(LOGITS, [0, 1, 2]) == pytest.approx(1 / 3)


def test_accuracy_mask_label_out_of_mask_range_is_rejected():
    with pytest.raises(ValidationError, match=r"labels.*\[0, 1\]"):
        accuracy(LOGITS, [0, 1, 2], class_mask=[0, 1])


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        ([0, 4], "class_mask"),
        ([1, 1, 2], "unique"),
        (np.array([True, False, True, False]), "flatnonzero"),
        ([[0, 1]], "1-D"),
    ],
)
def test_bad_class_mask_is_rejected(mask, match):
    with pytest.raises(ValidationError, match=match):
        predictions(LOGITS, class_mask=mask)


def test_accuracy_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"logits_or_probs=3.*labels=2"):
        accuracy(LOGITS, [0, 1])


def test_accuracy_rejects_1d_scores():
    with pytest.raises(ValidationError, match="2-D"):
        accuracy([0.1, 0.9], [1, 0])


def test_ece_calibrated_hand_case_is_zero():
    # bin (0.7, 0.8]: 4 samples at confidence 0.75, 3 correct -> |0.75 - 0.75| = 0
    # bin (0.9, 1.0]: 2 samples at confidence 1.0, both correct -> 0
    probs = np.array([[0.75, 0.25]] * 4 + [[0.0, 1.0]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert ece(probs, labels, n_bins=10) == pytest.approx(0.0, abs=1e-12)


def test_ece_golden_two_bins():
    # (0.8, 0.9]: conf 0.9, acc 0.5; (0.5, 0.6]: conf 0.6, acc 1.0 -> 0.5*0.4 + 0.5*0.4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 0])
    assert ece(probs, labels, n_bins=10) == pytest.approx(0.4)


def test_ece_bins_are_right_closed():
    # 0.6 lies in (0.4, 0.6], not with 0.7 in (0.6, 0.8]: 0.5*|1-0.6| + 0.5*|0-0.7| = 0.55
    # (pooled in one bin the answer would be |0.5 - 0.65| = 0.15)
    probs = np.array([[0.6, 0.4], [0.7, 0.3]])
    labels = np.array([0, 1])
    assert ece(probs, labels, n_bins=5) == pytest.approx(0.55)


def test_ece_matches_literal_reference_on_random_data():
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(scale=3.0, size=(500, 7)))
    labels = rng.integers(0, 7, size=500)
    for n_bins in (1, 10, 15):
        assert ece(probs, labels, n_bins=n_bins) == pytest.approx(
            _ece_reference(probs, labels, n_bins), abs=1e-12
        )


def test_ece_accepts_torch_tensors():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    assert ece(probs, torch.tensor([0, 0]), n_bins=10) == pytest.approx(0.1, abs=1e-6)


def test_ece_rejects_logits():
    with pytest.raises(ValidationError, match="softmax"):
        ece(LOGITS, [0, 1, 2])


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True])
def test_ece_rejects_bad_n_bins(n_bins):
    with pytest.raises(ValidationError, match="n_bins"):
        ece([[0.5, 0.5]], [0], n_bins=n_bins)


def test_ece_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"probs=2.*labels=3"):
        ece([[0.5, 0.5], [0.2, 0.8]], [0, 1, 1])
