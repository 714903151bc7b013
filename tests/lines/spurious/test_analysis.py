"""Spurious analysis (score vs ground truth, SpuFix effect) and the report section."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from robustlens.analysis.correlation import correlate
from robustlens.errors import ValidationError
from robustlens.lines.spurious.analysis import (
    most_spurious_model,
    score_vs_ground_truth,
    spufix_effect,
    spurious_table,
)
from robustlens.lines.spurious.section import spurious_section
from robustlens.report import report_sections
from robustlens.report.context import ReportContext

COLUMNS = ["model", "dataset", "measure", "name", "value"]


def _results(models: dict[str, dict[str, float]], dataset: str = "world/spurious") -> pd.DataFrame:
    rows = []
    for model, vals in models.items():
        for name, value in vals.items():
            ds = "*" if name == "train_mark_rate" else dataset
            rows.append((model, ds, "spurious", name, value))
        rows.append((model, "world/val", "accuracy", "accuracy", 0.9))
    return pd.DataFrame(rows, columns=COLUMNS)


def _zoo(n: int = 6, seed: int = 0) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        rate = [0.0, 0.4, 0.8, 0.8, 0.95, 1.0][i % 6]
        score = float(np.clip(0.98 - 0.3 * rate + rng.normal(0, 0.05), 0, 1))
        out[f"m{i}"] = {
            "train_mark_rate": rate,
            "spurious_score": score,
            "spurious_reliance": 1 - score,
            "spurious_trigger_rate": float(rng.uniform()),
            "n_flagged": float(i % 3),
            "spufix_id_accuracy_before": 0.9,
            "spufix_id_accuracy_after": 0.9 - 0.01 * i,
            "spufix_spurious_trigger_before": 0.5,
            "spufix_spurious_trigger_after": 0.5 - 0.05 * i,
            "spufix_spurious_score_after": score + 0.01,
        }
    return out


def test_score_vs_ground_truth_is_scipy_spearman():
    zoo = _zoo()
    t = score_vs_ground_truth(_results(zoo), n_boot=200).set_index("metric")
    rates = [v["train_mark_rate"] for v in zoo.values()]
    for metric in ("spurious_score", "spurious_reliance", "spurious_trigger_rate"):
        ref = stats.spearmanr([v[metric] for v in zoo.values()], rates)
        assert t.loc[metric, "coefficient"] == pytest.approx(ref.statistic)
        # n = 6: the exact permutation p-value of correlate(), not scipy's t-approximation
        exact = correlate([v[metric] for v in zoo.values()], rates, n_boot=0).p_value
        assert t.loc[metric, "p_value"] == pytest.approx(exact)
        assert t.loc[metric, "n"] == 6
        assert t.loc[metric, "ci_low"] <= t.loc[metric, "ci_high"]
    assert t.loc["spurious_reliance", "coefficient"] == pytest.approx(
        -t.loc["spurious_score", "coefficient"]
    )


def test_models_without_ground_truth_are_left_out():
    zoo = _zoo(4)
    del zoo["m3"]["train_mark_rate"]
    t = score_vs_ground_truth(_results(zoo), n_boot=0).set_index("metric")
    assert t.loc["spurious_score", "n"] == 3
    zoo = _zoo(2)
    t = score_vs_ground_truth(_results(zoo), n_boot=0)
    assert t["n"].tolist() == [2, 2, 2] and t["coefficient"].isna().all()


def test_no_ground_truth_at_all_gives_an_empty_table():
    zoo = {m: {k: v for k, v in d.items() if k != "train_mark_rate"} for m, d in _zoo(4).items()}
    assert score_vs_ground_truth(_results(zoo)).empty


def test_values_are_averaged_over_spurious_datasets():
    a = _results({"m": {"spurious_score": 0.6}}, "s1")
    b = _results({"m": {"spurious_score": 0.8}}, "s2")
    assert spurious_table(pd.concat([a, b]))["spurious_score"].loc["m"] == pytest.approx(0.7)


def test_spufix_effect_table_and_most_spurious_model():
    zoo = _zoo()
    eff = spufix_effect(_results(zoo))
    scores = {m: v["spurious_score"] for m, v in zoo.items()}
    assert list(eff.index) == sorted(scores, key=scores.get)  # most spurious first
    assert eff.loc["m3", "id_acc_change"] == pytest.approx(-0.03)
    assert eff.loc["m3", "trigger_change"] == pytest.approx(-0.15)
    assert eff.loc["m0", "id_acc_change"] == 0.0
    assert most_spurious_model(_results(zoo)) == min(scores, key=scores.get)
    assert most_spurious_model(_results({})) is None


def test_accepts_a_study_result_and_rejects_other_inputs():
    class Result:
        def results(self):
            return _results(_zoo(3))

    assert list(spurious_table(Result()).index) == list(spurious_table(Result().results()).index)
    with pytest.raises(ValidationError, match="DataFrame"):
        spurious_table([1, 2])
    with pytest.raises(ValidationError, match="missing"):
        spurious_table(pd.DataFrame({"model": ["a"]}))


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_section_without_grids_says_so(tmp_path):
    ctx = ReportContext(_results(_zoo()), {}, tmp_path)
    html = spurious_section(ctx)
    assert html is not None
    assert "No neural-PCA image grids" in html and "robustlens spurious" in html
    assert "Spearman" in html and "SpuFix" in html
    assert html.count("data:image/png;base64,") == 1  # the scatter only
    assert any(s.title == "Spurious features" for s in report_sections())


def test_section_embeds_the_grids_it_finds(tmp_path):
    folder = tmp_path / "spurious"
    folder.mkdir()
    png = _png_bytes()
    (folder / "m0__world_spurious__0002.png").write_bytes(png)
    (folder / "grids.json").write_text(
        json.dumps(
            [
                {
                    "file": "m0__world_spurious__0002.png",
                    "model": "m0",
                    "dataset": "world/spurious",
                    "class_index": 2,
                    "class_name": "triangle",
                    "ap": 0.5,
                    "flagged": [1],
                }
            ]
        )
    )
    html = spurious_section(ReportContext(_results(_zoo()), {}, tmp_path))
    assert base64.b64encode(png).decode() in html
    assert "class triangle (2)" in html and "flagged components: c1" in html
    assert "No neural-PCA image grids" not in html


def test_section_is_absent_without_spurious_results(tmp_path):
    df = pd.DataFrame([("m", "world/val", "accuracy", "accuracy", 0.9)], columns=COLUMNS)
    assert spurious_section(ReportContext(df, {}, tmp_path)) is None


def test_spufix_effect_has_the_held_out_before_and_after():
    vals = {
        "spurious_score": 0.8,
        "n_flagged": 2.0,
        "spufix_spurious_score_before": 0.75,
        "spufix_spurious_score_after": 0.9,
        "spufix_n_evaluation": 12.0,
    }
    eff = spufix_effect(_results({"m": vals}))
    assert eff.loc["m", ["score_before", "score_after", "n_evaluation"]].tolist() == [
        0.75,
        0.9,
        12.0,
    ]
    # results without the held-out numbers (an older run) leave them empty
    old = spufix_effect(_results({"m": {"spurious_score": 0.8}}))
    assert np.isnan(old.loc["m", "score_before"]) and np.isnan(old.loc["m", "n_evaluation"])


def test_section_shows_the_recorded_protocol(tmp_path):
    protocol = {
        "name": "spurious_features_everywhere",
        "paper": "Neuhaus et al., ICCV 2023",
        "parameters": {"selection_fraction": 0.5, "split_seed": 0, "max_train_per_class": 500},
    }
    artifacts = {m: {"spurious": {"protocol": protocol}} for m in ("m0", "m1")}
    html = spurious_section(ReportContext(_results(_zoo(2)), artifacts, tmp_path))
    assert html is not None
    assert "spurious_features_everywhere" in html and "Neuhaus et al., ICCV 2023" in html
    assert "selection_fraction = 0.5, split_seed = 0, max_train_per_class = 500" in html
    assert "(models: m0, m1)" in html
    assert "held-out" in html
