"""The study config is validated where it is read: every name it gives is checked against its
registry, and every error is one ConfigError naming the key (the CLI prints one line)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.config import load_config, parse_config
from robustlens.data import layouts
from robustlens.data.layouts import available_layouts, get_layout, register_layout
from robustlens.errors import ConfigError
from robustlens.models.sources import (
    TimmEntry,
    ZooEntry,
    allowed_keys,
    available_sources,
    load_model,
)
from robustlens.plan import resolve_datasets, resolve_models
from robustlens.roles import ROLES, role_from_name
from robustlens.runner import load_study_config
from robustlens.store import Store


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


# ----------------------------------------------------------------------------- measures
def test_unknown_measure_names_it_and_the_registered_ones():
    msg = _error({"measures": ["accuracy", "acuracy"]})
    assert "measures: unknown measures ['acuracy']" in msg
    assert "available: " in msg and "accuracy, " in msg


def test_measure_option_typo_names_the_key_and_the_allowed_ones():
    msg = _error({"measures": ["clustering"], "measure_options": {"clustering": {"max_sample": 9}}})
    assert "measure_options.clustering: unknown option 'max_sample'" in msg
    assert "allowed options: " in msg and "max_samples" in msg


def test_options_of_a_measure_left_out_are_still_checked_and_unknown_measures_refused():
    # a line's command runs the file with its own measures and reads these options
    ok = {"measures": ["accuracy"], "measure_options": {"clustering": {"seed": 1}}}
    assert parse_config(ok).measure_options == {"clustering": {"seed": 1}}
    msg = _error({"measures": ["accuracy"], "measure_options": {"clustering": {"sed": 1}}})
    assert "measure_options.clustering: unknown option 'sed'" in msg
    msg = _error({"measures": ["accuracy"], "measure_options": {"clusterin": {"seed": 1}}})
    assert "unknown measure_options ['clusterin']" in msg


# ----------------------------------------------------------------------------- datasets
def test_unknown_role_names_the_known_roles():
    msg = _error({"datasets": [{"layout": "imagefolder", "root": "/d", "role": "ood"}]})
    assert "datasets.0.role: unknown dataset role 'ood'" in msg
    assert all(r in msg for r in ROLES)


def test_unknown_layout_and_missing_keys_are_named():
    msg = _error({"datasets": [{"layout": "imagenet_x", "root": "/d"}]})
    assert "datasets.0.layout: unknown dataset layout 'imagenet_x'" in msg
    assert "imagenet_sketch" in msg  # the registered layouts are listed
    msg = _error({"datasets": [{"layout": "objectnet", "root": "/d"}]})
    assert "datasets.0: dataset layout 'objectnet' needs 'mapping_file'" in msg
    msg = _error({"datasets": [{"layout": "imagefolder", "root": "/d", "corruptions": ["fogg"]}]})
    assert "datasets.0.corruptions: unknown corruptions ['fogg']" in msg
    msg = _error(
        {"datasets": [{"layout": "imagenet_c", "root": "/d", "acceptable_labels": "real"}]}
    )
    assert "applies to layout imagenet_val" in msg


def test_roles_of_layout_names_come_from_the_layout_registry():
    assert {n: role_from_name(n) for n in available_layouts()} == {
        n: get_layout(n).role for n in available_layouts()
    }
    assert role_from_name("imagenet_r") == "rendition"  # a registration, not a guess
    assert all(get_layout(n).role in ROLES for n in available_layouts())


def test_a_registered_layout_is_read_and_opened_through_the_registry(
    monkeypatch, tmp_path, tiny_world
):
    monkeypatch.setattr(layouts, "_LAYOUTS", dict(layouts._LAYOUTS))
    opened = []

    @register_layout("my_layout", role="sketch")
    def _open(args):
        opened.append(args)
        return tiny_world.dataset("sketch")

    cfg = parse_config({"datasets": [{"layout": "my_layout", "root": str(tmp_path)}]})
    [spec] = resolve_datasets(cfg, Store(tmp_path / "store"))
    assert (spec.name, spec.role, spec.tags["layout"]) == ("my_layout", "sketch", "my_layout")
    assert len(spec.dataset()) == len(tiny_world.dataset("sketch"))
    assert opened[0].root == str(tmp_path) and opened[0].name == "my_layout"


def test_a_world_section_the_world_rejects_is_a_config_error():
    assert "world: n_classes must be in" in _error({"world": {"n_classes": 1}})
    assert "world.sed: unknown key" in _error({"world": {"sed": 1}})


# ----------------------------------------------------------------------------- models
def test_a_timm_entry_with_another_sources_key_names_the_allowed_ones():
    msg = _error({"models": [{"source": "timm", "arch": "resnet50", "variant": "lite0"}]})
    assert "models.0 (source timm): unknown keys ['variant']" in msg
    assert "allowed: " in msg and "'arch'" in msg and "'weights'" in msg
    msg = _error({"models": [{"source": "timm", "arch": "resnet50", "factory": "a:b"}]})
    assert "unknown keys ['factory']" in msg


def test_a_zoo_entry_with_a_timm_key_and_a_timm_entry_without_arch():
    msg = _error(
        {"models": [{"source": "zoo", "path": "z", "arch": "resnet50"}, {"source": "timm"}]}
    )
    assert "models.0 (source zoo): unknown keys ['arch']; allowed: ['path', 'source']" in msg
    assert "models.1 (source timm): 'arch' is required" in msg


def test_unknown_or_missing_source_lists_the_sources():
    msg = _error({"models": [{"source": "hub", "arch": "x"}]})
    assert "models.0.source: unknown model source 'hub'" in msg
    assert all(s in msg for s in available_sources())
    assert "models.0.source: missing" in _error({"models": [{"arch": "x"}]})


def test_each_source_has_only_its_own_keys():
    assert "variant" in allowed_keys("efficientnet_lite")
    assert "variant" not in allowed_keys("timm") and "arch" not in allowed_keys("zoo")
    assert "factory" in allowed_keys("module") and "factory" not in allowed_keys("torchvision")
    with pytest.raises(ConfigError, match=r"model spec \(timm\): unknown keys \['variant'\]"):
        load_model({"source": "timm", "arch": "test_resnet", "variant": "lite0"})


def test_weights_paths_resolve_relative_to_the_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(
        "models:\n"
        "  - {source: timm, arch: resnet50, weights: w/rn50.safetensors, name: rn50}\n"
        "  - {source: zoo_checkpoint, path: zoo/m.safetensors}\n"
    )
    timm, ckpt = load_config(p).models
    assert isinstance(timm, TimmEntry) and timm.weights == str(tmp_path / "w/rn50.safetensors")
    assert ckpt.path == str(tmp_path / "zoo/m.safetensors")
    assert [m.name for m in resolve_models(load_config(p))] == ["rn50", "m"]
    with pytest.raises(ConfigError, match="not both"):
        parse_config({"models": [{"source": "timm", "arch": "a", "weights": "w", "path": "p"}]})


def test_a_zoo_entry_without_path_uses_the_zoo_section(tiny_zoo_dir):
    cfg = parse_config({"zoo": {"dir": str(tiny_zoo_dir)}, "models": [{"source": "zoo"}]})
    assert isinstance(cfg.models[0], ZooEntry)
    assert sorted(m.name for m in resolve_models(cfg)) == ["tiny-cnn", "tiny-mixer", "tiny-resnet"]


# ----------------------------------------------------------------------------- command line
def _study_file(tmp_path, tiny_world, tiny_zoo_dir, **extra) -> object:
    world = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }
    data = {
        "store": str(tmp_path / "store"),
        "output": str(tmp_path / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": ["val"]}],
        **extra,
    }
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"measures": ["acuracy"]}, "unknown measures ['acuracy']"),
        (
            {"measures": ["clustering"], "measure_options": {"clustering": {"max_sample": 9}}},
            "unknown option 'max_sample'",
        ),
        ({"datasets": [{"world": ["val"], "role": "ood"}]}, "unknown dataset role 'ood'"),
        (
            {"models": [{"source": "timm", "arch": "resnet50", "variant": "lite0"}]},
            "unknown keys ['variant']",
        ),
    ],
)
def test_cli_prints_one_error_line_and_no_traceback(
    tmp_path, tiny_world, tiny_zoo_dir, extra, named
):
    p = _study_file(tmp_path, tiny_world, tiny_zoo_dir, **extra)
    res = CliRunner().invoke(app, ["study", str(p), "--no-report"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid study config"), res.output
    assert named in lines[0]
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit)


def test_a_command_running_some_measures_keeps_only_their_options(
    tmp_path, tiny_world, tiny_zoo_dir
):
    options = {"clustering": {"seed": 2}, "label_free": {}}
    p = _study_file(
        tmp_path,
        tiny_world,
        tiny_zoo_dir,
        measures=["accuracy", "clustering", "label_free"],
        measure_options=options,
    )
    cfg = load_study_config(p, measures=["accuracy", "clustering"], store="rel-store")
    assert cfg.measures == ["accuracy", "clustering"]
    assert cfg.measure_options == {"clustering": {"seed": 2}}
    assert cfg.store.endswith("rel-store") and cfg.store != str(tmp_path / "rel-store")
