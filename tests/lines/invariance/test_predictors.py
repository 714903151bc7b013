"""Tests of robustlens.lines.invariance.predictors: leave-one-model-out and direct predictors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlens.errors import ValidationError
from robustlens.lines.invariance.predictors import direct_predictor_mae, leave_one_model_out

COLUMNS = ["predictor", "model", "target", "prediction", "abs_error", "mae"]


def _mae(out: pd.DataFrame) -> dict[str, float]:
    return out.groupby("predictor", sort=False)["mae"].first().to_dict()


def test_loo_hand_computed_case():
    # x = [0, 1, 2], y = [0, 1, 3]
    # hold out m0: line through (1, 1), (2, 3) -> -1 at 0, error 1
    # hold out m1: line through (0, 0), (2, 3) -> 1.5 at 1, error 0.5
    # hold out m2: line through (0, 0), (1, 1) -> 2 at 2, error 1
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 3.0]}, index=["m0", "m1", "m2"])
    out = leave_one_model_out(df, ["x"], "y")
    assert list(out.columns) == COLUMNS
    assert out["model"].tolist() == ["m0", "m1", "m2"]
    np.testing.assert_allclose(out["prediction"], [-1.0, 1.5, 2.0], atol=1e-12)
    np.testing.assert_allclose(out["abs_error"], [1.0, 0.5, 1.0], atol=1e-12)
    assert _mae(out) == {"x": pytest.approx(2.5 / 3)}


def test_loo_exact_linear_feature_has_zero_error_and_all_is_added():
    rng = np.random.default_rng(0)
    n = 8
    ei = rng.uniform(0.2, 0.9, size=n)
    df = pd.DataFrame({"model": [f"m{i}" for i in range(n)], "ei": ei, "noise": rng.normal(size=n)})
    df["acc"] = 0.1 + 0.8 * df["ei"]
    out = leave_one_model_out(df, ["ei", "noise"], "acc", model_col="model")
    mae = _mae(out)
    assert list(mae) == ["ei", "noise", "all"]
    assert mae["ei"] == pytest.approx(0.0, abs=1e-10)
    assert mae["all"] == pytest.approx(0.0, abs=1e-10)
    assert mae["noise"] > 0.05
    assert out["model"].tolist()[:n] == df["model"].tolist()


def test_loo_single_feature_has_no_all_predictor():
    df = pd.DataFrame({"f": [1.0, 2.0, 3.0, 4.0], "acc": [0.2, 0.5, 0.4, 0.8]})
    out = leave_one_model_out(df, ["f"], "acc")
    assert set(out["predictor"]) == {"f"}


def test_loo_does_not_use_the_held_out_model():
    # an in-sample fit of a 3-point line would not reproduce the hand-computed LOO values
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 3.0]})
    out = leave_one_model_out(df, ["x"], "y")
    in_sample = np.polyval(np.polyfit(df["x"], df["y"], 1), df["x"])
    assert not np.allclose(out["prediction"], in_sample)


def test_loo_rejects_too_few_models():
    df = pd.DataFrame({"f": [1.0, 2.0], "acc": [0.3, 0.4]})
    with pytest.raises(ValidationError, match="at least 3 models"):
        leave_one_model_out(df, ["f"], "acc")


def test_loo_missing_values_name_the_models():
    df = pd.DataFrame(
        {"f": [1.0, np.nan, 3.0, 4.0], "acc": [0.1, 0.2, 0.3, 0.4]},
        index=["a", "b", "c", "d"],
    )
    with pytest.raises(ValidationError, match=r"'f'.*\['b'\]"):
        leave_one_model_out(df, ["f"], "acc")


def test_loo_missing_column_is_named():
    df = pd.DataFrame({"f": [1.0, 2.0, 3.0], "acc": [0.1, 0.2, 0.3]})
    with pytest.raises(ValidationError, match=r"\['g'\]"):
        leave_one_model_out(df, ["f", "g"], "acc")
    with pytest.raises(ValidationError, match="target_col"):
        leave_one_model_out(df, ["f"], "acc_ood")


def test_loo_duplicate_models_are_rejected():
    df = pd.DataFrame({"model": ["a", "b", "a"], "f": [1.0, 2.0, 3.0], "acc": [0.1, 0.2, 0.3]})
    with pytest.raises(ValidationError, match=r"duplicated models \['a'\]"):
        leave_one_model_out(df, ["f"], "acc", model_col="model")


def test_loo_rejects_target_among_features_and_reserved_name():
    df = pd.DataFrame({"all": [1.0, 2.0, 3.0], "f": [1.0, 0.0, 2.0], "acc": [0.1, 0.2, 0.3]})
    with pytest.raises(ValidationError, match="target column"):
        leave_one_model_out(df, ["f", "acc"], "acc")
    with pytest.raises(ValidationError, match="reserved"):
        leave_one_model_out(df, ["all", "f"], "acc")


def test_direct_predictor_mae_golden():
    df = pd.DataFrame(
        {"atc": [0.5, 0.7, 0.6], "doc": [0.6, 0.9, 0.3], "acc": [0.5, 0.8, 0.5]},
        index=["m1", "m2", "m3"],
    )
    out = direct_predictor_mae(df, ["atc", "doc"], "acc")
    assert list(out.columns) == COLUMNS
    mae = _mae(out)
    assert mae["atc"] == pytest.approx((0.0 + 0.1 + 0.1) / 3)
    assert mae["doc"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    np.testing.assert_allclose(out["abs_error"], [0.0, 0.1, 0.1, 0.1, 0.1, 0.2], atol=1e-12)


def test_direct_and_loo_results_concatenate():
    df = pd.DataFrame(
        {"ei": [0.2, 0.5, 0.7, 0.9], "atc": [0.3, 0.5, 0.6, 0.7], "acc": [0.3, 0.45, 0.6, 0.7]}
    )
    both = pd.concat(
        [leave_one_model_out(df, ["ei"], "acc"), direct_predictor_mae(df, ["atc"], "acc")],
        ignore_index=True,
    )
    assert list(both.columns) == COLUMNS
    assert set(_mae(both)) == {"ei", "atc"}


def test_direct_predictor_rejects_non_numeric():
    df = pd.DataFrame({"atc": ["high", "low"], "acc": [0.5, 0.8]})
    with pytest.raises(ValidationError, match="'atc'"):
        direct_predictor_mae(df, ["atc"], "acc")


def test_direct_predictor_rejects_a_string_instead_of_a_list():
    df = pd.DataFrame({"atc": [0.5, 0.7], "acc": [0.5, 0.8]})
    with pytest.raises(ValidationError, match="list of column names"):
        direct_predictor_mae(df, "atc", "acc")
