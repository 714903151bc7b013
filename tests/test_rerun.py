"""A re-run in which nothing changed answers from the run record; any change runs in full."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.commands import rerun
from robustlens.config import parse_config

REPLAYED = "nothing changed since the run of"
RAN = "datasets in"


@pytest.fixture
def study(tmp_path, tiny_world, tiny_zoo_dir, monkeypatch) -> Path:
    monkeypatch.setenv("ROBUSTLENS_CACHE_DIR", str(tmp_path / "cache"))
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo_dir, zoo)  # this test touches checkpoints
    world = asdict(tiny_world.config)
    world = {k: list(v) if isinstance(v, tuple) else v for k, v in world.items()}
    cfg = {
        "store": str(tmp_path / "store"),
        "output": str(tmp_path / "out"),
        "world": world,
        "models": [{"source": "zoo", "path": "zoo"}],
        "datasets": [{"world": ["val", "sketch"]}],
        "measures": ["accuracy"],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _study(path: Path, *args: str):
    res = CliRunner().invoke(app, ["study", str(path), "--no-report", *args])
    assert res.exit_code == 0, res.output
    return res.output


def _table(output: str) -> list[str]:
    return [line for line in output.splitlines() if "tiny-" in line]


def test_a_rerun_replays_the_summary_and_any_change_runs_in_full(study, tmp_path):
    first = _study(study)
    assert RAN in first and REPLAYED not in first
    again = _study(study)
    assert REPLAYED in again and RAN not in again
    assert _table(again) == _table(first) and len(_table(first)) == 3  # the same numbers

    # a checkpoint touched (same bytes, new modification time)
    ckpt = next((tmp_path / "zoo").glob("*.safetensors"))
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns - 1_000_000_000))  # not in the future
    assert RAN in _study(study)
    assert REPLAYED in _study(study)

    # the study file edited
    study.write_text(study.read_text() + "# a comment\n")
    assert RAN in _study(study)
    assert REPLAYED in _study(study)

    # an output removed: the full run writes it again
    per_sample = next((tmp_path / "out").rglob("*.parquet"))
    per_sample.unlink()
    assert RAN in _study(study) and per_sample.exists()
    assert REPLAYED in _study(study)

    # other options, --full, a variable that changes what runs
    assert RAN in _study(study, "--store", str(tmp_path / "store"))
    assert RAN in _study(study, "--full")
    os.environ["ROBUSTLENS_TEST_SETTING"] = "1"
    try:
        assert RAN in _study(study)
    finally:
        del os.environ["ROBUSTLENS_TEST_SETTING"]


def test_the_replay_imports_nothing_heavy(study):
    _study(study)
    code = (
        "import sys; from pathlib import Path; from robustlens.commands import rerun; "
        f"r = rerun.replay(Path({str(study)!r}), report=False); "
        "heavy = [m for m in ('torch', 'pandas', 'numpy', 'robustlens.measure') if m in "
        "sys.modules]; print(r is not None, heavy)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "True []", out.stderr


class _Result:
    def __init__(self, cfg, **kw):
        self.config, self.models, self.datasets = cfg, ["m"], ["d"]
        self.failures, self.incidents, self.skipped = [], [], {}
        self.__dict__.update(kw)


def test_no_record_for_a_run_that_left_something_out(study):
    cfg = parse_config(yaml.safe_load(study.read_text()), "s", base_dir=study.parent)
    assert rerun.record_run(study, _Result(cfg), "table", started=time.time()) is not None
    for left_out in (
        {"skipped": {"d": [("a.jpg", "not an image")]}},
        {"failures": [{"model": "m"}]},
        {"incidents": ["quarantined"]},
    ):
        result = _Result(cfg, **left_out)
        assert rerun.record_run(study, result, "table", started=time.time()) is None


def test_no_record_for_models_from_a_download_cache(study):
    data = yaml.safe_load(study.read_text())
    data["models"] = [{"source": "timm", "arch": "test_resnet", "pretrained": True}]
    cfg = parse_config(data, "s", base_dir=study.parent)
    assert rerun.record_run(study, _Result(cfg), "table", started=time.time()) is None


def test_inputs_are_the_existing_paths_the_study_names(study, tmp_path):
    cfg = parse_config(yaml.safe_load(study.read_text()), "s", base_dir=study.parent)
    path = rerun.record_run(study, _Result(cfg), "table", started=time.time())
    record = json.loads(path.read_text())
    assert record["input_paths"] == [str((tmp_path / "zoo").resolve())]
    assert record["summary"] == "table" and record["shape"] == "1 models x 1 datasets"


def test_no_record_when_an_input_changed_while_the_study_ran(study, tmp_path):
    cfg = parse_config(yaml.safe_load(study.read_text()), "s", base_dir=study.parent)
    started = time.time()
    assert rerun.record_run(study, _Result(cfg), "table", started=started) is not None
    ckpt = next((tmp_path / "zoo").glob("*.safetensors"))
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, int(started * 1e9) + 1_000_000))  # during the run
    assert rerun.record_run(study, _Result(cfg), "table", started=started) is None
    study.write_text(study.read_text())  # the study file rewritten during the run
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert rerun.record_run(study, _Result(cfg), "table", started=started) is None


def test_a_demo_rerun_replays_its_own_record_and_an_edit_or_full_runs_it(
    tmp_path, tiny_world, tiny_zoo_dir, monkeypatch
):
    monkeypatch.setenv("ROBUSTLENS_CACHE_DIR", str(tmp_path / "cache"))
    workdir = tmp_path / "demo"
    shutil.copytree(tiny_zoo_dir, workdir / "zoo")  # trained: the demo's zoo stage keeps them
    world = asdict(tiny_world.config)
    members = [
        json.loads(p.read_text())["member"] for p in sorted((workdir / "zoo").glob("*.json"))
    ]
    data = {
        "name": "demo",
        "store": "store",
        "output": "report",
        "world": {k: list(v) if isinstance(v, tuple) else v for k, v in world.items()},
        "zoo": {"dir": "zoo", "members": members, "workers": 1},
        "models": [{"source": "zoo", "path": "zoo"}],
        "datasets": [{"world": ["val"]}],
        "measures": ["accuracy"],
    }
    # the demo's study, made tiny (the demo imports it when it runs)
    monkeypatch.setattr("robustlens.demo.demo_config_dict", lambda quick=False: copy.deepcopy(data))

    def run(*args: str):
        res = CliRunner().invoke(app, [*args])
        assert res.exit_code == 0, res.output
        return res

    def demo(*args: str) -> str:
        return run("demo", "--workdir", str(workdir), *args).output

    first = run("demo", "--workdir", str(workdir))
    assert RAN in first.output and REPLAYED not in first.output and len(_table(first.output)) == 3
    again = run("demo", "--workdir", str(workdir))
    assert REPLAYED in again.output and RAN not in again.output
    # what the first run printed on stdout, every table (the validity table last), as it was
    assert again.stdout == first.stdout and "validity" in first.stdout

    # without the heavy imports, in a process of its own
    code = (
        "import sys; from typer.testing import CliRunner; from robustlens.cli import app; "
        f"r = CliRunner().invoke(app, ['demo', '--workdir', {str(workdir)!r}]); "
        "heavy = [m for m in ('torch', 'pandas', 'numpy', 'robustlens.measure') if m in "
        f"sys.modules]; print({REPLAYED!r} in r.output, heavy)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "True []", out.stderr

    # the quick demo and `robustlens study` of the same file keep records of their own
    assert REPLAYED not in demo("--quick")
    assert REPLAYED not in run("study", str(workdir / "demo-study.yaml")).output

    # --full runs every stage, reading every array back from the store
    full = demo("--full")
    assert RAN in full and "no forward pass" in full
    assert REPLAYED in demo()

    # the study file edited by hand: the demo writes its own again and runs it
    path = workdir / "demo-study.yaml"
    written = path.read_text()
    path.write_text(written + "# edited\n")
    assert RAN in demo() and path.read_text() == written
    assert REPLAYED in demo()
