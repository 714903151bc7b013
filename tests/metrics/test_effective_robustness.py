"""Tests for robustlens.metrics.effective_robustness (Taori et al. 2020; Bansal & Grover 2023)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from robustlens.errors import FitError, ValidationError
from robustlens.metrics.effective_robustness import (
    EPS,
    IMAGENET_BASELINES,
    Baseline,
    effective_robustness,
    fit_baseline,
    imagenet_baseline,
    inv_logit,
    inv_probit,
    logit,
    probit,
    relative_robustness,
)

ACCS = np.array([0.01, 0.2, 0.5, 0.76, 0.93, 0.999])


def test_logit_probit_values():
    assert logit(0.5) == pytest.approx(0.0, abs=1e-12)
    assert logit(0.75) == pytest.approx(math.log(3.0))
    assert probit(0.975) == pytest.approx(1.959964, abs=1e-5)
    assert probit(0.5) == pytest.approx(0.0, abs=1e-12)
    assert isinstance(logit(0.3), float)
    assert logit(ACCS).shape == ACCS.shape


@pytest.mark.parametrize(("fwd", "inv"), [(logit, inv_logit), (probit, inv_probit)])
def test_inverse_round_trips(fwd, inv):
    np.testing.assert_allclose(inv(fwd(ACCS)), ACCS, rtol=1e-10, atol=1e-12)
    t = np.linspace(-4, 4, 9)
    np.testing.assert_allclose(fwd(inv(t)), t, rtol=1e-8, atol=1e-8)


def test_clipping_to_eps():
    assert np.isfinite(logit(0.0)) and np.isfinite(logit(1.0))
    assert logit(0.0) == pytest.approx(math.log(EPS / (1 - EPS)))
    assert logit(1.0) == pytest.approx(-logit(0.0))
    assert probit(0.0) == pytest.approx(norm.ppf(EPS))
    assert inv_probit(probit(1.0)) == pytest.approx(1 - EPS)


def test_accuracies_outside_unit_interval_rejected():
    with pytest.raises(ValidationError, match="not percent"):
        logit(76.1)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        probit(-0.1)


@pytest.mark.parametrize("transform", ["logit", "probit"])
def test_fit_baseline_recovers_known_line(transform):
    fwd = {"logit": logit, "probit": probit}[transform]
    inv = {"logit": inv_logit, "probit": inv_probit}[transform]
    acc_id = np.array([0.55, 0.62, 0.7, 0.76, 0.81, 0.85])
    acc_ood = inv(0.8 * fwd(acc_id) - 0.6)
    b = fit_baseline(acc_id, acc_ood, transform=transform)
    assert b.slope == pytest.approx(0.8, abs=1e-9)
    assert b.intercept == pytest.approx(-0.6, abs=1e-9)
    assert b.r2 == pytest.approx(1.0, abs=1e-12)
    assert b.n == 6
    assert b.transform == transform


def test_fit_baseline_noisy_r2_below_one_and_matches_polyfit():
    rng = np.random.default_rng(0)
    acc_id = rng.uniform(0.5, 0.9, size=40)
    acc_ood = inv_logit(1.1 * logit(acc_id) - 1.0 + rng.normal(0, 0.1, size=40))
    b = fit_baseline(acc_id, acc_ood)
    slope, intercept = np.polyfit(logit(acc_id), logit(acc_ood), 1)
    assert b.slope == pytest.approx(slope)
    assert b.intercept == pytest.approx(intercept)
    assert 0.5 < b.r2 < 1.0


def test_fit_baseline_errors():
    with pytest.raises(FitError, match="got 1"):
        fit_baseline([0.7], [0.5])
    with pytest.raises(FitError, match="got 0"):
        fit_baseline([], [])
    with pytest.raises(FitError, match="equal"):
        fit_baseline([0.7, 0.7, 0.7], [0.5, 0.6, 0.4])
    with pytest.raises(ValidationError, match="inconsistent"):
        fit_baseline([0.7, 0.8], [0.5])
    with pytest.raises(ValidationError, match="transform"):
        fit_baseline([0.7, 0.8], [0.5, 0.6], transform="linear")


@pytest.mark.parametrize("transform", ["logit", "probit"])
def test_er_zero_on_baseline_and_positive_above(transform):
    b = Baseline(slope=0.9, intercept=-0.5, transform=transform)
    acc_id = np.array([0.6, 0.75, 0.9])
    on_line = b.predict(acc_id)
    np.testing.assert_allclose(effective_robustness(acc_id, on_line, b), 0.0, atol=1e-12)
    er = effective_robustness(acc_id, on_line + 0.05, b)
    np.testing.assert_allclose(er, 0.05, atol=1e-12)
    assert effective_robustness(0.75, float(on_line[1]) - 0.02, b) == pytest.approx(-0.02)


def test_er_formula_by_hand():
    # logit(0.731059) = 1; line 1 * 1 - 1 = 0 -> predicted 0.5
    er = effective_robustness(0.7310585786, 0.6, (1.0, -1.0))
    assert er == pytest.approx(0.1)
    er_p = effective_robustness(norm.cdf(1.0), 0.6, (1.0, -1.0), transform="probit")
    assert er_p == pytest.approx(0.1)


def test_er_with_fitted_baseline_is_zero_for_fit_models():
    acc_id = np.array([0.6, 0.7, 0.8])
    acc_ood = inv_logit(1.2 * logit(acc_id) - 0.9)
    b = fit_baseline(acc_id, acc_ood)
    np.testing.assert_allclose(effective_robustness(acc_id, acc_ood, b), 0.0, atol=1e-10)


def test_er_transform_mismatch_and_shape_errors():
    b = imagenet_baseline("imagenet_v2", "logit")
    with pytest.raises(ValidationError, match="disagrees"):
        effective_robustness(0.7, 0.6, b, transform="probit")
    with pytest.raises(ValidationError, match="same shape"):
        effective_robustness([0.7, 0.8], [0.6], b)
    with pytest.raises(ValidationError, match="slope, intercept"):
        effective_robustness(0.7, 0.6, "v2")


def test_relative_robustness_is_the_gap():
    assert relative_robustness(0.76, 0.64) == pytest.approx(-0.12)
    np.testing.assert_allclose(relative_robustness([0.5, 0.9], [0.6, 0.3]), [0.1, -0.6])


DESIGN = {
    ("imagenet_v2", "logit"): (0.9232, -0.4977),
    ("imagenet_sketch", "logit"): (1.0709, -2.3701),
    ("imagenet_r", "logit"): (0.6368, -2.1077),
    ("objectnet", "logit"): (0.9809, -1.9283),
    ("imagenet_v2", "probit"): (0.9617, -0.3247),
    ("imagenet_sketch", "probit"): (1.0435, -1.4259),
    ("imagenet_r", "probit"): (0.7719, -1.4212),
    ("objectnet", "probit"): (1.0192, -1.2049),
}


def test_shipped_baselines_equal_design_numbers():
    assert set(IMAGENET_BASELINES) == set(DESIGN)
    for (shift, transform), (slope, intercept) in DESIGN.items():
        b = IMAGENET_BASELINES[(shift, transform)]
        assert (b.slope, b.intercept, b.transform) == (slope, intercept, transform)
        assert imagenet_baseline(shift, transform) == b


def test_imagenet_baseline_lookup():
    assert imagenet_baseline("ImageNet-V2") == IMAGENET_BASELINES[("imagenet_v2", "logit")]
    with pytest.raises(ValidationError, match="imagenet_sketch"):
        imagenet_baseline("imagenet_a")
    with pytest.raises(ValidationError, match="transform"):
        imagenet_baseline("objectnet", "linear")


def test_shipped_v2_baseline_sanity():
    # a ResNet-50-like model (76.1% val) is predicted about 63-64% on V2 by the logit line
    pred = imagenet_baseline("imagenet_v2").predict(0.761)
    assert 0.60 < pred < 0.67
