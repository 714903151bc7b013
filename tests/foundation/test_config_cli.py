import re

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
    # the summary is one line however long (a log is grepped line by line)
    summary = [line for line in res.output.splitlines() if "datasets in" in line]
    assert len(summary) == 1 and summary[0].endswith("views included)"), res.output
    # then how much of the engine's time the models took: the rest is the tool's own cost
    share = re.search(
        r"forward passes took ([\d.]+)s of the engine's ([\d.]+)s; measures ([\d.]+)s",
        res.output,
    )
    assert share and float(share[1]) <= float(share[2]), res.output
    again = CliRunner().invoke(app, ["eval", "--config", str(p)])
    assert "no forward pass" in again.output and "forward passes took" not in again.output


class _ResultsOnly:
    """Stands in for the store: print_results only reads results()."""

    def __init__(self, df):
        self.df = df

    def results(self, models, measures):
        return self.df


def _accuracy_rows():
    import pandas as pd

    # Wider than rich's default 80 columns once every dataset is shown.
    shifts = ["val", "v2", "cue_conflict", "sketch", "rendition", "spurious", "adversarial"]
    datasets = [f"world/{s}" for s in shifts] + ["world/corrupt/fog/1"]
    rows = [
        {"model": m, "dataset": d, "measure": "accuracy", "name": "accuracy", "value": v}
        for m, base in (("resnet16-standard-mark0.4", 0.9), ("cnn8", 0.5))
        for d, v in zip(datasets, [base] * len(shifts) + [base - 0.3], strict=True)
    ]
    return pd.DataFrame(rows), datasets


def test_results_table_in_a_log_keeps_names_and_every_column(capsys):
    from robustlens.runner import print_results

    df, datasets = _accuracy_rows()
    print_results(_ResultsOnly(df), ["resnet16-standard-mark0.4", "cnn8"], datasets)
    out = capsys.readouterr().out
    assert "resnet16-standard-mark0.4" in out
    for header in ("val", "v2", "cue_conflict", "adversarial", "corrupt (mean)"):
        assert header in out
    assert "0.600" in out  # corrupt mean of the first model is its one corrupt value
    assert "…" not in out


def test_results_table_in_a_narrow_terminal_drops_columns_not_names(monkeypatch, capsys):
    import functools

    import robustlens.console as output
    from robustlens.runner import print_results

    narrow = functools.partial(output.Console, force_terminal=True, width=60, no_color=True)
    monkeypatch.setattr(output, "Console", narrow)
    df, datasets = _accuracy_rows()
    print_results(_ResultsOnly(df), ["resnet16-standard-mark0.4", "cnn8"], datasets)
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # drop terminal styling
    assert "resnet16-standard-mark0.4" in out
    assert "corrupt (mean)" in out
    assert "more datasets in the report" in out
    assert all(len(line) <= 60 for line in out.splitlines())
