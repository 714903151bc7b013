"""The HTML report: built from a real tiny study and from a hand-made results table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import robustlens.measure as measure_mod
from robustlens.config import parse_config
from robustlens.errors import RobustlensError
from robustlens.formatting import duration
from robustlens.measure import Section, available_measures
from robustlens.report import build_report_context, read_per_sample, render_report, write_report
from robustlens.report.context import ReportContext
from robustlens.report.overview import predictor_columns, what_predicts_html
from robustlens.report.page import infer_datasets, model_tables
from robustlens.study import run_study

# measures that need no view beyond the clean one (invariance and biases run many views,
# PGD included, and have their own tests); the slow test runs every one that is registered
FAST = ("accuracy", "label_free", "clustering", "spurious", "robustness")
CORE_PLOTS = 4  # accuracy by role, severity curves, correlation heatmap, reliability

_URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_B64_PLOT = re.compile(r"""<img class="plot"[^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{200,}""")


def _world_dict(world) -> dict:
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(world.config).items()
    }


def _study(world, zoo_dir, root: Path, measures: list[str]):
    have = set(available_measures())
    run = [m for m in measures if m in have]
    data = {
        "name": "tiny report",
        "store": str(root / "store"),  # a fresh store: clean features are kept for clustering
        "output": str(root / "out"),
        "world": _world_dict(world),
        "models": [{"source": "zoo", "path": str(zoo_dir)}],
        "datasets": [{"world": "all"}],
        "measures": run,
        "measure_options": {"clustering": {"max_samples": 40}} if "clustering" in run else {},
        "engine": {"num_workers": 0},
    }
    cfg_path = root / "study.yaml"
    cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg_path, run_study(parse_config(data))


@pytest.fixture(scope="module")
def study(tiny_world, tiny_zoo_dir, tmp_path_factory):
    """The 3 tiny models on every world split, accuracy only (a few seconds)."""
    return _study(tiny_world, tiny_zoo_dir, tmp_path_factory.mktemp("report-study"), ["accuracy"])


@pytest.fixture(scope="module")
def report(study):
    _, result = study
    path = write_report(result, strict=True)  # strict: a failing section fails the test
    return path, path.read_text(encoding="utf-8")


def _table_models(page: str, table_id: str) -> list[str]:
    m = re.search(rf"<table class='sortable results' id='{table_id}'>(.*?)</table>", page, re.S)
    assert m, f"table {table_id} missing"
    return re.findall(r"<tr><th class='sticky' data-v='([^']*)'>", m.group(1))


def test_report_is_self_contained_with_every_model_and_plots(study, report):
    _, result = study
    path, page = report
    assert path == Path(result.output) / "report.html" and path.stat().st_size > 20_000
    assert not _URL.findall(page), "the report must not load anything from the network"
    assert "<script src" not in page and "<link" not in page
    assert sorted(_table_models(page, "t-models")) == sorted(result.models)
    assert "section-error" not in page.replace(".section-error", "")
    assert len(_B64_PLOT.findall(page)) >= CORE_PLOTS
    for title in ("Per-model results", "Generalization overview", "What predicts robustness here"):
        assert f"<h2>{title}</h2>" in page
    # study summary: counters of this run
    assert f"{result.forward_passes:,}</b><span>forward passes" in page
    assert "stage timings" in page
    engine = duration(result.stage_seconds["engine"])
    assert f"engine {engine} (forward passes {duration(result.forward_seconds)})" in page


def test_model_table_collapses_corruptions_and_keeps_full_table(study, report):
    _, result = study
    _, page = report
    ctx = build_report_context(result)
    collapsed, full = model_tables(ctx)
    corrupt = [c for c in full.columns if "/corrupt/" in c]
    assert corrupt and not any("/corrupt/" in c for c in collapsed.columns)
    mean_col = "world/corrupt (mean)|accuracy.accuracy"
    expected = full[[c for c in corrupt if c.endswith("|accuracy.accuracy")]].mean(axis=1)
    np.testing.assert_allclose(collapsed[mean_col], expected)
    assert sorted(_table_models(page, "t-full")) == sorted(result.models)
    assert "data-col='world/corrupt/contrast/3|accuracy.accuracy'" in page


def test_report_rerenders_from_the_output_dir_and_cli(study, report, tmp_path):
    from typer.testing import CliRunner

    from robustlens.cli import app

    cfg_path, result = study
    again = write_report(result.output, tmp_path / "again.html", store=result.store.root)
    assert sorted(_table_models(again.read_text(), "t-models")) == sorted(result.models)
    out = tmp_path / "cli.html"
    res = CliRunner().invoke(app, ["report", str(cfg_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "robustlens report: tiny report" in page  # the config's name
    assert sorted(_table_models(page, "t-models")) == sorted(result.models)
    res = CliRunner().invoke(app, ["export", str(cfg_path), "--out", str(tmp_path / "exp")])
    assert res.exit_code == 0, res.output
    wide = pd.read_parquet(tmp_path / "exp" / "results_wide.parquet")
    assert sorted(wide["model"]) == sorted(result.models)


def test_report_writes_exports_and_per_sample_is_readable(study, report):
    _, result = study
    out = Path(result.output)
    wide = pd.read_csv(out / "results_wide.csv")
    assert sorted(wide["model"]) == sorted(result.models)
    assert "world/val|accuracy.accuracy" in wide.columns
    ps = read_per_sample(out, result.models[0])
    assert {"model", "dataset", "sample_id", "prediction", "confidence", "correct"} <= set(
        ps.columns
    )
    val = ps[ps["dataset"] == "world/val"]
    acc = result.store.results(
        models=result.models[:1], datasets=["world/val"], measures=["accuracy"]
    )
    acc = acc[acc["name"] == "accuracy"]["value"].item()
    assert val["correct"].mean() == pytest.approx(acc)  # per-sample rows agree with the table


@pytest.mark.slow
def test_report_with_every_fast_measure(tiny_world, tiny_zoo_dir, tmp_path):
    """Every registered measure that needs only the clean view, and every section renders."""
    _, result = _study(tiny_world, tiny_zoo_dir, tmp_path, list(FAST))
    page = write_report(result, strict=True).read_text()  # strict: a failing section fails
    assert "section-error" not in page.replace(".section-error", "")
    assert not _URL.findall(page)
    assert sorted(_table_models(page, "t-models")) == sorted(result.models)
    measures = set(result.results()["measure"])
    assert measures == {m for m in FAST if m in set(available_measures())}
    label_free = measures & {"label_free", "clustering", "spurious"}
    # core plots, plus the scatter of the top label-free predictors when there are some
    assert len(_B64_PLOT.findall(page)) >= CORE_PLOTS + bool(label_free)
    if label_free:
        assert "Only n = 3 models" in page  # the summary says 3 models are too few


def test_rerender_without_a_store_says_how_to_fix(tmp_path):
    with pytest.raises(RobustlensError, match="pass store="):
        write_report(tmp_path)


# ----------------------------------------------------------------------------- hand-made data
def fake_context(n_models: int, seed: int = 0, tmp: Path | None = None) -> ReportContext:
    """Results where ``invariance.ei_rotation`` tracks OOD accuracy and the rest is noise."""
    rng = np.random.default_rng(seed)
    models = [f"m{i:02d}" for i in range(n_models)]
    ds = ["world/val", "world/v2", "world/sketch", "world/rendition"]
    ds += [f"world/corrupt/{c}/{s}" for c in ("noise", "blur") for s in (1, 3)]
    info = infer_datasets(ds)
    rows = []
    for m in models:
        q = rng.uniform(0.3, 0.95)
        for d in ds:
            sev = info[d]["tags"].get("severity", 0)
            shift = 0.3 if info[d]["role"] in ("sketch", "rendition") else 0.0
            acc = float(np.clip(q - 0.08 * sev - shift + rng.normal(0, 0.02), 0, 1))
            rows += [(m, d, "accuracy", "accuracy", acc), (m, d, "accuracy", "n", 50.0)]
        rows += [
            (m, "world/val", "invariance", "ei_rotation", 0.8 * q + rng.normal(0, 0.01)),
            (m, "world/val", "clustering", "silhouette", rng.uniform()),
            (m, "world/sketch", "invariance", "ei_rotation", rng.uniform()),
        ]
    df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
    return ReportContext(
        results=df,
        artifacts={},
        output_dir=tmp or Path("/nonexistent"),
        datasets=info,
        models={m: {} for m in models},
        study={"name": "fake"},
    )


def test_predictors_are_measures_on_id_data_only():
    ctx = fake_context(6)
    assert predictor_columns(ctx, label_free_only=True) == [
        "world/val|clustering.silhouette",
        "world/val|invariance.ei_rotation",
    ]
    assert predictor_columns(ctx)[0] == "world/val|accuracy.accuracy"  # reference row first


def test_summary_names_the_predictor_with_its_statistics():
    page = what_predicts_html(fake_context(14))
    first = re.search(r"<li>(.*?)</li>", page).group(1)
    assert first.startswith("<b>val|invariance.ei_rotation</b>")  # "world/" is dropped
    rho = float(re.search(r"rho = ([+-][0-9.]+)", first).group(1))
    assert rho > 0.9 and "n = 14 models" in first and "p &lt; 0.001" in first
    assert "significant at alpha" in first and "not significant" not in first
    assert "Nothing is significant" not in page
    assert len(_B64_PLOT.findall(page)) == 1


def test_summary_says_when_models_are_too_few():
    page = what_predicts_html(fake_context(3))
    assert "Only n = 3 models" in page
    assert "Nothing is significant" in page  # n <= 4 can never reach p < 0.05 (exact test)


def test_summary_without_label_free_measures_says_what_to_add():
    ctx = fake_context(6)
    ctx.results = ctx.results[ctx.results["measure"] == "accuracy"]
    assert "no label-free measures" in what_predicts_html(ctx)


def test_failing_section_shows_an_error_box_and_strict_raises(study, monkeypatch, tmp_path):
    _, result = study
    measure_mod.lines()  # discover the installed lines before taking a copy of the registry
    monkeypatch.setattr(measure_mod, "_LINES", dict(measure_mod._LINES))

    def broken(ctx):
        raise ValueError("boom from a section")

    measure_mod.register_line(
        measure_mod.Line(
            "broken",
            "a line whose section fails",
            sections=(Section("Broken on purpose", broken, 5),),
        )
    )

    page, errors = render_report(build_report_context(result))
    assert [e.title for e in errors] == ["Broken on purpose"]
    assert "data-section-error='Broken on purpose'" in page and "boom from a section" in page
    assert "<h2>Generalization overview</h2>" in page  # the other sections still render
    with pytest.raises(RobustlensError, match="Broken on purpose"):
        write_report(result, tmp_path / "r.html", strict=True, export=False)
    assert (tmp_path / "r.html").exists()  # written before raising


def test_artifacts_are_read_one_model_at_a_time(tmp_path):
    from robustlens.report.page import LazyArtifacts
    from robustlens.study import save_artifacts

    models = [f"zoo/m{i}" for i in range(6)]  # a "/" in a name becomes "_" in the file name
    for i, m in enumerate(models):
        save_artifacts(tmp_path, m, "clustering", {"projection": [i, i + 1]})
        save_artifacts(tmp_path, m, "spurious", {"sets": i})
    save_artifacts(tmp_path, "not-in-study", "clustering", {"projection": []})
    arts = LazyArtifacts(tmp_path, models, keep=2)
    assert list(arts) == models and len(arts) == 6 and "not-in-study" not in arts
    assert arts["zoo/m3"] == {"clustering": {"projection": [3, 4]}, "spurious": {"sets": 3}}
    assert [a["spurious"]["sets"] for _, a in arts.items()] == list(range(6))
    assert len(arts._cache) == 2  # only the last models looked up stay in memory
    with pytest.raises(KeyError):
        arts["zoo/nope"]


def test_the_study_saves_its_plan_and_the_report_reads_only_that(study, report, tmp_path):
    import json
    import shutil

    from robustlens.study import read_plan

    cfg_path, result = study
    plan = read_plan(result.output)
    assert plan["name"] == "tiny report" and plan["measures"] == ["accuracy"]
    assert list(plan["models"]) == result.models
    assert all(c["source"] == "zoo" and c["member"]["name"] == m for m, c in plan["models"].items())
    assert plan["datasets"]["world/corrupt/contrast/3"] == {
        "role": "corrupt",
        "tags": {"corruption": "contrast", "severity": 3, "image_size": 32},
        "class_space": "4 classes",
    }
    # an output directory alone (no config, no earlier report) re-renders from the plan; a
    # role changed in the plan is the role the report shows: nothing is resolved again
    out = tmp_path / "out"
    shutil.copytree(result.output, out)
    (out / "study_summary.json").unlink(missing_ok=True)
    plan["datasets"]["world/sketch"]["role"] = "natural"
    (out / "plan.json").write_text(json.dumps(plan))
    ctx = build_report_context(out)
    assert ctx.role("world/sketch") == "natural" and ctx.study["name"] == "tiny report"
    assert ctx.models == plan["models"]
    # a config whose zoo is gone still names the study, its store and its measures
    data = yaml.safe_load(cfg_path.read_text())
    data["models"] = [{"source": "zoo", "path": str(tmp_path / "gone")}]
    ctx = build_report_context(out, config=parse_config(data))
    assert sorted(ctx.models) == sorted(result.models)
