"""Zoo effective robustness: baseline over standard models, ER, matched generated-data pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlens.errors import ValidationError
from robustlens.lines.robustness.analysis import (
    er_pairs_table,
    is_standard,
    matched_pairs,
    models_config_from_artifacts,
    zoo_effective_robustness,
)
from robustlens.lines.robustness.section import robustness_section
from robustlens.lines.robustness.tables import er_table, pairs_table, shipped_er_table
from robustlens.metrics.effective_robustness import inv_logit, inv_probit, logit, probit
from robustlens.report import report_sections
from robustlens.report.context import ReportContext

SLOPE, INTERCEPT = 0.8, -0.5


def _member(name, augment="standard", generated=None, width=16, **kw):
    return {
        "member": {
            "name": name,
            "arch": "cnn",
            "width": width,
            "augment": augment,
            "epochs": 4,
            "mark_rate": None,
            "seed": 0,
            "generated": generated,
            "generated_ratio": 1.0,
            "tags": ["generated"] if generated else [],
            **kw,
        }
    }


def _results(points: dict[str, dict[str, tuple[float, float]]]) -> pd.DataFrame:
    rows = []
    for model, per_shift in points.items():
        for shift, (a_id, a_ood) in per_shift.items():
            rows += [
                (model, shift, "robustness", "acc_id", a_id),
                (model, shift, "robustness", "acc_ood", a_ood),
                (model, shift, "accuracy", "accuracy", a_ood),
            ]
    return pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])


def _on_line(a_id: float, slope=SLOPE, intercept=INTERCEPT, transform="logit") -> float:
    fwd, inv = (logit, inv_logit) if transform == "logit" else (probit, inv_probit)
    return float(inv(slope * fwd(a_id) + intercept))


def _zoo(transform="logit"):
    ids = {"s1": 0.55, "s2": 0.65, "s3": 0.75, "s4": 0.85}
    pts = {
        m: {
            "world/sketch": (a, _on_line(a, transform=transform)),
            "world/rendition": (a, _on_line(a, 1.1, -1.0, transform)),
        }
        for m, a in ids.items()
    }
    pts["s3-gen"] = {
        "world/sketch": (0.74, _on_line(0.74, transform=transform) + 0.05),
        "world/rendition": (0.74, _on_line(0.74, 1.1, -1.0, transform) + 0.02),
    }
    pts["tex"] = {"world/sketch": (0.7, 0.6), "world/rendition": (0.7, 0.2)}
    cfg = {m: _member(m, width=10 + i) for i, m in enumerate(ids)}
    cfg["s3-gen"] = _member("s3-gen", generated="/gen", width=12)
    cfg["tex"] = _member("tex", augment="texrand")
    return _results(pts), cfg


@pytest.mark.parametrize("transform", ["logit", "probit"])
def test_fit_recovers_line_and_er_is_zero_on_it(transform):
    results, cfg = _zoo(transform)
    table, lines = zoo_effective_robustness(results, cfg, transform=transform)
    sk = lines["world/sketch"]
    assert sk.slope == pytest.approx(SLOPE, abs=1e-6)
    assert sk.intercept == pytest.approx(INTERCEPT, abs=1e-6)
    assert sk.r2 == pytest.approx(1.0) and sk.n == 4 and sk.transform == transform
    assert lines["world/rendition"].slope == pytest.approx(1.1, abs=1e-6)
    std = table[table["in_baseline"]]
    assert set(std["model"]) == {"s1", "s2", "s3", "s4"}
    assert np.abs(std["er"]).max() < 1e-6
    gen = table[(table["model"] == "s3-gen")].set_index("shift")
    assert gen.loc["world/sketch", "er"] == pytest.approx(0.05, abs=1e-6)
    assert gen.loc["world/rendition", "er"] == pytest.approx(0.02, abs=1e-6)
    assert bool(gen["generated"].all()) and not gen["in_baseline"].any()
    tex = table[(table["model"] == "tex") & (table["shift"] == "world/sketch")].iloc[0]
    assert tex["relative_robustness"] == pytest.approx(0.6 - 0.7)
    assert tex["er"] == pytest.approx(0.6 - _on_line(0.7, transform=transform))


def test_explicit_baseline_models_and_noisy_fit_r2():
    results, cfg = _zoo()
    noisy = results.copy()
    sel = (noisy["model"] == "s2") & (noisy["name"] == "acc_ood")
    noisy.loc[sel, "value"] += 0.05
    table, lines = zoo_effective_robustness(noisy, cfg)
    assert lines["world/sketch"].r2 < 1.0
    table, lines = zoo_effective_robustness(noisy, cfg, baseline_models=["s1", "s3", "s4"])
    assert lines["world/sketch"].n == 3
    assert lines["world/sketch"].slope == pytest.approx(SLOPE, abs=1e-6)
    s2 = table[(table["model"] == "s2") & (table["shift"] == "world/sketch")].iloc[0]
    assert s2["er"] == pytest.approx(0.05, abs=1e-6)
    with pytest.raises(ValidationError, match="have no robustness results"):
        zoo_effective_robustness(noisy, cfg, baseline_models=["s1", "ghost"])


def test_too_few_standard_models_gives_nan_not_junk():
    results, cfg = _zoo()
    keep = results[results["model"].isin(["s1", "s3-gen"])]
    table, lines = zoo_effective_robustness(keep, cfg)
    assert lines == {}
    assert table["er"].isna().all() and table["relative_robustness"].notna().all()


def test_missing_robustness_results_is_a_clear_error():
    results, cfg = _zoo()
    with pytest.raises(ValidationError, match="measures: \\[accuracy, robustness\\]"):
        zoo_effective_robustness(results[results["measure"] == "accuracy"], cfg)


def test_matched_pairs_and_pairs_table():
    results, cfg = _zoo()
    cfg["s1-gen"] = _member("s1-gen", generated="/gen", width=10)
    cfg["orphan-gen"] = _member("orphan-gen", generated="/gen", width=99)
    cfg["timm-model"] = {"source": "timm", "arch": "resnet50"}
    pairs = matched_pairs(cfg)
    assert pairs == [("s1-gen", "s1"), ("s3-gen", "s3")]
    table, _ = zoo_effective_robustness(results, cfg)
    df = er_pairs_table(table, models_config=cfg)  # s1-gen has no results: left out
    assert set(df["generated"]) == {"s3-gen"} and len(df) == 2
    row = df.set_index("shift").loc["world/sketch"]
    assert row["real"] == "s3" and row["delta_er"] == pytest.approx(0.05, abs=1e-6)
    assert row["delta_acc_ood"] == pytest.approx(row["acc_ood_gen"] - row["acc_ood_real"])
    with pytest.raises(ValidationError, match="pass pairs or models_config"):
        er_pairs_table(table)


def test_twin_prefers_the_name_stem_and_requires_same_recipe():
    cfg = {
        "a": _member("a"),
        "b": _member("b"),
        "b-gen": _member("b-gen", generated="/g"),
        "c-gen": _member("c-gen", generated="/g", augment="strong"),
    }
    assert matched_pairs(cfg) == [("b-gen", "b")]


def test_standard_membership_and_configs_from_artifacts():
    assert is_standard(_member("x", augment="none"))
    assert not is_standard(_member("x", augment="strong"))
    assert not is_standard(_member("x", generated="/g"))
    assert is_standard({"source": "timm"}) and not is_standard({"tags": ["generated"]})
    arts = {"m": {"robustness": {"model_config": {"member": {"name": "m"}}}}, "n": {"other": {}}}
    assert models_config_from_artifacts(arts) == {"m": {"member": {"name": "m"}}}


def test_report_section_renders_scatter_er_table_and_pairs(tmp_path):
    results, cfg = _zoo()
    arts = {
        m: {
            "robustness": {
                "model_config": c,
                "shifts": {
                    "world/sketch": {"shift_key": None},
                    "world/rendition": {"shift_key": None},
                },
            }
        }
        for m, c in cfg.items()
    }
    arts["s1"]["robustness"]["shifts"]["world/sketch"]["shift_key"] = "imagenet_sketch"
    ctx = ReportContext(results=results, artifacts=arts, output_dir=tmp_path)
    html = robustness_section(ctx)
    assert html is not None and html.count("<img") == 1
    assert "R²=1.000, n=4" in html  # the fit row of the ER table
    assert "s3-gen" in html and "Generated-data models vs their real-only twins" in html
    assert "0.050" in html  # s3-gen's ER on the sketch shift
    assert any(s.render is robustness_section for s in report_sections())
    empty = ReportContext(
        results=results[results["measure"] == "accuracy"], artifacts={}, output_dir=tmp_path
    )
    assert robustness_section(empty) is None


def test_tables_show_fits_signed_er_and_pairs_once_for_report_and_terminal(tmp_path):
    results, cfg = _zoo()
    table, lines = zoo_effective_robustness(results, cfg)
    er = er_table(table, lines)
    assert list(er.columns) == ["model", "kind", "world/rendition", "world/sketch"]
    cells = er.cells()
    assert cells[0][:2] == ["baseline", ""]
    assert cells[0][3] == "0.800·x -0.500, R²=1.000, n=4"
    by_model = {row[0]: row for row in cells[1:]}
    assert by_model["s3-gen"][1:] == ["generated", "+0.020", "+0.050"]
    assert by_model["s1"][1] == "baseline" and by_model["tex"][1] == ""
    pairs = pairs_table(er_pairs_table(table, models_config=cfg))
    sketch = next(r for r in pairs.cells() if r[0] == "world/sketch")
    assert sketch[1:3] == ["s3-gen", "s3"] and sketch[-1] == "+0.050"
    assert shipped_er_table(results).rows == []
    # the section shows exactly these tables
    ctx = ReportContext(
        results=results,
        artifacts={m: {"robustness": {"model_config": c}} for m, c in cfg.items()},
        output_dir=tmp_path,
    )
    html = robustness_section(ctx)
    assert er.to_html() in html and pairs.to_html() in html
