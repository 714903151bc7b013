"""Seed 002's generalization dimensions (robustlens.analysis.generalization.dimensions).

Gavrikov and Keuper, "Can Biases in ImageNet Models Explain Generalization?", CVPR 2024; the
authors' ``code/plots.ipynb`` computes ID = mean(imagenet, imagenet-v2, imagenet-real),
Robustness = mean(imagenet-a, imagenet-c, imagenet-cbar), Concepts = mean(imagenet-sketch,
imagenet-r, stylized), Adversarial = PGD-40/low, with ``DataFrame.mean(axis=1)`` (NaN skipped);
``eval_imagenet_c.py`` / ``eval_imagenet_cbar.py`` average every corruption x severity with
weight 1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustlens.analysis.generalization import (
    COMPONENTS,
    DIMENSIONS,
    dimension_components,
    dimensions,
    generalization_table,
    missing_components,
)
from robustlens.errors import ValidationError

NAN = float("nan")

# --- a hand-worked 3-model table --------------------------------------------------------------
# m3 has no ReaL labels, no ImageNet-A, no ImageNet-R and no PGD value.
HAND = pd.DataFrame(
    {
        "imagenet_val": [0.80, 0.60, 0.50],
        "imagenet_v2": [0.70, 0.50, 0.40],
        "imagenet_val|accuracy.accuracy_real": [0.90, 0.70, NAN],
        "imagenet_a": [0.10, 0.00, NAN],
        # ImageNet-C: an incomplete grid, to tell the paper's flat mean over corruption x
        # severity (m1: (0.6 + 0.4 + 0.8) / 3 = 0.6) from a mean of per-corruption means (0.65)
        "imagenet_c/fog/1": [0.60, 0.30, 0.10],
        "imagenet_c/fog/2": [0.40, 0.20, 0.20],
        "imagenet_c/gaussian_noise/1": [0.80, 0.40, 0.30],
        "imagenet_cbar/cocentric_sine_waves/1": [0.30, 0.20, 0.10],
        "imagenet_cbar/plasma_noise/3": [0.50, 0.20, 0.30],
        "imagenet_sketch": [0.20, 0.40, 0.30],
        "imagenet_r": [0.30, 0.50, NAN],
        "stylized_imagenet": [0.10, 0.60, 0.60],
        "adv|biases.pgd_accuracy": [0.05, 0.25, NAN],
        # none of these is part of any dimension
        "cue_conflict": [0.99, 0.99, 0.99],
        "cue_conflict|biases.shape_fraction": [0.99, 0.01, 0.50],
        "cue_conflict|biases.shape_bias": [0.99, 0.01, 0.50],
        "imagenet_val|biases.low_freq_bias": [0.99, 0.01, 0.50],
        "imagenet_val|accuracy.ece": [0.99, 0.99, 0.99],
        "objectnet": [0.99, 0.99, 0.99],
        "spurious_imagenet": [0.99, 0.99, 0.99],
        "adv": [0.99, 0.99, 0.99],  # clean accuracy of the PGD set
    },
    index=pd.Index(["m1", "m2", "m3"], name="model"),
)
ROLES = {"adv": "adversarial"}
EXPECTED = {
    #      in_distribution      robustness                concepts            adversarial
    "m1": ((0.8 + 0.7 + 0.9) / 3, (0.1 + 0.6 + 0.4) / 3, (0.2 + 0.3 + 0.1) / 3, 0.05),
    "m2": ((0.6 + 0.5 + 0.7) / 3, (0.0 + 0.3 + 0.2) / 3, (0.4 + 0.5 + 0.6) / 3, 0.25),
    "m3": ((0.5 + 0.4) / 2, (0.2 + 0.2) / 2, (0.3 + 0.6) / 2, NAN),
}


def _check(table: pd.DataFrame, expected: dict, abs_tol: float = 1e-12) -> None:
    for m, values in expected.items():
        for d, e in zip(DIMENSIONS, values, strict=True):
            got = table.loc[m, d]
            if math.isnan(e):
                assert math.isnan(got), (m, d, got)
            else:
                assert got == pytest.approx(e, abs=abs_tol), (m, d, got, e)


def test_dimensions_on_a_hand_worked_table():
    t = dimensions(HAND, ROLES)
    assert list(t.columns) == list(DIMENSIONS) and t.index.tolist() == ["m1", "m2", "m3"]
    _check(t, EXPECTED)
    # the exact numbers, written out
    assert t.loc["m1"].tolist() == pytest.approx([0.8, 1.1 / 3, 0.2, 0.05], abs=1e-12)
    assert t.loc["m2"].tolist() == pytest.approx([0.6, 0.5 / 3, 0.5, 0.25], abs=1e-12)
    assert t.loc["m3"].tolist()[:3] == pytest.approx([0.45, 0.2, 0.45], abs=1e-12)
    parts = dimension_components(HAND, ROLES)
    assert parts.loc["m1", "corrupt"] == pytest.approx(0.6, abs=1e-12)  # flat, not 0.65
    assert parts.loc["m1", "corrupt_bar"] == pytest.approx(0.4, abs=1e-12)
    assert list(parts.columns) == [c for comps in COMPONENTS.values() for c in comps]
    comps = t.attrs["components"]
    assert comps["in_distribution"] == [
        "imagenet_v2:accuracy",
        "imagenet_val:accuracy",
        "imagenet_val:accuracy_real",
    ]
    assert comps["robustness"] == sorted(
        ["imagenet_a:accuracy"]
        + [f"{c}:accuracy" for c in HAND.columns if c.startswith(("imagenet_c/", "imagenet_cbar"))]
    )
    assert comps["adversarial"] == ["adv:pgd_accuracy"]
    assert t.attrs["missing"] == {d: [] for d in DIMENSIONS}
    assert t.attrs["missing_by_model"] == {
        "in_distribution": {"m3": ["real"]},
        "robustness": {"m3": ["natural"]},
        "concepts": {"m3": ["rendition"]},
        "adversarial": {"m3": ["pgd"]},
    }
    assert missing_components(t) == [
        "in_distribution: real (ImageNet-ReaL) missing for m3",
        "robustness: natural (ImageNet-A) missing for m3",
        "concepts: rendition (ImageNet-R) missing for m3",
        "adversarial: pgd (PGD-40 at the low budget) missing for m3",
    ]


def test_no_bias_ever_enters_a_dimension():
    t = dimensions(HAND, ROLES)
    # scramble every bias and non-dimension column: the dimensions do not move
    other = HAND.copy()
    for c in (
        "cue_conflict",
        "cue_conflict|biases.shape_fraction",
        "cue_conflict|biases.shape_bias",
        "imagenet_val|biases.low_freq_bias",
        "objectnet",
        "spurious_imagenet",
        "adv",
    ):
        other[c] = [0.0, 1.0, 0.3]
    pd.testing.assert_frame_equal(dimensions(other, ROLES), t)
    assert not any("shape" in c or "bias" in c for cs in t.attrs["components"].values() for c in cs)
    # a table of biases and cue-conflict numbers alone gives no dimension at all
    only = HAND[[c for c in HAND.columns if c.startswith("cue_conflict")]]
    empty = dimensions(only)
    assert empty.isna().all().all()
    assert empty.attrs["missing"] == {d: list(c) for d, c in COMPONENTS.items()}


def test_missing_components_are_named_and_the_rest_is_averaged():
    cols = [
        c for c in HAND.columns if not c.startswith(("imagenet_cbar", "stylized", "imagenet_a"))
    ]
    t = dimensions(HAND[cols], ROLES)
    assert t.attrs["missing"] == {
        "in_distribution": [],
        "robustness": ["natural", "corrupt_bar"],
        "concepts": ["stylized"],
        "adversarial": [],
    }
    assert t.loc["m1", "robustness"] == pytest.approx(0.6, abs=1e-12)  # ImageNet-C alone
    assert t.loc["m2", "concepts"] == pytest.approx(0.45, abs=1e-12)  # sketch and R
    assert t.loc["m3", "concepts"] == pytest.approx(0.3, abs=1e-12)  # sketch alone
    lines = missing_components(t)
    assert "robustness: natural (ImageNet-A), corrupt_bar (ImageNet-C-bar)" in lines
    assert "concepts: stylized (Stylized-ImageNet)" in lines
    assert "concepts: rendition (ImageNet-R) missing for m3" in lines
    # many models lacking a component: five are named
    many = pd.DataFrame({"world/val": [0.5] * 8, "world/v2": [0.4] + [NAN] * 7})
    assert missing_components(dimensions(many))[1] == (
        "in_distribution: v2 (ImageNet-V2) missing for 1, 2, 3, 4, 5 and 2 more"
    )


def test_roles_and_tags_name_cbar_and_stylized_and_world_counterparts():
    table = pd.DataFrame(
        {
            "world/val": [0.9],
            "world/corrupt/fog/1": [0.5],
            # a C-bar corruption applied as a world view is C-bar, not C
            "world/corrupt/cocentric_sine_waves/2": [0.1],
            "mine_a": [0.3],  # a C-bar set named by its role
            "mine_b": [0.7],  # a C-bar set named by a tag
            "sin": [0.2],  # Stylized-ImageNet named by its role
            "world/natural": [0.4],
        },
        index=["m"],
    )
    roles = {
        "mine_a": "corrupt_bar",
        "mine_b": {"role": "corrupt", "tags": {"cbar": True}},
        "sin": {"role": "stylized", "tags": {}},
        "world/natural": "natural",
    }
    parts = dimension_components(table, roles)
    assert parts.attrs["columns"]["corrupt"] == ["world/corrupt/fog/1"]
    assert sorted(parts.attrs["columns"]["corrupt_bar"]) == [
        "mine_a",
        "mine_b",
        "world/corrupt/cocentric_sine_waves/2",
    ]
    assert parts.loc["m", "corrupt_bar"] == pytest.approx((0.1 + 0.3 + 0.7) / 3)
    t = dimensions(table, roles)
    assert t.loc["m", "robustness"] == pytest.approx((0.4 + 0.5 + (0.1 + 0.3 + 0.7) / 3) / 3)
    assert t.loc["m", "concepts"] == pytest.approx(0.2)
    # without the roles, the opaque names are not used (and are named missing)
    bare = dimensions(table)
    assert bare.attrs["missing"]["concepts"] == ["sketch", "rendition", "stylized"]
    # world/natural is the world's adversarially filtered split by name (role natural)
    assert bare.loc["m", "robustness"] == pytest.approx((0.4 + 0.5 + 0.1) / 3)


def test_results_wide_export_and_long_results_agree():
    long = []
    for m, row in HAND.iterrows():
        for c, v in row.items():
            ds, _, value = c.partition("|")
            measure, _, name = value.rpartition(".") if value else ("accuracy", "", "accuracy")
            long.append((m, ds, measure, name, v))
    long = pd.DataFrame(long, columns=["model", "dataset", "measure", "name", "value"])
    from_long = generalization_table(long, ROLES)
    _check(from_long, EXPECTED)
    # the wide export: a ``model`` column, ``dataset|measure.name`` columns, model-level ``*``
    wide = pd.DataFrame(
        {
            f"{d}|{m}.{n}": long[(long["dataset"] == d) & (long["measure"] == m)]
            .loc[lambda x, n=n: x["name"] == n]
            .set_index("model")["value"]
            for d, m, n in long[["dataset", "measure", "name"]].drop_duplicates().itertuples(False)
        }
    )
    wide["*|training.seconds"] = 1.0
    wide = wide.rename_axis("model").reset_index()
    from_wide = dimensions(wide, ROLES)
    pd.testing.assert_frame_equal(from_wide, from_long, check_names=False)
    assert from_wide.attrs == from_long.attrs


def test_bad_table_is_a_clear_error():
    with pytest.raises(ValidationError, match="one row per model"):
        dimensions([[0.5]])


# --- seed 002's own data ----------------------------------------------------------------------
# Five rows of the authors' raw-data/benchmark.csv
# (github.com/paulgavrikov/biases_vs_generalization, commit 9168ac8): the columns the
# dimensions use (and shape bias, which they must not use), in percent, as published:
# imagenet, imagenet-v2, imagenet-real, imagenet-a, imagenet-c, imagenet-cbar, imagenet-sketch,
# imagenet-r, stylized, PGD-40/low, shape-bias
PAPER_COLUMNS = (
    "top1_acc/imagenet",
    "top1_acc/imagenet-v2",
    "top1_acc/imagenet-real",
    "top1_acc/imagenet-a",
    "top1_acc/imagenet-c",
    "top1_acc/imagenet-cbar",
    "top1_acc/imagenet-sketch",
    "top1_acc/imagenet-r",
    "top1_acc/stylized",
    "top1_acc/PGD-40/low",
    "shape-bias",
)
# fmt: off
PAPER_ROWS = {
    "tv_resnet50": [76.14599997314453, 63.13999987792969, 86.50306748466258, 0.02666666666666667, 41.12162105140525, 39.702319998841084, 24.091650454415053, 36.156666657511394, 37.125, 18.390345268542198, 0.21464646464646464],  # noqa: E501
    "resnet50_trained_on_SIN": [60.18000000366211, 48.610000018310544, 73.31288343558282, 2.386666677856445, 39.75888420789219, 36.757759996634306, 30.09491245322473, 40.16666666870117, 90.875, 12.328164961636833, 0.8139223560910307],  # noqa: E501
    "robust_resnet50_linf_eps4.0": [63.87399997558594, 51.30999997558594, 78.83435582822086, 2.293333332824707, 33.71208420765886, 36.561519996489714, 21.869166224490417, 38.92333332417806, 43.25, 61.223225703324815, 0.6232258064516129],  # noqa: E501
    "resnet50_augmix_180ep": [77.53200001708984, 65.41999991455079, 88.95705521472392, 3.6533333372751873, 50.76517894215632, 46.155119996234134, 28.48749238297031, 41.026666662597655, 45.5, 30.95628196930946, 0.2951482479784367],  # noqa: E501
    "resnet50_lpmix": [74.47000001708984, 62.26999995117187, NAN, 2.720000001144409, NAN, NAN, 25.852345298869487, 38.40333332621257, 38.625, NAN, 0.2575376884422111],  # noqa: E501
}
# tv_resnet50's ImageNet-C-bar accuracies per corruption, severities 1-5 (same file)
TV_RESNET50_CBAR = {
    "blue_noise_sample": [50.201999997558595, 45.13200000854492, 42.72400000610352, 30.544000001831055, 12.812000000915528],  # noqa: E501
    "brownish_noise": [71.32599997314453, 65.28199999267578, 57.99599999755859, 50.113999997558594, 42.16399999389648],  # noqa: E501
    "caustic_refraction": [65.9599999975586, 62.11200000976562, 54.5040000012207, 47.667999995117185, 38.8699999987793],  # noqa: E501
    "checkerboard_cutout": [63.47400001220703, 56.12600000854492, 46.25799998901367, 36.80000000244141, 26.869999993896485],  # noqa: E501
    "cocentric_sine_waves": [41.70000000732422, 17.352000003051756, 5.632000001220703, 3.519999999771118, 2.717999999885559],  # noqa: E501
    "inverse_sparkles": [38.6659999987793, 30.253999990234377, 18.303999998168944, 8.475999999771117, 8.125999998474121],  # noqa: E501
    "perlin_noise": [67.88399998291015, 66.16000000976562, 64.17400001953125, 57.17199998535156, 50.6759999987793],  # noqa: E501
    "plasma_noise": [50.3399999987793, 28.71599999267578, 18.091999998779297, 13.020000000305176, 9.758000000457765],  # noqa: E501
    "single_frequency_greyscale": [41.24399999755859, 26.872000002441407, 17.568000004882812, 3.507999999389648, 3.423999999847412],  # noqa: E501
    "sparkles": [73.30400000244141, 71.80799998046875, 68.38400000244141, 58.445999991455075, 52.8799999987793],  # noqa: E501
}
# fmt: on
# the authors' column -> the robustlens dataset / results_wide column
RENAME = {
    "top1_acc/imagenet": "imagenet_val",
    "top1_acc/imagenet-v2": "imagenet_v2",
    "top1_acc/imagenet-real": "imagenet_val|accuracy.accuracy_real",
    "top1_acc/imagenet-a": "imagenet_a",
    "top1_acc/imagenet-c": "imagenet_c",  # ImageNet-C's published mean: one column
    "top1_acc/imagenet-cbar": "imagenet_cbar",
    "top1_acc/imagenet-sketch": "imagenet_sketch",
    "top1_acc/imagenet-r": "imagenet_r",
    "top1_acc/stylized": "stylized_imagenet",
    "top1_acc/PGD-40/low": "imagenet_val|biases.pgd_accuracy",
    "shape-bias": "cue_conflict|biases.shape_bias",
}
# the dimensions by hand, from the rows above, as plots.ipynb computes them (NaN skipped)
PAPER_EXPECTED = {
    "tv_resnet50": (75.263022445246, 26.950202572304, 32.457772370642, 18.390345268542),
    "resnet50_trained_on_SIN": (
        60.700961152518,
        26.301103627461,
        53.712193040642,
        12.328164961637,
    ),
    "robust_resnet50_linf_eps4.0": (
        64.672785259798,
        24.188979178991,
        34.680833182889,
        61.223225703325,
    ),
    "resnet50_augmix_180ep": (77.303018382122, 33.524544091889, 38.338053015189, 30.956281969309),
    # no ReaL, no -C, no -C-bar, no PGD: ID = mean(val, V2), Robustness = ImageNet-A alone
    "resnet50_lpmix": (
        (74.47000001708984 + 62.26999995117187) / 2,
        2.720000001144409,
        34.293559541694,
        NAN,
    ),
}


def _paper_table() -> pd.DataFrame:
    raw = pd.DataFrame.from_dict(PAPER_ROWS, orient="index", columns=list(PAPER_COLUMNS))
    return raw.rename(columns=RENAME).rename_axis("model")


def test_dimensions_reproduce_the_authors_table():
    t = dimensions(_paper_table())
    _check(t, PAPER_EXPECTED, abs_tol=5e-12)
    # and the notebook's own expressions on the same rows agree to the last bit
    raw = pd.DataFrame.from_dict(PAPER_ROWS, orient="index", columns=list(PAPER_COLUMNS))
    paper = {
        "in_distribution": raw[
            ["top1_acc/imagenet", "top1_acc/imagenet-v2", "top1_acc/imagenet-real"]
        ].mean(axis=1),
        "robustness": raw[
            ["top1_acc/imagenet-a", "top1_acc/imagenet-c", "top1_acc/imagenet-cbar"]
        ].mean(axis=1),
        "concepts": raw[
            ["top1_acc/imagenet-sketch", "top1_acc/imagenet-r", "top1_acc/stylized"]
        ].mean(axis=1),
        "adversarial": raw[["top1_acc/PGD-40/low"]].mean(axis=1),
    }
    for d, s in paper.items():
        np.testing.assert_allclose(t[d].to_numpy(), s.to_numpy(), rtol=0, atol=1e-12)
    assert t.attrs["missing"] == {d: [] for d in DIMENSIONS}
    assert t.attrs["missing_by_model"]["robustness"] == {
        "resnet50_lpmix": ["corrupt", "corrupt_bar"]
    }
    # shape bias is in the table but in no dimension
    assert not any("shape" in c for cs in t.attrs["components"].values() for c in cs)


def test_cbar_per_corruption_columns_give_the_published_mean():
    """The published ``imagenet-cbar`` is the plain mean over its 10 x 5 datasets, and the
    dimensions computed from those 50 columns equal the ones from the published mean."""
    values = [v for vs in TV_RESNET50_CBAR.values() for v in vs]
    published = PAPER_ROWS["tv_resnet50"][PAPER_COLUMNS.index("top1_acc/imagenet-cbar")]
    assert np.mean(values) == pytest.approx(published, abs=1e-9)
    table = _paper_table().loc[["tv_resnet50"]].drop(columns=["imagenet_cbar"])
    for c, vs in TV_RESNET50_CBAR.items():
        for s, v in enumerate(vs, start=1):
            table[f"imagenet_cbar/{c}/{s}"] = v
    t = dimensions(table)
    assert t.loc["tv_resnet50", "robustness"] == pytest.approx(
        PAPER_EXPECTED["tv_resnet50"][1], abs=1e-9
    )
    assert len([c for c in t.attrs["components"]["robustness"] if "cbar" in c]) == 50
