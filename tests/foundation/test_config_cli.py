import pytest
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.config import load_config, parse_config
from robustlens.errors import ConfigError


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="datasetz: unknown key"):
        parse_config({"datasetz": []})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"engine\.batch_size"):
        parse_config({"engine": {"batch_size": "big"}})


def test_nested_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"world\.sed: unknown key"):
        parse_config({"world": {"sed": 1}})


def test_dataset_entry_needs_one_kind():
    with pytest.raises(ConfigError, match="exactly one of 'world' or 'layout'"):
        parse_config({"datasets": [{"name": "x"}]})


def test_yaml_paths_resolve_relative_to_the_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("store: st\nmodels: [{source: zoo, path: z}]\n")
    cfg = load_config(p)
    assert cfg.store == str(tmp_path / "st")
    assert cfg.models[0].path == str(tmp_path / "z")


def test_cli_help_lists_commands():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("demo", "eval", "study", "zoo", "world"):
        assert cmd in res.output


def test_cli_reports_config_errors_cleanly(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("modelz: []\n")
    res = CliRunner().invoke(app, ["eval", "--config", str(p)])
    assert res.exit_code == 2
    assert "modelz: unknown key" in res.output


def test_cli_eval_on_tiny_zoo(tmp_path, tiny_world, tiny_zoo_dir):
    from dataclasses import asdict

    import yaml

    world = {
        k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()
    }
    cfg = {
        "store": str(tmp_path / "store"),
        "output": str(tmp_path / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": ["val", "sketch"]}],
        "measures": ["accuracy"],
    }
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["eval", "--config", str(p)])
    assert res.exit_code == 0, res.output
    assert "tiny-cnn" in res.output and "forward passes" in res.output
    again = CliRunner().invoke(app, ["eval", "--config", str(p)])
    assert "0 forward passes" in again.output
