"""Calibration, leave-one-shift-out error, jackknife+ interval and recommendation, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlens.analysis.estimation import (
    Predictor,
    calibrate,
    estimate_accuracy,
    ols_line,
    predictor_reliability,
    recommend,
    shift_group,
)
from robustlens.errors import ValidationError
from robustlens.lines.estimate.analysis import agreement_values, estimate_study


def test_ols_line_by_hand():
    # x = 0, 1, 2; y = .1, .3, .2: mean x 1, mean y .2, Sxy = .1, Sxx = 2
    a, b = ols_line([0, 1, 2], [0.1, 0.3, 0.2])
    assert (a, b) == pytest.approx((0.15, 0.05))


def test_leave_one_shift_out_with_three_shifts_by_hand():
    # with one shift left out, the line runs through the other two points:
    #   without 0: through (1,.3),(2,.2) -> at 0: .4, error .3
    #   without 1: through (0,.1),(2,.2) -> at 1: .15, error .15
    #   without 2: through (0,.1),(1,.3) -> at 2: .5, error .3
    c = calibrate([0, 1, 2], [0.1, 0.3, 0.2], ["a", "b", "c"], alpha=0.5)
    assert dict(c.group_errors) == pytest.approx({"a": 0.3, "b": 0.15, "c": 0.3})
    assert c.loo_mae == pytest.approx(0.25)
    assert (c.intercept, c.slope) == pytest.approx((0.15, 0.05))
    assert c.residuals.tolist() == pytest.approx([0.3, 0.15, 0.3])
    # at x = 4: the full line gives .35; the left-out lines give 0 (clipped from -0.0), .3, .9
    # jackknife+ at alpha = .5, n = 3: low = 2nd smallest of (0-.3, .3-.15, .9-.3) = .15,
    # high = 2nd smallest of (0+.3, .3+.15, .9+.3) = .45
    est, low, high = c.predict(4.0)
    assert (est, low, high) == pytest.approx((0.35, 0.15, 0.45))


def test_a_shift_with_several_datasets_is_left_out_whole():
    # shift c holds x = 2 and x = 3; without it the line runs through (0,.1),(1,.3)
    x, y = [0, 1, 2, 3], [0.1, 0.3, 0.2, 0.4]
    c = calibrate(x, y, ["a", "b", "c", "c"])
    # without c: .1 + .2 x -> .5 and .7: errors .3 and .3
    assert c.group_errors["c"] == pytest.approx(0.3)
    # without a: (1,.3),(2,.2),(3,.4): mean x 2, mean y .3, Sxy .1, Sxx 2 -> .2 + .05 x
    assert c.group_errors["a"] == pytest.approx(0.1)
    # without b: (0,.1),(2,.2),(3,.4): slope 13/140, intercept 33/420 -> at 1: 72/420
    assert c.group_errors["b"] == pytest.approx(0.3 - 72 / 420)
    assert c.loo_mae == pytest.approx((0.1 + (0.3 - 72 / 420) + 0.3) / 3)
    assert c.n_datasets == 4 and c.n_shifts == 3


def test_a_predictor_used_as_it_is_has_no_fit():
    c = calibrate([0.5, 0.7, 0.9], [0.4, 0.7, 0.6], ["a", "b", "c"], fit=False)
    assert (c.intercept, c.slope) == (0.0, 1.0)
    assert c.loo_mae == pytest.approx((0.1 + 0.0 + 0.3) / 3)
    assert c.predict(0.8)[0] == pytest.approx(0.8)


def test_estimates_and_left_out_predictions_stay_in_zero_one():
    c = calibrate([0.0, 1.0, 2.0], [0.0, 0.5, 1.0], ["a", "b", "c"])
    assert c.predict(5.0)[0] == 1.0 and c.predict(-5.0)[0] == 0.0
    est, low, high = c.predict(1.0)
    assert 0.0 <= low <= est <= high <= 1.0


def test_small_calibrations_give_the_whole_interval_and_errors_are_clear():
    c = calibrate([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], ["a", "b", "c"])  # n = 3 at 90%
    est, low, high = c.predict(0.25)
    assert est == pytest.approx(0.35) and (low, high) == (0.0, 1.0)
    with pytest.raises(ValidationError, match="at least 3"):
        calibrate([0.1, 0.2], [0.2, 0.3], ["a", "b"])
    with pytest.raises(ValidationError, match="finite"):
        calibrate([0.1, np.nan, 0.3], [0.2, 0.3, 0.4], ["a", "b", "c"])


def test_shift_groups():
    tags = {"corruption": "fog", "severity": 3}
    assert shift_group("world/corrupt/fog/3", "corrupt", tags) == "world/corrupt/fog"
    assert shift_group("world/cbar/sparkles/2", "corrupt_bar", {"corruption": "sparkles"}) == (
        "world/cbar/sparkles"
    )
    assert shift_group("world/v2", "v2") == "world/v2"


def _cube() -> pd.DataFrame:
    """Two models on three labelled shifts and one unlabelled dataset ``u``."""
    rows = []
    for model, offset in (("m1", 0.0), ("m2", 0.1)):
        for d, conf, acc in (("s1", 0.9, 0.8), ("s2", 0.7, 0.6), ("s3", 0.5, 0.4)):
            rows.append((d, model, conf + offset, acc + offset, 0.3))
        rows.append(("u", model, 0.6 + offset, np.nan, 0.3))
    df = pd.DataFrame(rows, columns=["dataset", "model", "conf", "acc", "flat"])
    return df.set_index(["dataset", "model"])


PREDICTORS = [
    Predictor("conf", "conf"),
    Predictor("conf (as is)", "conf", fit=False),
    Predictor("flat", "flat"),
]
GROUPS = {"s1": "s1", "s2": "s2", "s3": "s3"}


def test_reliability_estimates_and_recommendation():
    rel = predictor_reliability(_cube(), "acc", GROUPS, PREDICTORS)
    mae = rel.groupby("predictor")["loo_mae"].mean()
    assert mae["conf"] == pytest.approx(0.0)  # acc = conf - .1 exactly
    assert mae["conf (as is)"] == pytest.approx(0.1)
    # a constant predictor: the left-out mean of the other two shifts' accuracies
    assert mae["flat"] == pytest.approx((0.3 + 0.0 + 0.3) / 3)
    assert recommend(rel) == "conf"
    est = estimate_accuracy(_cube(), "acc", GROUPS, ["u"], PREDICTORS)
    conf = est[est["predictor"] == "conf"].set_index("model")["estimate"]
    assert conf.to_dict() == pytest.approx({"m1": 0.5, "m2": 0.6})
    as_is = est[est["predictor"] == "conf (as is)"].set_index("model")["estimate"]
    assert as_is.to_dict() == pytest.approx({"m1": 0.6, "m2": 0.7})
    assert set(est["dataset"]) == {"u"}


def test_agreement_between_models_by_hand():
    a = pd.DataFrame({"dataset": "d", "sample_id": [1, 2, 3, 4], "top1": [0, 1, 2, 2]})
    b = pd.DataFrame({"dataset": "d", "sample_id": [4, 3, 2, 1], "top1": [2, 1, 1, 0]})
    c = pd.DataFrame({"dataset": "d", "sample_id": [1, 2, 3, 4], "top1": [1, 1, 1, 1]})
    out = agreement_values([("a", a), ("b", b), ("c", c)]).set_index("model")["value"]
    # a~b: 3 of 4 (aligned by sample id); a~c: 1 of 4; b~c: 2 of 4
    assert out.to_dict() == pytest.approx({"a": 0.5, "b": 0.625, "c": 0.375})


def test_estimate_study_reads_roles_and_names_missing_predictors():
    rows = []
    datasets = {"val": {"role": "id"}, "u": {"role": "unlabeled"}}
    for i, (d, acc, conf) in enumerate([("v2", 0.7, 0.8), ("sk", 0.4, 0.5), ("r", 0.3, 0.45)]):
        datasets[d] = {"role": ["v2", "sketch", "rendition"][i]}
        rows.append(("m", d, "accuracy", "accuracy", acc))
        rows.append(("m", d, "label_free", "avg_confidence", conf))
    rows.append(("m", "u", "label_free", "avg_confidence", 0.6))
    results = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
    est = estimate_study(results, datasets)
    assert est.unlabeled == ["u"] and set(est.shifts) == {"v2", "sk", "r"}
    assert set(est.estimates["dataset"]) == {"u"}
    assert est.recommended in {"avg confidence", "avg confidence (as is)"}
    assert any(m.startswith("EI rotation: no values") for m in est.missing)
    assert any("clustering.datasets: all" in m for m in est.missing)
