"""Tests of robustlens.analysis.correlation: correlate and correlation_table."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from robustlens.analysis.correlation import CorrelationResult, correlate, correlation_table
from robustlens.errors import ValidationError

X = np.arange(1.0, 11.0)
Y_MONO = X**3  # monotone, not linear


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_monotone_relation_gives_rank_correlation_one(method):
    r = correlate(X, Y_MONO, method=method)
    assert r.coefficient == pytest.approx(1.0)
    assert r.p_value < 1e-3
    assert r.significant
    assert r.n == 10
    assert r.method == method


def test_decreasing_relation_gives_minus_one():
    r = correlate(X, -Y_MONO)
    assert r.coefficient == pytest.approx(-1.0)
    assert r.significant


def test_pearson_matches_numpy_and_is_below_one_for_a_curve():
    r = correlate(X, Y_MONO, method="pearson")
    assert r.coefficient == pytest.approx(np.corrcoef(X, Y_MONO)[0, 1])
    assert r.coefficient < 0.99


def test_ci_brackets_the_coefficient_and_is_reproducible():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    a = correlate(x, y, seed=3)
    assert a.ci_low < a.coefficient < a.ci_high
    assert a == correlate(x, y, seed=3)
    assert (a.ci_low, a.ci_high) != (
        correlate(x, y, seed=4).ci_low,
        correlate(x, y, seed=4).ci_high,
    )


@pytest.mark.parametrize("method", ["spearman", "pearson", "kendall"])
def test_bootstrap_matches_a_literal_reference(method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=15)
    y = x + rng.normal(size=15)
    n_boot, alpha, seed = 200, 0.1, 7
    ref_rng = np.random.default_rng(seed)
    idx = ref_rng.integers(0, 15, size=(n_boot, 15))
    fn = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boots = np.array([fn[method](x[i], y[i]).statistic for i in idx])
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    r = correlate(x, y, method=method, alpha=alpha, n_boot=n_boot, seed=seed)
    assert r.ci_low == pytest.approx(lo, abs=1e-12)
    assert r.ci_high == pytest.approx(hi, abs=1e-12)


def test_nan_pairs_are_dropped():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    y = np.array([2.0, 3.0, 4.0, np.inf, 6.0, 7.0])
    r = correlate(x, y)
    assert r.n == 4
    assert r.coefficient == pytest.approx(1.0)


def test_fewer_than_three_pairs_give_nan_and_n():
    r = correlate([1.0, 2.0, np.nan, 3.0], [1.0, 2.0, 3.0, np.nan])
    assert r.n == 2
    assert math.isnan(r.coefficient) and math.isnan(r.p_value)
    assert math.isnan(r.ci_low) and math.isnan(r.ci_high)
    assert not r.significant
    assert r.shown == 0.0


def test_constant_input_gives_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = correlate([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0])
    assert math.isnan(r.coefficient)
    assert not r.significant


def test_no_bootstrap_gives_nan_ci():
    r = correlate(X, Y_MONO, n_boot=0)
    assert math.isnan(r.ci_low) and math.isnan(r.ci_high)
    assert r.coefficient == pytest.approx(1.0)


def test_accepts_torch_and_lists():
    r = correlate(torch.tensor(X), list(Y_MONO))
    assert r.coefficient == pytest.approx(1.0)


def test_result_is_frozen_and_shown_follows_significance():
    r = correlate(X, Y_MONO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.coefficient = 0.0  # type: ignore[misc]
    assert r.shown == r.coefficient
    weak = CorrelationResult(0.3, 0.2, -0.1, 0.6, 10, "spearman", False)
    assert weak.shown == 0.0


def test_mismatched_lengths_name_both_lengths():
    with pytest.raises(ValidationError, match=r"x=3.*y=4"):
        correlate([1, 2, 3], [1, 2, 3, 4])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "cosine"}, "method"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"n_boot": -1}, "n_boot"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        correlate(X, Y_MONO, **kwargs)


def test_rejects_2d_input():
    with pytest.raises(ValidationError, match="1-D"):
        correlate(np.ones((3, 2)), np.ones(3))


@pytest.fixture
def table_df():
    rng = np.random.default_rng(2)
    n = 12
    acc = np.linspace(0.5, 0.9, n)
    return pd.DataFrame(
        {
            "acc_clean": acc,
            "acc_ood": acc**2,
            "noise": rng.normal(size=n),
            "ei": acc + 0.01 * rng.normal(size=n),
        }
    )


def test_correlation_table_long_format_and_order(table_df):
    t = correlation_table(table_df, ["acc_clean", "ei"], ["acc_ood", "noise"], n_boot=50)
    assert list(t.columns[:9]) == [
        "x",
        "y",
        "coefficient",
        "p_value",
        "ci_low",
        "ci_high",
        "n",
        "significant",
        "shown",
    ]
    assert list(zip(t["x"], t["y"], strict=True)) == [
        ("acc_clean", "acc_ood"),
        ("acc_clean", "noise"),
        ("ei", "acc_ood"),
        ("ei", "noise"),
    ]
    assert (t["n"] == 12).all()
    ref = correlate(table_df["ei"], table_df["noise"], n_boot=50)
    row = t.iloc[3]
    assert row["coefficient"] == pytest.approx(ref.coefficient)
    assert row["ci_low"] == pytest.approx(ref.ci_low)


def test_correlation_table_shown_is_zero_where_not_significant(table_df):
    t = correlation_table(table_df, ["acc_clean"], ["acc_ood", "noise"], alpha=0.05, n_boot=0)
    sig = t["p_value"] < 0.05
    assert sig.iloc[0] and not sig.iloc[1]
    assert (t["significant"] == sig).all()
    np.testing.assert_array_equal(t["shown"], np.where(sig, t["coefficient"], 0.0))
    assert t["coefficient"].iloc[1] != 0.0  # the true value stays in the data


def test_correlation_table_alpha_changes_what_is_shown(table_df):
    strict = correlation_table(table_df, ["acc_clean"], ["noise"], alpha=0.01, n_boot=0)
    loose = correlation_table(table_df, ["acc_clean"], ["noise"], alpha=0.99, n_boot=0)
    assert strict["shown"].iloc[0] == 0.0
    assert loose["shown"].iloc[0] == pytest.approx(loose["coefficient"].iloc[0])


def test_correlation_table_missing_column_is_named(table_df):
    with pytest.raises(ValidationError, match=r"\['acc_v2'\].*available"):
        correlation_table(table_df, ["acc_clean"], ["acc_v2"])


def test_correlation_table_rejects_non_numeric_column(table_df):
    table_df["name"] = [f"m{i}" for i in range(len(table_df))]
    with pytest.raises(ValidationError, match="'name'"):
        correlation_table(table_df, ["name"], ["acc_ood"])
