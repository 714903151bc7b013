"""``robustlens spurious`` on the tiny zoo, and the neural-PCA image grids it writes."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.config import parse_config
from robustlens.errors import ConfigError
from robustlens.lines.spurious.commands import spurious_config
from robustlens.lines.spurious.grids import render_component_grids
from robustlens.study import run_study


def _config_dict(tiny_store, tiny_world, tiny_zoo_dir, out) -> dict:
    world = {
        k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()
    }
    return {
        "store": str(tiny_store.root),
        "output": str(out),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": ["train", "val", "spurious"]}],
        "engine": {"num_workers": 0},
    }


@pytest.fixture(scope="module")
def study(tiny_store, tiny_world, tiny_zoo_dir, tmp_path_factory):
    """The spurious study, run once: the engine's arrays are then in the shared store."""
    out = tmp_path_factory.mktemp("spur-cli")
    cfg = spurious_config(parse_config(_config_dict(tiny_store, tiny_world, tiny_zoo_dir, out)))
    return cfg, run_study(cfg)


def test_spurious_config_sets_measures_and_the_world_mark_rate(
    tiny_store, tiny_world, tiny_zoo_dir, tmp_path
):
    d = _config_dict(tiny_store, tiny_world, tiny_zoo_dir, tmp_path)
    d["world"]["mark_rate"] = 0.6
    cfg = spurious_config(parse_config(d))
    assert cfg.measures == ["accuracy", "spurious"]
    assert cfg.measure_options["spurious"] == {"default_mark_rate": 0.6}
    # the config accepts options only for measures it runs
    d["measures"] = ["spurious"]
    d["measure_options"] = {"spurious": {"default_mark_rate": 0.5, "n_flag": 2}}
    cfg = spurious_config(parse_config(d))
    assert cfg.measure_options["spurious"] == {"default_mark_rate": 0.5, "n_flag": 2}


def test_cli_spurious_on_the_tiny_zoo(tiny_store, tiny_world, tiny_zoo_dir, tmp_path, study):
    out = tmp_path / "out"
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(_config_dict(tiny_store, tiny_world, tiny_zoo_dir, out)))
    res = CliRunner().invoke(app, ["spurious", str(p), "--n-boot", "100", "--max-classes", "2"])
    assert res.exit_code == 0, res.output
    for text in (
        "tiny-cnn",
        "tiny-resnet",
        "tiny-mixer",
        "Spearman",
        "spurious_score",
        "SpuFix on the most spurious model",
        "component grid(s)",
    ):
        assert text in res.output, text
    pngs = sorted((out / "spurious").glob("*.png"))
    assert len(pngs) == 2
    index = json.loads((out / "spurious" / "grids.json").read_text())
    assert sorted(e["file"] for e in index) == [q.name for q in pngs]
    assert len({e["model"] for e in index}) == 1
    img = np.asarray(Image.open(pngs[0]))
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 200
    assert (out / "artifacts" / "spurious" / "tiny-cnn.json").is_file()
    again = CliRunner().invoke(app, ["spurious", str(p), "--n-boot", "0", "--no-grids"])
    assert again.exit_code == 0, again.output
    assert "0 forward passes" in again.output


def test_render_component_grids_needs_a_config_and_a_known_model(
    tiny_store, tiny_world, tiny_zoo_dir, tmp_path, study
):
    class NoConfig:
        artifacts = None

    with pytest.raises(ConfigError, match="needs the study config"):
        render_component_grids(NoConfig())
    empty = parse_config(_config_dict(tiny_store, tiny_world, tiny_zoo_dir, tmp_path / "empty"))
    assert render_component_grids(empty) == []  # no spurious artifacts there yet
    cfg, result = study
    with pytest.raises(ConfigError, match="no spurious artifacts"):
        render_component_grids(result, cfg=cfg, model="nope")
    paths = render_component_grids(
        result, tmp_path / "grids", cfg=cfg, model="tiny-mixer", max_classes=1, n_top=3
    )
    assert [p.parent for p in paths] == [tmp_path / "grids" / "spurious"]
    assert paths[0].name.startswith("tiny-mixer__world_spurious__")
    entry = json.loads((tmp_path / "grids" / "spurious" / "grids.json").read_text())[0]
    assert entry["missing_datasets"] == [] and entry["model"] == "tiny-mixer"
    # from the config alone, the artifacts are read back from the output directory
    again = render_component_grids(cfg, tmp_path / "grids2", model="tiny-mixer", max_classes=1)
    assert [p.name for p in again] == [p.name for p in paths]
    # rendering again into the same folder replaces the earlier model's grids
    render_component_grids(result, tmp_path / "grids", cfg=cfg, model="tiny-cnn", max_classes=2)
    names = sorted(p.name for p in (tmp_path / "grids" / "spurious").glob("*.png"))
    assert len(names) == 2 and all(n.startswith("tiny-cnn__") for n in names)
