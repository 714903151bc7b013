"""Every study file shipped in ``configs/`` parses, commented-out model entries included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from robustlens.config import load_config
from robustlens.data.layouts import available_layouts
from robustlens.demo import demo_config_dict
from robustlens.models.sources import available_sources

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
# a commented-out list entry, e.g. "  # - {source: timm, arch: resnet50, weights: ...}"
_COMMENTED_ENTRY = re.compile(r"^(\s*)# (- \{.*\})\s*$", re.M)


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "imagenet-template.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path: Path, tmp_path: Path):
    cfg = load_config(path)
    assert cfg.models and cfg.datasets and cfg.measures
    assert {m.source for m in cfg.models} <= set(available_sources())
    assert {d.layout for d in cfg.datasets if d.layout} <= set(available_layouts())
    # relative paths resolve against the file's folder
    assert Path(cfg.store).is_absolute() and Path(cfg.output).is_absolute()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_commented_out_entries_parse_too(path: Path, tmp_path: Path):
    """The entries a user is told to uncomment are valid entries (paths substituted)."""
    text = _COMMENTED_ENTRY.sub(r"\1\2", path.read_text())
    text = text.replace("/models/", f"{tmp_path}/models/").replace("/data/", f"{tmp_path}/data/")
    copy = tmp_path / path.name
    copy.write_text(text)
    cfg = load_config(copy)
    n_commented = len(_COMMENTED_ENTRY.findall(path.read_text()))
    assert len(cfg.models) + len(cfg.datasets) >= n_commented
    for m in cfg.models:
        for field in m.path_fields:
            value = getattr(m, field)
            assert value is None or Path(value).is_absolute()


def test_the_demo_config_file_is_what_robustlens_demo_runs():
    demo = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/demo.yaml").read_text())
    expected = demo_config_dict()
    if "generated" not in expected["zoo"]:
        demo["zoo"].pop("generated", None)  # without the [gen] extra the demo has no twins
    assert demo == expected
