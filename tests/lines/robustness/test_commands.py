"""``robustlens robustness`` and ``robustlens generate`` on the tiny world and zoo."""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from robustlens.cli import app


def _text(res) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def _write_config(tmp_path, tiny_store, tiny_world, tiny_zoo_dir):
    world = {
        k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()
    }
    cfg = {
        "store": str(tiny_store.root),
        "output": str(tmp_path / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": ["val", "v2", "sketch", "rendition"]}],
        "engine": {"num_workers": 0},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_robustness_prints_fits_and_er(tiny_store, tiny_world, tiny_zoo_dir, tmp_path):
    cfg = _write_config(tmp_path, tiny_store, tiny_world, tiny_zoo_dir)
    csv = tmp_path / "er.csv"
    res = CliRunner().invoke(app, ["robustness", str(cfg), "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    assert "baselines (logit axes" in _text(res) and "effective robustness" in _text(res)
    for shift in ("world/v2", "world/sketch", "world/rendition"):
        assert shift in _text(res)
    table = pd.read_csv(csv)
    assert set(table["model"]) == {"tiny-cnn", "tiny-mixer", "tiny-resnet"}
    # standard = augment none/standard and no generated data: the texrand resnet is not
    assert set(table.loc[table["in_baseline"], "model"]) == {"tiny-cnn", "tiny-mixer"}
    # with two baseline models the line passes through both: their ER is 0
    assert table.loc[table["in_baseline"], "er"].abs().max() < 1e-6

    res = CliRunner().invoke(
        app,
        [
            "robustness",
            str(cfg),
            "--transform",
            "probit",
            "--baseline-models",
            "tiny-cnn,tiny-resnet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "baselines (probit axes" in _text(res)


def test_cli_robustness_bad_baseline_model(tiny_store, tiny_world, tiny_zoo_dir, tmp_path):
    cfg = _write_config(tmp_path, tiny_store, tiny_world, tiny_zoo_dir)
    res = CliRunner().invoke(app, ["robustness", str(cfg), "--baseline-models", "ghost,tiny-cnn"])
    assert res.exit_code == 2
    assert "ghost" in _text(res)


def test_cli_generate_trains_once_then_reuses(tiny_store, tiny_world, tiny_zoo_dir, tmp_path):
    pytest.importorskip("diffusers", reason="generation needs diffusers")
    cfg = _write_config(tmp_path, tiny_store, tiny_world, tiny_zoo_dir)
    out = tmp_path / "gen"
    args = [
        "generate",
        "-c",
        str(cfg),
        "--out",
        str(out),
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--n-per-class",
        "1",
        "--sample-steps",
        "1",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "training the world generator (1 steps)" in _text(res)
    assert sorted(p.parent.name for p in out.rglob("*.png")) == sorted(tiny_world.classes)
    meta = json.loads((tmp_path / "gen-generator" / "generator.json").read_text())
    assert meta["world"] == tiny_world.fingerprint()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "reusing the world generator" in _text(res)


def test_cli_generate_stable_diffusion_errors(tmp_path):
    res = CliRunner().invoke(app, ["generate", "--stable-diffusion", str(tmp_path / "sd")])
    assert res.exit_code == 2 and "--classes-file" in _text(res)
    classes = tmp_path / "classes.txt"
    classes.write_text("tench\n")
    res = CliRunner().invoke(
        app,
        [
            "generate",
            "--stable-diffusion",
            str(tmp_path / "sd"),
            "--classes-file",
            str(classes),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "does not exist" in _text(res)
