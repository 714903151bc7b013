"""Tests of ``robustlens biases`` and the seed-002 report sections."""

from __future__ import annotations

import dataclasses
import json
import re

import matplotlib.axes
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.lines.biases.section import (
    render_bias_heatmap,
    render_critical_band,
    render_shape_bias,
    render_spectral,
)
from robustlens.report import report_sections
from robustlens.report.context import ReportContext
from robustlens.store import Store
from robustlens.study import load_artifacts

OPTS = {
    "cutoffs": [0.2, 0.4],
    "bias_cutoffs": [0.2, 0.4],
    "bands": [3, 4, 5],
    "sigmas": [0.04, 0.16],
    "pgd_steps": 2,
}


@pytest.fixture(scope="module")
def cli_run(tiny_store, tiny_world, tiny_zoo_dir, tmp_path_factory):
    """Run ``robustlens biases CONFIG`` once on the tiny world and zoo."""
    out = tmp_path_factory.mktemp("biases_cli")
    world = dataclasses.asdict(tiny_world.config)
    world = {k: list(v) if isinstance(v, tuple) else v for k, v in world.items()}
    cfg = {
        "store": str(tiny_store.root),
        "output": str(out / "report"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": "all"}],
        "measures": ["accuracy"],
        "measure_options": {"biases": OPTS},
    }
    path = out / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(
        app,
        ["biases", str(path), "--n-boot", "50", "--csv", str(out / "csv")],
        env={"COLUMNS": "250"},
    )
    return res, out


def test_biases_command_prints_the_three_tables(cli_run):
    res, out = cli_run
    assert res.exit_code == 0, res.output
    text = res.output
    for title in (
        "biases (seed 002)",
        "generalization dimensions (seed 002)",
        "spearman correlation, bias x dimension (coefficient, p, n)",
    ):
        assert title in text
    for model in ("tiny-cnn", "tiny-resnet", "tiny-mixer"):
        assert model in text
    assert "texrand" in text and "shape bias: texture-randomized" in text
    # every matrix cell states its n: 7 biases (spectral bias included) x 4 dimensions
    assert len(re.findall(r"\(p=[^,]+, n=\d\)", text)) == 28
    # CSVs carry the same numbers the tables print
    matrix = pd.read_csv(out / "csv" / "bias_generalization.csv")
    assert len(matrix) == 28 and set(matrix["n"]) <= {0, 1, 2, 3}
    ns = matrix[matrix["p_value"] >= 0.05]
    assert (ns["shown"] == 0).all()
    gen = pd.read_csv(out / "csv" / "generalization.csv", index_col=0)
    assert list(gen.columns) == ["in_distribution", "robustness", "concepts", "adversarial"]
    assert gen.notna().all().all()


def test_biases_command_names_the_missing_dimension_components(cli_run):
    """Seed 002's dimensions are computed from the components present; the terminal caption
    and the CSV name the missing ones (the tiny world has no ReaL labels: in_distribution
    always lacks ``real``)."""
    res, out = cli_run
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())  # the caption wraps at the table's width
    assert "Missing:" in flat
    missing = pd.read_csv(out / "csv" / "generalization_missing.csv", keep_default_na=False)
    assert list(missing.columns) == ["dimension", "component", "dataset", "model"]
    assert len(missing) > 0
    assert ("in_distribution", "real", "ImageNet-ReaL", "") in set(
        missing.itertuples(index=False, name=None)
    )
    for r in missing[missing["model"] == ""].itertuples():
        assert f"{r.component} ({r.dataset})" in flat
    # no bias is a component of a dimension
    assert not set(missing["component"]) & {"shape_fraction", "shape_bias", "cue_conflict"}


def test_biases_command_bad_config_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("measures: [accuracy]\nwhat: 1\n")
    res = CliRunner().invoke(app, ["biases", str(bad)])
    assert res.exit_code == 2
    assert "unknown key" in res.output


def _ctx(cli_run, tiny_zoo_dir) -> ReportContext:
    _, out = cli_run
    cfg = yaml.safe_load((out / "study.yaml").read_text())
    results = Store(cfg["store"]).results()
    models = {
        p.stem: {"member": json.loads(p.read_text())["member"]} for p in tiny_zoo_dir.glob("*.json")
    }
    return ReportContext(results, load_artifacts(out / "report"), out / "report", {}, models)


def test_report_sections_render_from_the_study_output(cli_run, tiny_zoo_dir):
    ctx = _ctx(cli_run, tiny_zoo_dir)
    titles = [s.title for s in report_sections()]
    for t in ("Spectral bias", "Critical band", "Shape bias", "Biases vs generalization"):
        assert t in titles
    for fn in (render_spectral, render_critical_band, render_shape_bias):
        html = fn(ctx)
        assert html is not None and html.count("<img") >= 1, fn.__name__
    assert "texture-randomized" in render_shape_bias(ctx)
    heat = render_bias_heatmap(ctx, n_boot=0)
    assert heat.count("<img") == 1 and "in_distribution" in heat
    # the dimensions table's caption names the missing components (no ReaL in the world)
    assert "Missing: " in heat and "real (ImageNet-ReaL)" in heat
    assert "shape fraction" not in heat


def test_sections_return_none_without_bias_results(tmp_path):
    ctx = ReportContext(
        pd.DataFrame(
            [("m", "world/val", "accuracy", "accuracy", 0.5)],
            columns=["model", "dataset", "measure", "name", "value"],
        ),
        {},
        tmp_path,
    )
    for fn in (render_spectral, render_critical_band, render_shape_bias, render_bias_heatmap):
        assert fn(ctx) is None


def test_critical_band_section_labels_failed_fits(tmp_path):
    ok = {
        "ok": True,
        "reason": None,
        "bands_cpi": [1, 2, 4, 8, 16],
        "sensitivities": [0, 4.1, 5.1, 4.1, 0],
        "peak_sensitivity": 5.7,
        "mu_log2": 2.0,
        "width_octaves": 1.0,
        "bandwidth_octaves": 2.35,
        "centre_cpi": 4.0,
        "frequency_unit": "cycles per image (32 px)",
    }
    failed = {
        "ok": False,
        "reason": "only 1 band(s) reach the halfway criterion 0.5",
        "bands_cpi": [1, 2, 4, 8, 16],
        "sensitivities": [0, 0, 4.0, 0, 0],
        "peak_sensitivity": None,
        "mu_log2": None,
        "width_octaves": None,
        "bandwidth_octaves": None,
        "centre_cpi": None,
    }
    arts = {
        "good": {"biases": {"critical_band": {"val": ok}}},
        "bad": {"biases": {"critical_band": {"val": failed}}},
    }
    ctx = ReportContext(
        pd.DataFrame(columns=["model", "dataset", "measure", "name", "value"]), arts, tmp_path
    )
    html = render_critical_band(ctx)
    assert "failed: only 1 band(s) reach the halfway criterion 0.5" in html
    assert "<td>2.35</td><td>4</td><td>5.70</td><td>ok</td>" in html


def test_heatmap_annotates_coefficient_and_p_and_shows_zero(tmp_path, monkeypatch):
    """The coloured value is ``shown`` (0 where p >= alpha); the text keeps coefficient and p."""
    rows = []
    for i, order in enumerate([3, 7, 0, 5, 1, 6, 2, 4]):
        m = f"m{i}"
        rows += [
            (m, "world/val", "accuracy", "accuracy", 0.5 + 0.05 * i),
            (m, "world/cue_conflict", "biases", "shape_bias", 0.1 * i),
            (m, "world/val", "biases", "low_freq_bias", 0.1 * order),
        ]
    ctx = ReportContext(
        pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"]), {}, tmp_path
    )
    captured = {}
    texts = []
    orig_imshow, orig_text = matplotlib.axes.Axes.imshow, matplotlib.axes.Axes.text

    def imshow(self, data, *a, **k):
        captured["data"] = np.asarray(data)
        return orig_imshow(self, data, *a, **k)

    def text(self, x, y, s, *a, **k):
        texts.append((x, y, s))
        return orig_text(self, x, y, s, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", imshow)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", text)
    assert render_bias_heatmap(ctx, n_boot=0) is not None
    data = captured["data"]  # rows: BIASES, columns: DIMENSIONS
    assert data[0, 0] == pytest.approx(1.0)  # shape_bias x in_distribution: significant
    assert data[1, 0] == 0.0  # low_freq_bias x in_distribution: p >= 0.05, shown as 0
    low = next(s for x, y, s in texts if (x, y) == (0, 1))
    assert low.startswith("0.") or low.startswith("-0.")  # the true coefficient is written
    assert "p=" in low and not low.startswith("0.00")
