"""Tests of robustlens.metrics.critical_band (Subramanian et al.'s critical-band analysis)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import scipy.optimize

from robustlens.errors import FitError, ValidationError
from robustlens.metrics.critical_band import (
    CRITERIA,
    NOISE_SDS,
    criterion_accuracy,
    critical_band,
    critical_band_or_none,
    fit_gaussian,
    noise_thresholds,
)

FWHM = 2 * math.sqrt(math.log(4))  # the reference's 2 sqrt(ln 4)

# A hand-made 5 x 7 table: rows noise SD 0, 0.02, 0.04, 0.08, 0.16; columns bands 0..6.
TABLE = np.array(
    [
        [0.90, 0.90, 0.90, 0.90, 0.90, 0.90, 0.90],  # noise-free
        [0.90, 0.85, 0.70, 0.45, 0.70, 0.85, 0.90],  # SD 0.02
        [0.85, 0.70, 0.40, 0.30, 0.40, 0.70, 0.85],  # SD 0.04
        [0.70, 0.45, 0.20, 0.10, 0.20, 0.45, 0.70],  # SD 0.08
        [0.55, 0.20, 0.10, 0.10, 0.10, 0.20, 0.55],  # SD 0.16
    ]
)
# by hand, scanning each column from SD 0.16 up to the first accuracy > 0.5:
# band 0: 0.55 > 0.5 at once -> 0; band 1: 0.20, 0.45, then 0.70 -> 2; band 2: 0.10, 0.20,
# 0.40, then 0.70 -> 3; band 3: 0.10, 0.10, 0.30, 0.45, then 0.90 -> 4; symmetric after.
THRESHOLDS = [0, 2, 3, 4, 3, 2, 0]
# a steeper peak: thresholds [0, 1, 3, 4, 3, 1, 0]
THRESHOLDS_STEEP_TABLE = [
    [0.9] * 7,
    [0.9, 0.9, 0.7, 0.4, 0.7, 0.9, 0.9],
    [0.9, 0.9, 0.4, 0.3, 0.4, 0.9, 0.9],
    [0.9, 0.9, 0.3, 0.2, 0.3, 0.9, 0.9],
    [0.9, 0.4, 0.2, 0.1, 0.2, 0.4, 0.9],
]


def test_thresholds_on_the_hand_made_5x7_table():
    assert TABLE.shape == (len(NOISE_SDS), 7)
    assert noise_thresholds(TABLE).tolist() == THRESHOLDS
    r = critical_band(TABLE)
    assert r.thresholds == tuple(float(t) for t in THRESHOLDS)
    assert r.sensitivities == r.thresholds  # what the Gaussian is fitted to
    assert r.criterion == 0.5 and r.criterion_kind == "absolute" and r.n_steps == 4


def test_threshold_rule_edge_cases():
    acc = np.array(
        [
            [0.9, 0.4, 0.9, 0.5, 0.9],
            [0.9, 0.4, 0.4, 0.5, 0.6],
            [0.9, 0.3, 0.6, 0.5, 0.4],
            [0.9, 0.2, 0.4, 0.5, 0.6],
            [0.9, 0.1, 0.4, 0.5, 0.4],
        ]
    )
    # col 0: never hurt -> 0. col 1: never above 0.5, not even noise-free -> 4 (the
    # reference's loop ends at j = 4, not 5). col 2: 0.4, 0.4, then 0.6 -> 2 (the scan stops at
    # the first pass from the top; the dip at SD 0.02 does not count). col 3: exactly 0.5 is
    # not above the criterion -> 4. col 4: 0.4, then 0.6 -> 1.
    assert noise_thresholds(acc).tolist() == [0, 4, 2, 4, 1]
    assert noise_thresholds(acc, 0.45).tolist() == [0, 4, 2, 0, 1]


def _best_fit_about(thresholds, mu, upper=4.0):
    """(A, s) minimising sum (t - A exp(-(x - mu)^2 / 2 s^2))^2 with mu fixed, independently of
    curve_fit: for a given s the best A is linear least squares (clipped to [0, upper]), so
    only s is searched (a dense grid, then a bounded scalar refinement)."""
    x = np.arange(len(thresholds), dtype=float)
    t = np.asarray(thresholds, dtype=float)

    def amp(s):
        g = np.exp(-((x - mu) ** 2) / (2 * s * s))
        return float(np.clip(t @ g / (g @ g), 0.0, upper)), g

    def sse(s):
        a, g = amp(s)
        return float(np.sum((t - a * g) ** 2))

    grid = np.linspace(0.2, 6, 58001)
    s0 = grid[int(np.argmin([sse(s) for s in grid]))]
    s = scipy.optimize.minimize_scalar(
        sse, bounds=(s0 - 1e-3, s0 + 1e-3), method="bounded", options={"xatol": 1e-10}
    ).x
    return amp(s)[0], s


def test_fit_on_the_hand_made_table():
    r = critical_band(TABLE)
    assert r.ok and r.reason is None and r.warning is None
    # symmetric about band 3 -> mu = 3 -> peak frequency 1.75 * 2^3 = 14 cycles per image
    assert r.mu_band == pytest.approx(3.0, abs=1e-6)
    assert r.centre_cpi == pytest.approx(14.0, rel=1e-6)
    assert r.mu_log2 == pytest.approx(math.log2(14.0), rel=1e-6)
    # with mu = 3, A and s solved independently (A is linear given s)
    a, s = _best_fit_about(THRESHOLDS, 3.0)
    assert r.amplitude == pytest.approx(a, rel=1e-5)
    assert r.width_octaves == pytest.approx(s, rel=1e-5)
    assert r.bandwidth_octaves == pytest.approx(FWHM * s, rel=1e-5)
    assert r.peak_sensitivity == pytest.approx(2.0 ** (a - 4), rel=1e-5)
    assert (r.amplitude, r.bandwidth_octaves, r.peak_sensitivity) == pytest.approx(
        (3.973, 3.46, 0.981), abs=0.005
    )
    # the fit's quality, from its residuals
    x = np.arange(7.0)
    t = np.array(THRESHOLDS, dtype=float)
    resid = t - a * np.exp(-((x - 3.0) ** 2) / (2 * s * s))
    assert r.r_squared == pytest.approx(1 - resid @ resid / np.sum((t - t.mean()) ** 2), rel=1e-4)
    assert r.rmse == pytest.approx(math.sqrt(np.mean(resid**2)), rel=1e-3)
    assert r.r_squared > 0.9


def test_amplitude_is_bounded_to_four():
    # thresholds [0, 1, 3, 4, 3, 1, 0]: the unbounded optimum has A > 4, so A sits on the bound
    r = critical_band_or_none(np.array(THRESHOLDS_STEEP_TABLE))
    assert r.thresholds == (0.0, 1.0, 3.0, 4.0, 3.0, 1.0, 0.0)
    assert r.amplitude == pytest.approx(4.0, abs=1e-9) and r.peak_sensitivity == pytest.approx(1)
    a, s = _best_fit_about(r.thresholds, 3.0)
    assert a == 4.0 and r.width_octaves == pytest.approx(s, rel=1e-5)
    # unbounded, the same data would want A > 4
    a_free, _, _ = scipy.optimize.curve_fit(
        lambda x, a, mu, s: a * np.exp(-((x - mu) ** 2) / (2 * s * s)),
        np.arange(7.0),
        np.array(r.thresholds),
        p0=(4, 3, 1),
    )[0]
    assert a_free > 4.0


def test_fit_gaussian_recovers_an_exact_gaussian():
    x = np.arange(7.0)
    y = 2.5 * np.exp(-((x - 4.2) ** 2) / (2 * 1.3**2))
    a, mu, s = fit_gaussian(y)
    assert (a, mu, abs(s)) == pytest.approx((2.5, 4.2, 1.3), rel=1e-6)
    # A is bounded to [0, upper]
    a, _, _ = fit_gaussian(2 * y, upper=4.0)
    assert a <= 4.0


def test_bands_subset_and_image_side():
    # at 32 px only bands 3..6 exist; mu is reported in band index, the peak frequency scales
    # with the side: 1.75 * 2^mu * 32 / 224
    table = TABLE[:, [2, 3, 4, 5]]  # thresholds 3, 4, 3, 2
    r = critical_band(table, bands=[3, 4, 5, 6], side=32)
    assert r.bands == (3, 4, 5, 6)
    assert r.bands_cpi == pytest.approx((2.0, 4.0, 8.0, 16.0))
    assert r.thresholds == (3.0, 4.0, 3.0, 2.0)
    assert 4.0 < r.mu_band < 5.0
    assert r.centre_cpi == pytest.approx(1.75 * 2**r.mu_band * 32 / 224)
    # the same columns as bands 0..3 at 224 px: the same fit, shifted by 3 bands
    r0 = critical_band(table)
    assert r0.mu_band == pytest.approx(r.mu_band - 3, abs=1e-9)
    assert r0.bandwidth_octaves == pytest.approx(r.bandwidth_octaves)


def test_relative_criterion_is_an_option_for_low_accuracy_models():
    assert CRITERIA == ("absolute", "relative")
    low = TABLE * 0.5  # noise-free 0.45: below the absolute criterion in every band
    r = critical_band(low)
    assert not r.ok and "not above the criterion 0.5" in r.reason
    assert r.thresholds == (4.0,) * 7  # the maximum everywhere, by construction
    assert r.warning and "same threshold" in r.warning and math.isnan(r.r_squared)
    # relative: halfway between the noise-free 0.45 and chance 0.05 -> 0.25
    assert criterion_accuracy(low, "relative", chance=0.05) == pytest.approx(0.25)
    rel = critical_band(low, criterion="relative", chance=0.05)
    assert rel.ok and rel.criterion == pytest.approx(0.25) and rel.criterion_kind == "relative"
    # 0.5 * TABLE > 0.25 where TABLE > 0.5: the same thresholds as the absolute rule on TABLE
    assert rel.thresholds == tuple(float(t) for t in THRESHOLDS)
    with pytest.raises(ValidationError, match="chance"):
        critical_band(low, criterion="relative")
    with pytest.raises(ValidationError, match="criterion"):
        critical_band(low, criterion="halfway")


def test_flat_thresholds_are_fitted_with_a_warning():
    flat = np.full((5, 7), 0.9)  # noise never hurts: every threshold 0
    r = critical_band(flat)
    assert r.ok and r.thresholds == (0.0,) * 7
    # the fitted curve is ~0 at every band, but A, mu and s are arbitrary: the reference's own
    # table has such fits (peak frequency 2.9e-6 cycles per image); here they are flagged
    assert r.rmse < 1e-3
    assert r.peak_sensitivity == pytest.approx(2.0 ** (r.amplitude - 4))
    assert "not identified" in r.warning and math.isnan(r.r_squared)
    # a model just above the criterion that any noise defeats: every threshold 4
    edge = np.vstack([np.full((1, 7), 0.6), np.full((4, 7), 0.3)])
    r = critical_band(edge)
    assert r.ok and r.thresholds == (4.0,) * 7 and r.amplitude == pytest.approx(4.0, abs=1e-3)
    assert "same threshold (4 noise steps)" in r.warning and r.bandwidth_octaves > 100


def test_a_fit_that_does_not_converge_is_a_failed_fit(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: maximum number of evaluations")

    monkeypatch.setattr(scipy.optimize, "curve_fit", boom)
    with pytest.raises(FitError, match="did not converge"):
        critical_band(TABLE)
    r = critical_band_or_none(TABLE)
    assert not r.ok and "did not converge" in r.reason
    assert math.isnan(r.bandwidth_octaves) and math.isnan(r.centre_cpi)
    assert r.thresholds == tuple(float(t) for t in THRESHOLDS)  # still filled in


def test_a_centre_far_outside_the_float_range_is_a_fit_error_not_an_overflow(monkeypatch):
    cb = importlib.import_module("robustlens.metrics.critical_band")
    monkeypatch.setattr(
        scipy.optimize, "curve_fit", lambda *a, **k: (np.array([1.0, 5000.0, 1.0]), None)
    )
    with pytest.raises(FitError, match="floating-point range"):
        cb.critical_band(TABLE)


def test_relative_criterion_at_chance_fails_loudly():
    chance_table = np.full((5, 7), 0.1)
    with pytest.raises(FitError, match="not above chance"):
        critical_band(chance_table, criterion="relative", chance=0.1)
    r = critical_band_or_none(chance_table, criterion="relative", chance=0.1)
    assert not r.ok and "chance" in r.reason and all(math.isnan(t) for t in r.thresholds)


def test_validation_errors():
    with pytest.raises(ValidationError, match="7 band indices"):
        critical_band(TABLE, bands=[0, 1])
    with pytest.raises(ValidationError, match="strictly increasing"):
        critical_band(TABLE, bands=[6, 5, 4, 3, 2, 1, 0])
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        critical_band(TABLE * 100)
    with pytest.raises(ValidationError, match="2-D"):
        critical_band(np.zeros(4))
    with pytest.raises(ValidationError, match="at least 2 x 1"):
        critical_band(np.zeros((1, 7)))
    with pytest.raises(ValidationError, match="side"):
        critical_band(TABLE, side=0)
    # malformed inputs are not swallowed by the report-friendly variant
    with pytest.raises(ValidationError):
        critical_band_or_none(TABLE, bands=[0, 1])


def test_result_as_dict():
    d = critical_band(TABLE).as_dict()
    assert d["ok"] is True and d["centre_cpi"] == pytest.approx(14.0, rel=1e-6)
    assert set(d) >= {
        "bandwidth_octaves",
        "centre_cpi",
        "peak_sensitivity",
        "amplitude",
        "thresholds",
        "r_squared",
        "rmse",
        "criterion",
        "criterion_kind",
    }
