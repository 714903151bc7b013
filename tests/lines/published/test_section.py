"""The published line's report sections on a hand-made ReportContext.

Two made-up models on ImageNet datasets (val with ReaL, V2, Sketch, R through the robustness
measure, four ImageNet-C datasets, cue-conflict shape bias, spectral biases, PGD at seed 002's
0.5/255 for one and AutoAttack at RobustBench's 4/255 for the other), no ObjectNet, no
critical band: every section must place what it can and name what it cannot.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustlens.analysis.correlation import correlate
from robustlens.lines.published import LINE
from robustlens.lines.published.analysis import (
    bias_points,
    corruption_points,
    natural_shifts,
    rank_text,
    robust_points,
)
from robustlens.lines.published.section import (
    render_biases,
    render_natural_shifts,
    render_robustbench,
)
from robustlens.lines.published.tables import (
    bias_points_table,
    leaderboard_table,
    shift_points_table,
    shift_user_table,
)
from robustlens.metrics.effective_robustness import effective_robustness, imagenet_baseline
from robustlens.published import load_published
from robustlens.report.context import ReportContext

MODELS = {
    # val, ReaL, V2, Sketch, val on R's classes, R, shape bias, PGD or AutoAttack accuracy
    "mine-a": (0.78, 0.86, 0.66, 0.27, 0.96, 0.40, 0.20, 0.20),
    "mine-b": (0.70, 0.80, 0.57, 0.35, 0.93, 0.48, 0.50, 0.30),
}
C_DATASETS = [f"imagenet_c/{c}/{s}" for c in ("fog", "contrast") for s in (1, 3)]
C_ACCURACY = {"mine-a": 0.50, "mine-b": 0.45}


def _context(published=("testbed", "bvg", "robustbench"), datasets=None, results=None):
    rows = []
    for m, (val, real, v2, sk, rid, r, shape, robust) in MODELS.items():
        rows += [
            (m, "imagenet_val", "accuracy", "accuracy", val),
            (m, "imagenet_val", "accuracy", "accuracy_real", real),
            (m, "imagenet_v2", "accuracy", "accuracy", v2),
            (m, "imagenet_sketch", "accuracy", "accuracy", sk),
            (m, "imagenet_r", "accuracy", "accuracy", r),
            (m, "imagenet_r", "robustness", "acc_id", rid),
            (m, "imagenet_r", "robustness", "acc_ood", r),
            (m, "cue_conflict", "biases", "shape_bias", shape),
            (m, "imagenet_val", "biases", "low_freq_bias", 0.6),
            (m, "imagenet_val", "biases", "high_freq_bias", 0.01 if m == "mine-a" else 0.02),
            (m, "imagenet_val", "biases", "pgd_accuracy", robust),
            (m, "imagenet_val", "biases", "clean_accuracy", val),
        ]
        rows += [(m, d, "accuracy", "accuracy", C_ACCURACY[m]) for d in C_DATASETS]
    res = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
    ds = {
        "imagenet_val": {"role": "id", "tags": {"layout": "imagenet_val"}},
        "imagenet_v2": {"role": "v2", "tags": {"layout": "imagenet_v2"}},
        "imagenet_sketch": {"role": "sketch", "tags": {"layout": "imagenet_sketch"}},
        "imagenet_r": {"role": "rendition", "tags": {"layout": "imagenet_r"}},
        "cue_conflict": {"role": "cue_conflict", "tags": {"layout": "cue_conflict"}},
    }
    for d in C_DATASETS:
        _, c, s = d.split("/")
        ds[d] = {
            "role": "corrupt",
            "tags": {"layout": "imagenet_c", "corruption": c, "severity": int(s)},
        }
    arts = {
        "mine-a": {"biases": {"pgd": {"imagenet_val": {"eps": 0.5 / 255, "norm": "linf"}}}},
        "mine-b": {
            "biases": {
                "pgd": {"imagenet_val": {"eps": 4 / 255, "norm": "linf", "attack": "autoattack"}}
            }
        },
    }
    study = {"published": list(published)} if published is not None else {}
    return ReportContext(
        results if results is not None else res,
        arts,
        Path("."),
        datasets if datasets is not None else ds,
        {m: {} for m in MODELS},
        study,
    )


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"<img[^>]+>", "[IMG]", html))


def test_the_line_has_three_sections_and_no_measure():
    assert LINE.name == "published"
    assert LINE.measures == ()
    assert [s.render for s in LINE.sections] == [
        render_natural_shifts,
        render_biases,
        render_robustbench,
    ]


def test_nothing_is_shown_without_published_tables():
    for published in (None, ()):
        ctx = _context(published)
        assert render_natural_shifts(ctx) is None
        assert render_biases(ctx) is None
        assert render_robustbench(ctx) is None
    # a study asking for seed 002 only shows that one
    ctx = _context(["bvg"])
    assert render_natural_shifts(ctx) is None and render_robustbench(ctx) is None
    assert render_biases(ctx)


# ------------------------------------------------------------------------ (a) natural shifts
def test_natural_shifts_place_the_models_with_er_and_rank():
    ctx = _context()
    results = {r.shift: r for r in natural_shifts(ctx, load_published("testbed"))}
    assert list(results) == ["imagenet_v2", "imagenet_sketch", "imagenet_r", "objectnet"]
    for shift in ("imagenet_v2", "imagenet_sketch", "imagenet_r"):
        res = results[shift]
        user = res.user.set_index("model")
        assert list(user.index) == ["mine-a", "mine-b"]
        # the refitted line is the shipped one to 4 decimals, so ER agrees to ~1e-4
        shipped = imagenet_baseline(shift)
        for _, row in user.iterrows():
            assert row["er"] == pytest.approx(
                effective_robustness(row["acc_id"], row["acc_ood"], shipped), abs=2e-4
            )
        # the rank among the shown published models, by hand
        shown = res.published[res.published["shown"]]
        er = float(user.loc["mine-b", "er"])
        assert (
            user.loc["mine-b", "rank"] == f"{int((shown['er'] > er).sum()) + 1} / {len(shown) + 1}"
        )
        std = shown[shown["type"] == "Standard training"]
        assert user.loc["mine-b", "rank:Standard training"] == (
            f"{int((std['er'] > er).sum()) + 1} / {len(std) + 1}"
        )
    # R's x-axis is the robustness measure's restricted ID accuracy, not val
    assert list(results["imagenet_r"].user["acc_id"]) == [0.96, 0.93]
    assert list(results["imagenet_v2"].user["acc_id"]) == [0.78, 0.70]
    # the shift the study lacks is named
    assert results["objectnet"].user.empty
    assert any("no objectnet dataset" in n for n in results["objectnet"].notes)


def test_restricted_x_axis_without_the_robustness_measure_is_named():
    ctx = _context()
    ctx.results = ctx.results[ctx.results["measure"] != "robustness"]
    res = {r.shift: r for r in natural_shifts(ctx, load_published("testbed"))}
    assert res["imagenet_r"].user.empty
    assert any("robustness measure" in n for n in res["imagenet_r"].notes)
    assert len(res["imagenet_v2"].user) == 2  # plain val is the x-axis: accuracy suffices


def test_natural_shifts_section_html():
    html = render_natural_shifts(_context())
    text = _text(html)
    assert html.count("<img") == 4
    assert "Your models on ImageNet-R" in text and "mine-a" in text
    assert "slope 0.6368, intercept -2.1077" in text  # the testbed's R line, refitted
    assert "no objectnet dataset" in text
    # model names on hover
    assert "title='mine-a (yours)'" in html and "title='resnet50 (Standard training)'" in html
    res = natural_shifts(_context(), load_published("testbed"))[2]
    points = shift_points_table(res).to_frame()
    assert {"resnet50", "mine-a", "mine-b"} <= set(points["model"])
    assert (points.loc[points["model"] == "mine-a", "type"] == "yours").all()
    assert len(points) == res.published["shown"].sum() + 2
    user = shift_user_table(res).to_frame()
    assert list(user["model"]) == ["mine-a", "mine-b"]


# ------------------------------------------------------------------------------- (b) biases
def test_bias_points_use_the_same_components_on_both_sides():
    ctx = _context()
    bvg = load_published("bvg")
    bp = bias_points(ctx, bvg)
    assert len(bp.published) == 48 and list(bp.user.index) == ["mine-a", "mine-b"]
    # ID: val, V2, ReaL on both sides, so the published ID is the paper's
    r50 = bvg[bvg["type"].notna()].set_index("model")
    paper_id = r50[["imagenet_val", "imagenet_v2", "imagenet_val|accuracy.accuracy_real"]].mean(
        axis=1
    )
    pd.testing.assert_series_equal(
        bp.published["in_distribution"], paper_id, check_names=False, atol=1e-15
    )
    # Robustness: the study has ImageNet-C fog and contrast at severities 1 and 3 only
    assert bp.components["robustness"] == ["corrupt"]
    four = r50[C_DATASETS].mean(axis=1)
    pd.testing.assert_series_equal(bp.published["robustness"], four, check_names=False, atol=1e-15)
    assert bp.user.loc["mine-a", "robustness"] == pytest.approx(C_ACCURACY["mine-a"])
    # Concepts: Sketch and R only (no Stylized-ImageNet in the study)
    assert bp.components["concepts"] == ["sketch", "rendition"]
    # Adversarial: mine-b's robust accuracy is at 4/255 (AutoAttack), not seed 002's 0.5/255
    assert bp.user.loc["mine-a", "adversarial"] == pytest.approx(0.20)
    assert np.isnan(bp.user.loc["mine-b", "adversarial"])
    assert any("mine-b" in n and "4/255" in n for n in bp.notes)
    assert any("Stylized-ImageNet" in n for n in bp.notes)
    assert any("cb_bandwidth_octaves" in n for n in bp.notes)


def test_bias_correlations_with_and_without_the_users_models():
    bp = bias_points(_context(), load_published("bvg"))
    c = bp.correlations.set_index(["bias", "dimension"]).loc[("shape_bias", "in_distribution")]
    assert c["n"] == 48 and round(c["rho"], 2) == -0.76 and c["p"] < 0.05  # seed 002's headline
    both = correlate(
        pd.concat([bp.published["shape_bias"], bp.user["shape_bias"]]),
        pd.concat([bp.published["in_distribution"], bp.user["in_distribution"]]),
        n_boot=0,
    )
    assert c["n_with"] == 50 and c["rho_with"] == pytest.approx(both.coefficient)
    cb = bp.correlations.set_index(["bias", "dimension"]).loc[("cb_bandwidth_octaves", "concepts")]
    assert cb["n_with"] == cb["n"] == 48  # the study has no critical band
    names = set(bias_points_table(bp).to_frame()["model"])
    assert {"tv_resnet50", "mine-a", "mine-b"} <= names


def test_biases_section_html():
    html = render_biases(_context())
    text = _text(html)
    assert html.count("<img") == 1
    assert "Spearman correlation of each bias" in text
    assert "robustness = mean(ImageNet-C)" in text
    assert "tv_resnet50" in html and "mine-a" in html


def test_a_study_off_imagenet_is_not_placed_but_named():
    results = pd.DataFrame(
        [
            ("m", "world/val", "accuracy", "accuracy", 0.9),
            ("m", "world/v2", "accuracy", "accuracy", 0.8),
        ],
        columns=["model", "dataset", "measure", "name", "value"],
    )
    datasets = {"world/val": {"role": "id", "tags": {}}, "world/v2": {"role": "v2", "tags": {}}}
    ctx = _context(datasets=datasets, results=results)
    bp = bias_points(ctx, load_published("bvg"))
    assert bp.user.empty and any("not ImageNet" in n for n in bp.notes)
    shifts = natural_shifts(ctx, load_published("testbed"))
    assert all(r.user.empty and r.notes for r in shifts)
    assert render_biases(ctx) and render_natural_shifts(ctx)


# -------------------------------------------------------------------------- (c) RobustBench
def test_robust_accuracy_is_placed_only_at_the_same_threat_model():
    rb = load_published("robustbench")
    rp = robust_points(_context(), rb)
    assert list(rp.user["model"]) == ["mine-b"]
    assert rp.user.loc[0, "attack"] == "autoattack"
    above = int((rp.published["robust"] > 0.30).sum())
    assert rp.user.loc[0, "rank"] == f"{above + 1} / {len(rp.published) + 1}"
    assert any("mine-a" in n and "0.5/255" in n for n in rp.notes)
    board = leaderboard_table(rp).to_frame()
    assert board.loc[board["model"].str.startswith("mine-b"), "rank"].item() == above + 1
    assert len(board) == 31


def test_corruptions_are_averaged_over_the_same_datasets():
    rb = load_published("robustbench")
    cp = corruption_points(_context(), rb)
    # in the leaderboard's order of corruptions (fog before contrast)
    assert cp.datasets == [
        "imagenet_c/fog/1",
        "imagenet_c/fog/3",
        "imagenet_c/contrast/1",
        "imagenet_c/contrast/3",
    ]
    lb = rb[rb["threat"] == "corruptions"].set_index("model")
    std = cp.published.set_index("model").loc["Standard_R50", "corruption"]
    assert std == pytest.approx(lb.loc["Standard_R50", cp.datasets].mean())
    mine = cp.user.set_index("model")
    assert mine.loc["mine-a", "corruption"] == pytest.approx(0.5)
    assert mine.loc["mine-a", "clean"] == pytest.approx(0.78)
    assert any("4 of the leaderboard's 75" in n for n in cp.notes)


def test_robustbench_section_html():
    html = render_robustbench(_context())
    text = _text(html)
    assert html.count("<img") == 2
    assert "Salman2020Do_R50" in text and "mine-b (yours, imagenet_val)" in text
    assert "L-inf eps 0.5/255" in text
    assert "title='Salman2020Do_R50'" in html and "title='mine-b (yours)'" in html


def test_rank_text():
    assert rank_text(0.5, np.array([0.9, np.nan, 0.1])) == "2 / 3"
    assert rank_text(np.nan, np.array([0.1])) == "n/a"
