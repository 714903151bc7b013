"""``robustlens invariance`` and ``robustlens clustering`` on the tiny zoo (CliRunner)."""

from __future__ import annotations

import re
from dataclasses import asdict

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.lines.clustering.section import render_clustering
from robustlens.lines.invariance.section import render_invariance
from robustlens.report.page import build_report_context

SPLITS = ["val", "corrupt/contrast/3", "sketch", "rendition"]
ENV = {"COLUMNS": "200"}  # rich wraps tables to the terminal width


@pytest.fixture(scope="module")
def config_path(tiny_world, tiny_zoo_dir, tmp_path_factory):
    """A study YAML on a fresh store (so the first run's forward passes are all counted)."""
    root = tmp_path_factory.mktemp("inv_cli")
    world = {
        k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()
    }
    data = {
        "store": str(root / "store"),
        "output": str(root / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": SPLITS}],
        "engine": {"num_workers": 0},
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _forward_passes(output: str) -> int:
    """The count on the run's summary line ("N forward passes (...)" or "no forward pass")."""
    m = re.search(r"(\d+) forward passes \(|(no forward pass)", output)
    assert m, output
    return 0 if m.group(2) else int(m.group(1))


@pytest.fixture(scope="module")
def clustering_run(config_path):
    # clustering first: it stores the clean view with its features, which invariance reuses
    return CliRunner().invoke(app, ["clustering", str(config_path), "--n-boot", "50"], env=ENV)


def test_cli_clustering_prints_indicators_and_correlations(clustering_run, tiny_world):
    res = clustering_run
    assert res.exit_code == 0, res.output
    n_val = len(tiny_world.dataset("val"))
    n_images = sum(len(tiny_world.dataset(s)) for s in SPLITS)
    assert _forward_passes(res.output) == 3 * n_images  # clean view only, 3 models
    for text in (
        "clustering indicators",
        "silhouette",
        "Davies-Bouldin",
        "NMI",
        "tiny-cnn",
        "tiny-resnet",
        "tiny-mixer",
        "acc corrupt",
        "spearman correlation",
        "strongest label-free indicator",
    ):
        assert text in res.output, text
    assert f"│ {n_val} │" in res.output  # n_samples: every val image clustered


@pytest.fixture(scope="module")
def invariance_run(clustering_run, config_path, tmp_path_factory):
    assert clustering_run.exit_code == 0, clustering_run.output
    csv = tmp_path_factory.mktemp("inv_tables")
    args = ["invariance", str(config_path), "--n-boot", "50", "--csv", str(csv)]
    return CliRunner().invoke(app, args, env=ENV), csv


def test_cli_invariance_prints_both_tables_and_the_mae(invariance_run, tiny_world):
    res, csv = invariance_run
    assert res.exit_code == 0, res.output
    n_images = sum(len(tiny_world.dataset(s)) for s in SPLITS)
    # the clean view is cached: only rot90, rot180, rot270 and gray run, for 3 models
    assert _forward_passes(res.output) == 3 * n_images * 4
    for text in (
        "model-centric",
        "corrupt (mean)",
        "sketch",
        "rendition",
        "EI rotation",
        "EI grayscale",
        "ATC (max conf)",
        "DoC",
        "dataset-centric",
        "Spearman",
        "leave-one-model-out MAE",
        "lowest MAE",
    ):
        assert text in res.output, text
    mc = pd.read_csv(csv / "model_centric.csv")
    assert {"dataset", "predictor", "method", "coefficient", "p_value", "ci_low"} <= set(mc)
    assert set(mc["method"]) == {"spearman", "pearson"}
    mae = pd.read_csv(csv / "ood_mae.csv")
    assert mae["mae"].is_monotonic_increasing


def test_cli_invariance_second_run_is_answered_from_the_store(invariance_run, config_path):
    assert invariance_run[0].exit_code == 0
    args = ["invariance", str(config_path), "--n-boot", "0", "--model", "tiny-cnn"]
    again = CliRunner().invoke(app, args, env=ENV)
    assert again.exit_code == 0, again.output
    assert _forward_passes(again.output) == 0
    assert "dataset-centric: tiny-cnn" in again.output


def test_cli_invariance_unknown_model_is_an_error(invariance_run, config_path):
    args = ["invariance", str(config_path), "--n-boot", "0", "--model", "nope"]
    bad = CliRunner().invoke(app, args, env=ENV)
    assert bad.exit_code == 2 and "--model 'nope' is not in the study" in bad.output


def test_report_sections_render_from_the_cli_output(invariance_run, config_path):
    assert invariance_run[0].exit_code == 0
    cfg = yaml.safe_load(config_path.read_text())
    ctx = build_report_context(cfg["output"], store=cfg["store"])
    inv = render_invariance(ctx)
    assert inv is not None
    assert inv.count("<img") == 2  # EI distributions (per-sample parquet) and the scatter
    for text in ("EI distributions on val", "Model-centric correlation", "Lowest MAE"):
        assert text in inv, text
    cl = render_clustering(ctx)
    assert cl is not None and cl.count("<img") == 2  # indicator scatter and PCA projection
    assert "Strongest label-free indicator" in cl
