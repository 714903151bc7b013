"""Tests of robustlens.metrics.critical_band (Subramanian et al. critical-band fit)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import scipy.optimize

from robustlens.errors import FitError, ValidationError
from robustlens.metrics.critical_band import (
    DEFAULT_BANDS_CPI,
    DEFAULT_SIGMAS,
    critical_band,
    critical_band_or_none,
    noise_thresholds,
)

CLEAN, CHANCE = 0.9, 0.1
CRIT = 0.5  # halfway between clean and chance


def _table_from_thresholds(thresholds, sigmas, slope=0.3):
    """Accuracy linear in log2(sigma), crossing CRIT exactly at each threshold.

    ``acc = CRIT - slope * (log2 sigma - log2 threshold)``, clipped to [chance, clean]; with a
    slope of 0.3 per octave and an octave-spaced grid the two levels bracketing the threshold
    are never clipped, so log-linear interpolation recovers the threshold exactly.
    """
    ls = np.log2(np.asarray(sigmas))[None, :]
    lt = np.log2(np.asarray(thresholds, dtype=float))[:, None]
    return np.clip(CRIT - slope * (ls - lt), CHANCE, CLEAN)


def test_thresholds_by_log_linear_interpolation():
    acc = [
        [0.8, 0.6, 0.4, 0.2],  # halfway between 0.04 and 0.08 in log -> sqrt(0.04 * 0.08)
        [0.9, 0.7, 0.5, 0.3],  # exactly at 0.08
        [0.7, 0.6, 0.55, 0.52],  # never reaches 0.5 -> inf
        [0.4, 0.3, 0.2, 0.1],  # already below at 0.02 -> 0.02 (left-censored)
        [0.6, 0.45, 0.3, 0.2],  # 1/3 of the way from 0.02 to 0.04 in log
    ]
    thr = noise_thresholds(acc, CLEAN, CHANCE)
    assert thr[0] == pytest.approx(math.sqrt(0.04 * 0.08))
    assert thr[1] == pytest.approx(0.08)
    assert math.isinf(thr[2])
    assert thr[3] == pytest.approx(0.02)
    assert thr[4] == pytest.approx(0.02 * 2 ** (2 / 3))


def test_gaussian_fit_recovers_known_parameters():
    # S(x) = A exp(-(x - mu)^2 / 2 w^2) over x = log2(cpi); thresholds = 2^-S; a wide sigma grid
    # (2^-8 .. 1) so that every band has a finite threshold.
    a, mu, w = 6.0, math.log2(14.0), 1.1
    x = np.log2(DEFAULT_BANDS_CPI)
    s = a * np.exp(-((x - mu) ** 2) / (2 * w**2))
    sigmas = 2.0 ** np.arange(-8, 1)
    table = _table_from_thresholds(2.0**-s, sigmas)
    r = critical_band(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI, sigmas)
    assert r.ok and r.reason is None
    np.testing.assert_allclose(r.sensitivities, s, atol=1e-9)
    assert r.peak_sensitivity == pytest.approx(a, rel=1e-6)
    assert r.centre_cpi == pytest.approx(14.0, rel=1e-6)
    assert r.width_octaves == pytest.approx(w, rel=1e-6)
    assert r.bandwidth_octaves == pytest.approx(2 * math.sqrt(2 * math.log(2)) * w, rel=1e-6)
    assert r.r_squared == pytest.approx(1.0)


def test_fit_with_default_sigmas_and_insensitive_bands():
    # peak at band 3 (14 cpi); the outer bands never reach the criterion (inf, S = 0)
    thr = [np.inf, 0.1, 0.04, 0.025, 0.04, 0.1, np.inf]
    table = np.vstack(
        [
            np.full(4, 0.85) if np.isinf(t) else _table_from_thresholds([t], DEFAULT_SIGMAS)[0]
            for t in thr
        ]
    )
    r = critical_band(table, CLEAN, CHANCE)
    np.testing.assert_allclose(r.thresholds, thr)
    assert r.sensitivities[0] == 0.0 and r.sensitivities[-1] == 0.0
    assert r.centre_cpi == pytest.approx(14.0, rel=1e-3)  # symmetric around band 3
    assert 1.0 < r.bandwidth_octaves < 6.0
    assert r.peak_sensitivity == pytest.approx(-math.log2(0.025), rel=0.15)


def test_unmeasured_bands_are_left_out():
    a, mu, w = 5.0, math.log2(28.0), 1.0
    x = np.log2(DEFAULT_BANDS_CPI)
    s = a * np.exp(-((x - mu) ** 2) / (2 * w**2))
    sigmas = 2.0 ** np.arange(-8, 1)
    table = _table_from_thresholds(2.0**-s, sigmas)
    table[:2] = np.nan  # e.g. bands 0 and 1 do not exist at 32 px
    r = critical_band(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI, sigmas)
    assert math.isnan(r.thresholds[0]) and math.isnan(r.sensitivities[1])
    assert r.centre_cpi == pytest.approx(28.0, rel=1e-6)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (np.full((7, 4), 0.85), "only 0 band"),  # flat: never reaches the criterion
        (np.full((7, 4), np.nan), "only 0 band"),  # nothing measured
        (np.vstack([np.full((2, 4), 0.85), [[0.8, 0.6, 0.4, 0.2]] * 2]), "only 2 band"),
        (np.tile([0.8, 0.6, 0.4, 0.2], (7, 1)), "flat"),  # same threshold everywhere
    ],
)
def test_junk_raises_fit_error(table, match):
    with pytest.raises(FitError, match=match):
        critical_band(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI[: len(table)])
    r = critical_band_or_none(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI[: len(table)])
    assert not r.ok and match.split()[0] in r.reason
    assert math.isnan(r.bandwidth_octaves) and math.isnan(r.centre_cpi)
    assert len(r.thresholds) == len(table)


def test_partial_nan_row_and_chance_level_model_fail_loudly():
    table = _table_from_thresholds([0.1, 0.04, 0.03, 0.04, 0.1], DEFAULT_SIGMAS)
    table[2, 1] = np.nan
    with pytest.raises(FitError, match="row 2 has NaN"):
        critical_band(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI[:5])
    with pytest.raises(FitError, match="not above chance"):
        critical_band(table, 0.1, 0.1, DEFAULT_BANDS_CPI[:5])
    r = critical_band_or_none(table, 0.1, 0.1, DEFAULT_BANDS_CPI[:5])
    assert not r.ok and "chance" in r.reason and all(math.isnan(t) for t in r.thresholds)


def test_monotone_sensitivity_has_peak_outside_range():
    # sensitivity keeps rising to the top band: a Gaussian peak would be an extrapolation
    s = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    sigmas = 2.0 ** np.arange(-8, 1)
    table = _table_from_thresholds(2.0**-s, sigmas)
    with pytest.raises(FitError, match=r"outside the measured bands|bandwidth"):
        critical_band(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI, sigmas)


def test_validation_errors():
    table = np.full((3, 4), 0.5)
    with pytest.raises(ValidationError, match="3 values"):
        critical_band(table, CLEAN, CHANCE, [1.0, 2.0])
    with pytest.raises(ValidationError, match="strictly increasing"):
        critical_band(table, CLEAN, CHANCE, [4.0, 2.0, 1.0])
    with pytest.raises(ValidationError, match="4 values"):
        critical_band(table, CLEAN, CHANCE, None, sigmas=[0.1, 0.2])
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        critical_band(table * 100, CLEAN, CHANCE)
    with pytest.raises(ValidationError, match="2-D"):
        critical_band(np.zeros(4), CLEAN, CHANCE)
    # malformed inputs are not swallowed by the report-friendly variant
    with pytest.raises(ValidationError):
        critical_band_or_none(table, CLEAN, CHANCE, [1.0, 2.0])


def test_result_as_dict():
    sigmas = 2.0 ** np.arange(-8, 1)
    x = np.log2(DEFAULT_BANDS_CPI)
    table = _table_from_thresholds(2.0 ** -(5 * np.exp(-((x - 3) ** 2) / 2)), sigmas)
    d = critical_band(table, CLEAN, CHANCE, DEFAULT_BANDS_CPI, sigmas).as_dict()
    assert d["ok"] is True and d["centre_cpi"] == pytest.approx(8.0, rel=1e-6)
    assert set(d) >= {"bandwidth_octaves", "centre_cpi", "peak_sensitivity", "thresholds"}


def test_diverged_peak_far_outside_the_bands_is_a_fit_error_not_an_overflow(monkeypatch):
    cb = importlib.import_module("robustlens.metrics.critical_band")

    # a fit whose centre ran away to 2**5000 cycles/image must be reported, not crash
    monkeypatch.setattr(
        scipy.optimize, "curve_fit", lambda *a, **k: (np.array([1.0, 5000.0, 1.0]), None)
    )
    x = np.log2(np.array([1.0, 2.0, 4.0, 8.0]))
    with pytest.raises(FitError, match="outside the measured bands"):
        cb._fit(x, np.array([0.5, 1.0, 1.0, 0.5]))
