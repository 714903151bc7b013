"""Tests of robustlens.metrics.label_free: AC, DoC, ATC, nuclear norm, agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlens._validation import softmax
from robustlens.errors import ValidationError
from robustlens.metrics.label_free import (
    agreement,
    atc,
    atc_threshold,
    average_confidence,
    calibrate_on_source,
    difference_of_confidence,
    nuclear_norm,
)

SRC = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
SRC_LABELS = np.array([0, 0, 1, 1])  # predictions [0, 0, 1, 0]: accuracy 0.75
TGT = np.array([[0.7, 0.3], [0.5, 0.5], [0.4, 0.6]])


def _random_source(seed: int, n: int = 200, k: int = 10):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(scale=2.0, size=(n, k)))
    # labels agree with the prediction for roughly 60% of the samples
    labels = np.where(rng.random(n) < 0.6, probs.argmax(axis=1), rng.integers(0, k, size=n))
    return probs, labels


def test_average_confidence_golden():
    assert average_confidence(SRC) == pytest.approx((0.9 + 0.8 + 0.7 + 0.6) / 4)


def test_average_confidence_accepts_torch():
    assert average_confidence(torch.tensor(TGT)) == pytest.approx((0.7 + 0.5 + 0.6) / 3)


def test_average_confidence_rejects_logits():
    with pytest.raises(ValidationError, match="softmax"):
        average_confidence([[2.0, -1.0]])


def test_doc_golden():
    # acc_src 0.75, AC_src 0.75, AC_tgt 0.6 -> 0.75 - 0.15
    assert difference_of_confidence(SRC, SRC_LABELS, TGT) == pytest.approx(0.6)


def test_doc_on_the_source_set_is_source_accuracy():
    probs, labels = _random_source(3)
    acc = float(np.mean(probs.argmax(axis=1) == labels))
    assert difference_of_confidence(probs, labels, probs) == pytest.approx(acc)


def test_doc_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"probs_src=4.*labels_src=3"):
        difference_of_confidence(SRC, [0, 0, 1], TGT)


def test_doc_mismatched_class_counts():
    with pytest.raises(ValidationError, match="classes"):
        difference_of_confidence(SRC, SRC_LABELS, np.full((2, 4), 0.25))


def test_atc_threshold_golden():
    # sorted scores 0.9, 0.8, 0.7, 0.6; 3 correct -> midway between 0.7 and 0.6
    assert atc_threshold(SRC, SRC_LABELS) == pytest.approx(0.65)


def test_atc_golden_on_target():
    assert atc(SRC, SRC_LABELS, TGT) == pytest.approx(1 / 3)


@pytest.mark.parametrize("score", ["maxconf", "negentropy"])
@pytest.mark.parametrize("seed", range(5))
def test_atc_on_the_source_set_reproduces_source_accuracy(score, seed):
    probs, labels = _random_source(seed)
    acc = float(np.mean(probs.argmax(axis=1) == labels))
    assert atc(probs, labels, probs, score=score) == acc


@pytest.mark.parametrize("score", ["maxconf", "negentropy"])
def test_atc_on_source_when_all_or_none_are_correct(score):
    preds = SRC.argmax(axis=1)
    assert atc(SRC, preds, SRC, score=score) == 1.0
    assert atc(SRC, 1 - preds, SRC, score=score) == 0.0


def test_atc_is_exact_for_adjacent_float_scores():
    # the midpoint of two adjacent floats rounds to one of them; the threshold must not
    a = 0.7
    b = np.nextafter(a, 0.0)
    src = np.array([[a, 1 - a], [b, 1 - b]])
    assert atc(src, [0, 1], src) == 0.5


def test_atc_negentropy_equals_maxconf_for_two_classes():
    # with K = 2 the negative entropy is increasing in the max probability
    probs, labels = _random_source(7, k=2)
    rng = np.random.default_rng(8)
    tgt = softmax(rng.normal(size=(100, 2)))
    assert atc(probs, labels, tgt, score="negentropy") == atc(probs, labels, tgt, score="maxconf")


def test_atc_negentropy_handles_zero_probabilities():
    src = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    value = atc(src, [0, 1, 2], src, score="negentropy")
    assert value == pytest.approx(2 / 3)


def test_atc_rejects_unknown_score():
    with pytest.raises(ValidationError, match="negentropy"):
        atc(SRC, SRC_LABELS, TGT, score="entropy")


def test_atc_rejects_non_probabilities():
    with pytest.raises(ValidationError, match="probs_tgt"):
        atc(SRC, SRC_LABELS, TGT * 3)


@pytest.mark.parametrize("seed", range(4))
def test_a_source_calibration_gives_exactly_the_values_of_doc_and_atc(seed):
    probs, labels = _random_source(seed)
    cal = calibrate_on_source(probs, labels)
    assert cal.n_classes == 10
    assert cal.accuracy == float(np.mean(probs.argmax(axis=1) == labels))
    for j in range(3):  # one calibration, several targets
        tgt = softmax(np.random.default_rng(100 + j).normal(scale=1.0 + j, size=(50 + j, 10)))
        assert cal.doc(tgt) == difference_of_confidence(probs, labels, tgt)
        # and the papers' formulas, written out here apart from the module's code
        drop = probs.max(axis=1).mean() - tgt.max(axis=1).mean()
        assert cal.doc(tgt) == pytest.approx(cal.accuracy - drop, abs=1e-12)
        target_scores = {
            "maxconf": tgt.max(axis=1),
            "negentropy": (tgt * np.log(tgt)).sum(axis=1),  # softmax: no zero probability
        }
        for score in ("maxconf", "negentropy"):
            assert cal.thresholds[score] == atc_threshold(probs, labels, score=score)
            assert cal.atc(tgt, score) == atc(probs, labels, tgt, score=score)
            expected = np.mean(target_scores[score] > cal.thresholds[score])
            assert cal.atc(tgt, score) == pytest.approx(expected, abs=1e-12)


def test_a_source_calibration_golden_values():
    cal = calibrate_on_source(SRC, SRC_LABELS, scores=("maxconf",))
    assert cal.accuracy == 0.75
    assert cal.avg_confidence == pytest.approx(0.75)
    assert cal.thresholds == {"maxconf": pytest.approx(0.65)}
    assert cal.doc(TGT) == pytest.approx(0.6)
    assert cal.atc(TGT) == pytest.approx(1 / 3)


def test_a_source_calibration_names_class_counts_and_scores_it_did_not_learn():
    cal = calibrate_on_source(SRC, SRC_LABELS, scores=("maxconf",))
    with pytest.raises(ValidationError, match="probs_src has 2, probs_tgt has 4"):
        cal.doc(np.full((2, 4), 0.25))
    with pytest.raises(ValidationError, match="probs_src has 2, probs_tgt has 4"):
        cal.atc(np.full((2, 4), 0.25))
    with pytest.raises(ValidationError, match="no ATC threshold was learned for 'negentropy'"):
        cal.atc(TGT, "negentropy")
    with pytest.raises(ValidationError, match="probs_tgt"):
        cal.atc(TGT * 3)
    with pytest.raises(ValidationError, match="negentropy"):
        calibrate_on_source(SRC, SRC_LABELS, scores=("entropy",))


def test_nuclear_norm_golden_values():
    assert nuclear_norm(np.eye(3)) == pytest.approx(1.0)
    assert nuclear_norm(np.full((6, 4), 0.25)) == pytest.approx(0.25)
    # rank one, all mass on one class: ||P||_* = sqrt(N) -> 1 / sqrt(min(N, K))
    assert nuclear_norm([[1.0, 0.0]] * 5) == pytest.approx(1 / np.sqrt(2))


def test_nuclear_norm_matches_svd_and_is_in_unit_interval():
    rng = np.random.default_rng(4)
    p = softmax(rng.normal(size=(30, 8)) * 3)
    expected = np.linalg.svd(p, compute_uv=False).sum() / np.sqrt(30 * 8)
    assert nuclear_norm(p) == pytest.approx(expected)
    assert 0.0 <= nuclear_norm(p) <= 1.0


def test_nuclear_norm_with_fewer_samples_than_classes():
    # N = 2 < K = 5: normalizer sqrt(N * N)
    p = np.zeros((2, 5))
    p[0, 0] = p[1, 3] = 1.0
    assert nuclear_norm(p) == pytest.approx(1.0)


def test_nuclear_norm_rejects_logits():
    with pytest.raises(ValidationError, match="softmax"):
        nuclear_norm([[3.0, -2.0]])


def test_agreement_labels_and_scores():
    assert agreement([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert agreement(TGT, [0, 0, 1]) == 1.0  # ties go to the lowest index
    assert agreement(torch.tensor(SRC), SRC) == 1.0
    assert agreement(np.log(SRC), [1, 1, 1, 1]) == 0.25


def test_agreement_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"preds_a=3.*preds_b=2"):
        agreement([0, 1, 2], [0, 1])


def test_agreement_mismatched_class_counts():
    with pytest.raises(ValidationError, match="classes"):
        agreement(np.eye(3), np.eye(3)[:, :2])


def test_agreement_rejects_3d_input():
    with pytest.raises(ValidationError, match="1-D"):
        agreement(np.zeros((2, 2, 2)), [0, 1])
