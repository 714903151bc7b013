"""Tests of robustlens.metrics.spectral (low/high-frequency bias)."""

from __future__ import annotations

import numpy as np
import pytest

from robustlens.errors import ValidationError
from robustlens.metrics.spectral import BIAS_CUTOFFS, spectral_bias

CUTS = (0.01, *np.round(np.arange(0.1, 0.95, 0.1), 10), 0.99)


def test_bias_is_mean_ratio_over_01_to_05():
    low = {c: 0.1 * i for i, c in enumerate(CUTS)}  # 0.0, 0.1, ..., 1.0 over 11 cutoffs
    high = {c: 0.5 for c in CUTS}
    r = spectral_bias(low, high, acc_clean=0.5)
    # low ratios at 0.1..0.5 are 0.2, 0.4, 0.6, 0.8, 1.0
    assert r["low_freq_bias"] == pytest.approx(0.6)
    assert r["high_freq_bias"] == pytest.approx(1.0)
    assert list(r["low_curve"]) == sorted(r["low_curve"])
    assert r["low_curve"][0.99] == pytest.approx(2.0)  # ratios may exceed 1
    assert len(r["high_curve"]) == 11
    # spectral bias = HPP / (LPP + HPP) = 1.0 / 1.6
    assert r["spectral_bias"] == pytest.approx(0.625)


def test_ratios_are_not_clipped_and_spectral_bias_of_zero_is_nan():
    # the reference's table has ratios up to 1.5: a filtered view may beat the clean one
    low = {c: 0.6 for c in BIAS_CUTOFFS}
    high = {c: 0.0 for c in BIAS_CUTOFFS}
    r = spectral_bias(low, high, 0.4)
    assert r["low_freq_bias"] == pytest.approx(1.5) and r["spectral_bias"] == 0.0
    r = spectral_bias(high, high, 0.4)
    assert r["low_freq_bias"] == 0.0 and np.isnan(r["spectral_bias"])


def test_float_keys_are_matched_after_rounding():
    keys = np.arange(0.1, 0.55, 0.1)  # 0.30000000000000004 etc.
    low = {float(k): 0.4 for k in keys}
    high = {str(round(float(k), 1)): 0.2 for k in keys}  # string keys work too
    r = spectral_bias(low, high, 0.8)
    assert r["low_freq_bias"] == pytest.approx(0.5)
    assert r["high_freq_bias"] == pytest.approx(0.25)
    assert 0.3 in r["low_curve"]


def test_missing_cutoff_is_an_error():
    low = {c: 0.5 for c in BIAS_CUTOFFS if c != 0.3}
    high = {c: 0.5 for c in BIAS_CUTOFFS}
    with pytest.raises(ValidationError, match=r"missing \[0\.3\]"):
        spectral_bias(low, high, 0.8)


def test_custom_cutoffs():
    low = {0.1: 0.2, 0.9: 0.8}
    r = spectral_bias(low, low, 0.8, cutoffs=(0.9,))
    assert r["low_freq_bias"] == pytest.approx(1.0)


def test_validation():
    ok = {c: 0.5 for c in BIAS_CUTOFFS}
    with pytest.raises(ValidationError, match="> 0"):
        spectral_bias(ok, ok, 0.0)
    with pytest.raises(ValidationError, match="not a percentage"):
        spectral_bias({**ok, 0.2: 55.0}, ok, 0.8)
    with pytest.raises(ValidationError, match="not a percentage"):
        spectral_bias(ok, ok, 80.0)
    with pytest.raises(ValidationError, match="mapping"):
        spectral_bias([0.5] * 5, ok, 0.8)
    with pytest.raises(ValidationError, match=r"cutoffs must lie in \[0, 1\]"):
        spectral_bias({**ok, 1.5: 0.1}, ok, 0.8)
    with pytest.raises(ValidationError, match="twice"):
        spectral_bias({0.1: 0.5, "0.1": 0.4, 0.2: 0.5}, ok, 0.8)
