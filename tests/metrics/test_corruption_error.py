"""Tests of robustlens.metrics.corruption_error (ImageNet-C's CE, mCE and relative mCE)."""

from __future__ import annotations

import numpy as np
import pytest

from robustlens.errors import ValidationError
from robustlens.metrics import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    corruption_errors,
    mce,
    relative_corruption_errors,
    relative_mce,
)
from robustlens.transforms.corruptions import IMAGENET_C_CORRUPTIONS

# a hand-worked example with two corruptions (errors summed over the 5 severities)
ERRORS = {
    "gaussian_noise": [0.5, 0.6, 0.7, 0.8, 0.9],  # sum 3.5
    "contrast": [0.2, 0.4, 0.5, 0.6, 0.7],  # sum 2.4
}
BASELINE = {
    "gaussian_noise": [0.6, 0.7, 0.8, 0.9, 1.0],  # sum 4.0
    "contrast": [0.4, 0.5, 0.6, 0.7, 0.8],  # sum 3.0
}


def test_mce_hand_worked_two_corruptions():
    # CE = 3.5 / 4.0 = 87.5 %, 2.4 / 3.0 = 80 %; mCE = 83.75 %
    assert corruption_errors(ERRORS, BASELINE) == pytest.approx(
        {"gaussian_noise": 87.5, "contrast": 80.0}
    )
    assert mce(ERRORS, BASELINE) == pytest.approx(83.75)


def test_relative_mce_hand_worked_two_corruptions():
    # clean errors 0.2 (model), 0.4 (baseline):
    # (3.5 - 1.0) / (4.0 - 2.0) = 125 %, (2.4 - 1.0) / (3.0 - 2.0) = 140 %; mean 132.5 %
    rel = relative_corruption_errors(ERRORS, 0.2, BASELINE, 0.4)
    assert rel == pytest.approx({"gaussian_noise": 125.0, "contrast": 140.0})
    assert relative_mce(ERRORS, 0.2, BASELINE, 0.4) == pytest.approx(132.5)


def test_alexnet_is_100_on_itself():
    assert mce(ALEXNET_ERRORS) == pytest.approx(100.0, abs=1e-9)
    assert relative_mce(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR) == pytest.approx(100.0, abs=1e-9)
    assert all(v == pytest.approx(100.0) for v in corruption_errors(ALEXNET_ERRORS).values())


def test_alexnet_table_matches_the_published_numbers():
    # the 15 ImageNet-C corruptions, 5 severities each, in the reference order
    assert tuple(ALEXNET_ERRORS) == IMAGENET_C_CORRUPTIONS
    assert all(len(v) == 5 for v in ALEXNET_ERRORS.values())
    # their means are the per-corruption AlexNet errors used across the literature
    # (e.g. ALEXNET_ERR in google-research/augmix)
    published = [0.886428, 0.894468, 0.922640, 0.819880, 0.826268, 0.785948, 0.798360]
    published += [0.866816, 0.826572, 0.819324, 0.564592, 0.853204, 0.646056, 0.717840, 0.606500]
    means = [float(np.mean(v)) for v in ALEXNET_ERRORS.values()]
    np.testing.assert_allclose(means, published, atol=1e-9)
    assert ALEXNET_CLEAN_ERROR == 0.4345
    with pytest.raises(TypeError):
        ALEXNET_ERRORS["fog"] = (0.0,) * 5  # read-only


def test_default_baseline_is_alexnet_and_halving_errors_halves_mce():
    half = {c: [e / 2 for e in v] for c, v in ALEXNET_ERRORS.items()}
    assert mce(half) == pytest.approx(50.0)
    # a subset of corruptions: the mean over that subset
    assert mce({"fog": ALEXNET_ERRORS["fog"]}) == pytest.approx(100.0)
    # relative: a model whose errors rise over its clean error half as much as AlexNet's
    rel = {c: [0.1 + (e - ALEXNET_CLEAN_ERROR) / 2 for e in v] for c, v in ALEXNET_ERRORS.items()}
    assert relative_mce(rel, 0.1) == pytest.approx(50.0)


def test_arrays_and_tuples_are_accepted():
    arr = {c: np.asarray(v) for c, v in ERRORS.items()}
    assert mce(arr, {c: tuple(v) for c, v in BASELINE.items()}) == pytest.approx(83.75)


@pytest.mark.parametrize(
    ("errors", "baseline", "match"),
    [
        ([0.5] * 5, None, r"errors: expected a mapping"),
        ({}, None, r"errors: expected at least one corruption"),
        ({"fog": [50.0] * 5}, None, r"errors\['fog'\].*\[0, 1\].*not percent"),
        ({"fog": [0.5] * 4}, None, r"errors\['fog'\]: expected 5 severities.*got 4"),
        ({"fog": [[0.5] * 5]}, None, r"errors\['fog'\]: expected a 1-D array"),
        ({"fog": [np.nan] * 5}, None, r"errors\['fog'\]: contains NaN"),
        ({"haze": [0.5] * 5}, None, r"baseline_errors: .*missing \['haze'\]"),
        ({"fog": [0.5] * 5}, {"fog": [0.0] * 5}, r"baseline_errors\['fog'\]: .*positive"),
    ],
)
def test_mce_validates_before_arithmetic(errors, baseline, match):
    with pytest.raises(ValidationError, match=match):
        mce(errors, baseline)


def test_relative_mce_validates_clean_errors_and_baseline():
    with pytest.raises(ValidationError, match=r"clean_error: .*\[0, 1\].*not percent"):
        relative_mce(ERRORS, 20.0, BASELINE, 0.4)
    with pytest.raises(ValidationError, match=r"baseline_clean_error: expected the baseline"):
        relative_mce(ERRORS, 0.2, BASELINE)
    with pytest.raises(ValidationError, match=r"clean_error: expected an error rate"):
        relative_mce(ERRORS, "low", BASELINE, 0.4)
    # a baseline whose corrupted errors do not rise above its clean error
    with pytest.raises(ValidationError, match=r"baseline_errors\['fog'\]: .*clean error"):
        relative_mce({"fog": [0.5] * 5}, 0.2, {"fog": [0.3] * 5}, 0.4)
