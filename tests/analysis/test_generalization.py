"""Tests of robustlens.analysis.generalization (seed 002's dimensions and bias matrix)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustlens.analysis.generalization import (
    BIASES,
    DIMENSIONS,
    bias_generalization_matrix,
    bias_table,
    generalization_table,
)
from robustlens.errors import ValidationError

COLS = ["model", "dataset", "measure", "name", "value"]

# per model: val, v2, corrupt a/1, corrupt b/3, sketch, rendition, shape_fraction, pgd,
# plus values that must NOT enter any dimension (spurious, adversarial clean, train)
HAND = {
    "m1": dict(val=0.9, v2=0.8, c1=0.6, c2=0.4, sketch=0.5, rend=0.3, sf=0.1, pgd=0.2),
    "m2": dict(val=0.7, v2=0.5, c1=0.5, c2=0.1, sketch=0.2, rend=0.4, sf=0.3, pgd=0.05),
    "m3": dict(val=0.6, v2=0.6, c1=0.3, c2=0.3, sketch=0.6, rend=0.6, sf=0.6, pgd=0.0),
}


def _rows(model: str, v: dict[str, float]) -> list[tuple]:
    acc = [
        ("world/val", v["val"]),
        ("world/v2", v["v2"]),
        ("world/corrupt/a/1", v["c1"]),
        ("world/corrupt/b/3", v["c2"]),
        ("world/sketch", v["sketch"]),
        ("world/rendition", v["rend"]),
        ("world/spurious", 0.99),
        ("world/adversarial", 0.98),
        ("world/cue_conflict", 0.97),
    ]
    rows = [(model, d, "accuracy", "accuracy", a) for d, a in acc]
    rows += [(model, d, "accuracy", "ece", 0.5) for d, _ in acc]  # another name: ignored
    rows += [
        (model, "world/cue_conflict", "biases", "shape_fraction", v["sf"]),
        (model, "world/adversarial", "biases", "pgd_accuracy", v["pgd"]),
        (model, "world/adversarial", "biases", "clean_accuracy", 0.96),
    ]
    return rows


def _frame(hand=HAND) -> pd.DataFrame:
    return pd.DataFrame([r for m, v in hand.items() for r in _rows(m, v)], columns=COLS)


def test_dimensions_equal_hand_computed_means():
    t = generalization_table(_frame())
    assert list(t.columns) == list(DIMENSIONS)
    assert t.index.tolist() == ["m1", "m2", "m3"]
    for m, v in HAND.items():
        assert t.loc[m, "in_distribution"] == pytest.approx((v["val"] + v["v2"]) / 2)
        assert t.loc[m, "robustness"] == pytest.approx((v["c1"] + v["c2"]) / 2)
        # seed 002: concepts = mean(sketch, rendition, stylized); the cue-conflict shape
        # fraction is a bias and never part of a dimension (no stylized set here)
        assert t.loc[m, "concepts"] == pytest.approx((v["sketch"] + v["rend"]) / 2)
        assert t.loc[m, "adversarial"] == pytest.approx(v["pgd"])
    comps = t.attrs["components"]
    assert comps["in_distribution"] == ["world/v2:accuracy", "world/val:accuracy"]
    assert len(comps["robustness"]) == 2 and len(comps["concepts"]) == 2
    assert not any("shape_fraction" in c for cs in comps.values() for c in cs)
    assert t.attrs["missing"]["concepts"] == ["stylized"]


def test_roles_mapping_overrides_the_names():
    df = _frame()
    # call v2 "other" and the sketch set "rendition": in_distribution = val only, concepts =
    # the rendition component alone, mean(sketch, rendition) (no shape fraction: seed 002)
    roles = {"world/v2": "other", "world/sketch": {"role": "rendition", "tags": {}}}
    t = generalization_table(df, roles)
    v = HAND["m1"]
    assert t.loc["m1", "in_distribution"] == pytest.approx(v["val"])
    assert t.loc["m1", "concepts"] == pytest.approx((v["sketch"] + v["rend"]) / 2)
    assert t.attrs["missing"]["concepts"] == ["sketch", "stylized"]


def test_missing_components_are_left_out_and_missing_dimensions_are_nan():
    df = _frame()
    df = df[~df["dataset"].isin(["world/rendition", "world/adversarial"])]
    t = generalization_table(df)
    v = HAND["m2"]
    assert t.loc["m2", "concepts"] == pytest.approx(v["sketch"])  # no shape fraction: seed 002
    assert t["adversarial"].isna().all()
    assert t.attrs["components"]["adversarial"] == []


def test_bias_table_skips_nan_fits_and_keeps_absent_biases():
    df = pd.DataFrame(
        [
            ("m1", "val_a", "biases", "cb_center_cpi", 4.0),
            ("m1", "val_b", "biases", "cb_center_cpi", np.nan),  # failed fit on one dataset
            ("m2", "val_a", "biases", "cb_center_cpi", np.nan),
            ("m2", "val_a", "accuracy", "accuracy", 0.5),
        ],
        columns=COLS,
    )
    t = bias_table(df)
    assert list(t.columns) == list(BIASES)
    assert t.loc["m1", "cb_center_cpi"] == 4.0
    assert math.isnan(t.loc["m2", "cb_center_cpi"])
    assert t["shape_bias"].isna().all()


def _matrix_frame() -> pd.DataFrame:
    """8 models: shape bias rises with in-distribution accuracy; low-frequency bias is a
    scrambled order (not significant); one critical-band fit failed."""
    rows = []
    scrambled = [3, 7, 0, 5, 1, 6, 2, 4]
    for i in range(8):
        m = f"m{i}"
        rows += [
            (m, "world/val", "accuracy", "accuracy", 0.5 + 0.05 * i),
            (m, "world/corrupt/a/1", "accuracy", "accuracy", 0.3 + 0.01 * scrambled[i]),
            (m, "world/cue_conflict", "biases", "shape_bias", 0.1 * i),
            (m, "world/val", "biases", "low_freq_bias", 0.1 * scrambled[i]),
            (m, "world/val", "biases", "cb_bandwidth_octaves", np.nan if i == 0 else float(i)),
        ]
    return pd.DataFrame(rows, columns=COLS)


def test_heatmap_convention_shown_is_zero_where_p_not_below_alpha():
    t = bias_generalization_matrix(_matrix_frame(), n_boot=100)
    assert len(t) == len(BIASES) * len(DIMENSIONS)
    assert list(t.columns) == [
        "x",
        "y",
        "coefficient",
        "p_value",
        "ci_low",
        "ci_high",
        "n",
        "significant",
        "shown",
        "method",
    ]
    assert set(t["method"]) == {"spearman"}
    row = t[(t["x"] == "shape_bias") & (t["y"] == "in_distribution")].iloc[0]
    assert row["coefficient"] == pytest.approx(1.0) and row["p_value"] < 0.05
    assert row["shown"] == row["coefficient"] and row["n"] == 8
    low = t[(t["x"] == "low_freq_bias") & (t["y"] == "in_distribution")].iloc[0]
    assert low["p_value"] >= 0.05 and low["coefficient"] != 0  # the true value is kept ...
    assert low["shown"] == 0.0  # ... but shown as 0
    # the convention holds for every cell
    ns = t[t["p_value"] >= 0.05]
    assert len(ns) > 0 and (ns["shown"] == 0).all()
    sig = t[t["p_value"] < 0.05]
    assert (sig["shown"] == sig["coefficient"]).all()
    # the failed fit is left out: n = 7
    cb = t[(t["x"] == "cb_bandwidth_octaves") & (t["y"] == "in_distribution")].iloc[0]
    assert cb["n"] == 7
    # no cue-conflict shape_fraction, no sketch: concepts is empty, so n = 0 and NaN
    con = t[(t["x"] == "shape_bias") & (t["y"] == "concepts")].iloc[0]
    assert con["n"] == 0 and math.isnan(con["coefficient"]) and con["shown"] == 0.0


def test_alpha_changes_what_is_shown():
    df = _matrix_frame()
    strict = bias_generalization_matrix(df, alpha=1e-12, n_boot=0)
    row = strict[(strict["x"] == "shape_bias") & (strict["y"] == "robustness")].iloc[0]
    lenient = bias_generalization_matrix(df, alpha=0.99, n_boot=0)
    row2 = lenient[(lenient["x"] == "shape_bias") & (lenient["y"] == "robustness")].iloc[0]
    assert row["coefficient"] == row2["coefficient"]
    assert row["shown"] == 0.0 and row2["shown"] == row2["coefficient"] != 0


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValidationError, match="missing"):
        generalization_table(pd.DataFrame({"model": ["m"], "value": [1.0]}))
    with pytest.raises(ValidationError, match="DataFrame"):
        bias_table([1, 2, 3])
    with pytest.raises(ValidationError, match="dimensions"):
        bias_generalization_matrix(_matrix_frame(), dimensions=["speed"])
