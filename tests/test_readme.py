"""The README cannot drift from the code: every ``robustlens`` command its ``bash`` blocks show
runs (through typer's CliRunner, in the README's order, on a tiny study), and every study file
its ``yaml`` blocks show parses and loads.

Paths are substituted: ``study.yaml`` is a tiny study on the tiny world and zoo of
``tests/conftest.py``, ``zoo/`` the tiny zoo, ``out/`` and ``generated`` folders of the test;
the study YAML's ``/models/`` and ``/data/`` files are tiny fixture files written by the test.
A command that cannot run here is in :data:`SKIPPED` with the reason; every other one runs, so
a command added to the README is run by this test without anything to add here.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import pytest
import timm
import typer
import yaml
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.config import load_config
from robustlens.data.imagenet_info import imagenet_r_indices, imagenet_wnids
from robustlens.plan import resolve_datasets, resolve_models
from robustlens.store import Store

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV = {"COLUMNS": "200"}  # rich wraps tables to the terminal width

#: README commands that are not run here, each with the reason (the exact README text)
SKIPPED = {
    "robustlens demo": "follows `pip install -e .[gen]` (installs packages) and runs the full "
    "demo study (about 13 minutes); tests/e2e runs the quick demo (`pytest -m slow`)",
    "robustlens pretrained-demo": "runs real ImageNet models on photos with every measure "
    "(minutes); tests/data and tests/models test its pieces",
    "robustlens generate study.yaml --out generated": "trains a diffusion model (minutes); "
    "tests/foundation/test_cli_convention.py and tests/lines/robustness run it with 1 step",
    "robustlens study study.yaml --executor ray": "starts a Ray cluster; "
    "tests/executors/test_ray_executor.py runs the Ray executor",
}


def code_blocks(language: str) -> list[str]:
    """The README's fenced code blocks in ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def readme_commands() -> list[str]:
    """Every ``robustlens`` command of the README's bash blocks, comments dropped, in order
    (once each).

    A line may chain commands (``pip install ... && robustlens demo``); each ``robustlens``
    one counts.
    """
    commands = []
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|\||;", line):
                words = shlex.split(part, comments=True)
                if words and words[0] == "robustlens":
                    commands.append(shlex.join(words))
    return list(dict.fromkeys(commands))  # `robustlens demo` is in the set-up and the list


COMMANDS = readme_commands()
RUN = [c for c in COMMANDS if c not in SKIPPED]


def _study(root: Path, tiny_world, tiny_zoo_dir: Path) -> Path:
    """A tiny study (``measures: [accuracy]``) whose zoo section is the trained tiny zoo."""
    world = {
        k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()
    }
    members = [json.loads(p.read_text())["member"] for p in sorted(tiny_zoo_dir.glob("*.json"))]
    data = {
        "name": "readme",
        "store": str(root / "store"),
        "output": str(root / "out-study"),
        "world": world,
        "zoo": {"dir": str(tiny_zoo_dir), "members": members, "workers": 1},
        "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
        "datasets": [{"world": ["val", "v2", "sketch", "spurious", "corrupt/contrast/3"]}],
        "measures": ["accuracy"],
        # keeps the biases command to seconds on the tiny world
        "measure_options": {
            "biases": {
                "cutoffs": [0.2, 0.4],
                "bias_cutoffs": [0.2, 0.4],
                "bands": [3, 4, 5],
                "sigmas": [0.04, 0.16],
                "pgd_steps": 2,
            }
        },
        "engine": {"num_workers": 0},
    }
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def readme_runs(tiny_world, tiny_zoo_dir, tmp_path_factory) -> dict[str, object]:
    """Every README command that is not skipped, run in the README's order."""
    root = tmp_path_factory.mktemp("readme")
    paths = {
        "study.yaml": str(_study(root, tiny_world, tiny_zoo_dir)),
        "zoo/": str(tiny_zoo_dir),
        "out/": str(root / "exported"),
        "generated": str(root / "generated"),
    }
    runs = {}
    for command in RUN:
        args = [paths.get(w, w) for w in shlex.split(command)[1:]]
        runs[command] = CliRunner().invoke(app, args, env=ENV)
    return runs


@pytest.mark.parametrize("command", RUN)
def test_readme_command_runs(command: str, readme_runs) -> None:
    res = readme_runs[command]
    assert res.exit_code == 0, f"{command}\n{res.output}"


def test_every_readme_command_is_run_or_skipped_with_a_reason() -> None:
    stale = set(SKIPPED) - set(COMMANDS)
    assert not stale, f"skipped commands no longer in the README: {stale}"
    for command in COMMANDS:
        assert command in RUN or SKIPPED.get(command), command
    assert "robustlens eval -c study.yaml" in RUN and "robustlens eval study.yaml" in RUN


def _cli_commands() -> list[str]:
    """Every command of the CLI, ``group sub`` for the subcommands of a group."""
    names = []

    def walk(cmd, prefix: str) -> None:
        if isinstance(cmd, typer.core.TyperGroup):
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            names.append(prefix)

    walk(typer.main.get_command(app), "")
    return names


def test_the_readme_shows_every_command() -> None:
    shown = {" ".join(shlex.split(c)[1:3]) for c in COMMANDS} | {
        shlex.split(c)[1] for c in COMMANDS
    }
    missing = [c for c in _cli_commands() if c not in shown]
    assert not missing, f"commands the README's command-line section does not show: {missing}"


# ------------------------------------------------------------------------------ study files
def _fixture_files(root: Path) -> None:
    """The files the README's study YAML names, under ``root`` (for ``/models/``, ``/data/``).

    ``/models/resnet50.safetensors`` holds random weights of timm's resnet50 (what matters
    is that the entry loads them); ``/data/imagenet/val`` and ``/data/imagenet-r`` are one
    image each in their layouts.
    """
    weights = root / "models" / "resnet50.safetensors"
    weights.parent.mkdir(parents=True)
    save_file(timm.create_model("resnet50", pretrained=False).state_dict(), weights)
    wnids = imagenet_wnids()
    for folder in (
        root / "data/imagenet/val" / wnids[0],
        root / "data/imagenet-r" / wnids[imagenet_r_indices()[0]],
    ):
        folder.mkdir(parents=True)
        Image.new("RGB", (40, 30), (120, 60, 30)).save(folder / "a.jpg")


@pytest.mark.parametrize("index", range(len(code_blocks("yaml"))))
def test_readme_study_file_parses_and_loads(index: int, tmp_path: Path, tiny_zoo_dir) -> None:
    text = code_blocks("yaml")[index]
    text = text.replace("/models/", f"{tmp_path}/models/").replace("/data/", f"{tmp_path}/data/")
    _fixture_files(tmp_path)
    if "path: zoo" in text:
        (tmp_path / "zoo").symlink_to(tiny_zoo_dir)  # relative to the study file: the tiny zoo
    study = tmp_path / "study.yaml"
    study.write_text(text)
    cfg = load_config(study)
    assert cfg.models and cfg.datasets and cfg.measures
    for spec in resolve_models(cfg):
        model = spec.load()
        assert model.n_classes > 0, spec.name
    for spec in resolve_datasets(cfg, Store(tmp_path / "store")):
        if not spec.name.startswith("world/"):  # the demo-size world is not generated here
            assert len(spec.dataset()) > 0, spec.name


def test_the_configs_the_readme_names_exist() -> None:
    named = set(re.findall(r"configs/[\w.-]+\.yaml", README))
    assert named and all((ROOT / n).is_file() for n in named), named
