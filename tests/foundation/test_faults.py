"""Fault injection, table-driven: every fault gets a clear answer and no wrong number.

Each case of :data:`CASES` injects one fault into a tiny study (the tiny world and zoo of
``tests/conftest.py``, or a tiny ImageFolder exported from the world), runs the command line
(``CliRunner``) and checks three things: the exit code, a fragment of the message, and an
invariant:

* ``identical``: the study's results (its own rows, read through its plan's fingerprints) are
  the numbers of a clean run without the fault;
* ``nothing stored``: the store holds no shard and no result (or is unchanged).

Some cases check more (the file is quarantined, the faulty model stores nothing, the report
lists the skips). Faults of the earlier reliability work that are slow are tested elsewhere
and only listed here (:data:`ELSEWHERE`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import robustlens.store as store_mod
from robustlens.cli import app
from robustlens.engine import Engine
from robustlens.store import Store
from robustlens.study import read_plan, study_store

FAULTY_MODULE = '''
"""A model whose logits are NaN for bright images while the flag file exists."""
import os
import torch
from torch import nn

FLAG = os.environ.get("ROBUSTLENS_TEST_NAN_FLAG", "")


class NaNWhenFlagged(nn.Module):
    def forward(self, x):
        if FLAG and os.path.exists(FLAG):
            x = x.clone()
            x[x[:, 0] > 0] = float("nan")  # some samples, always the same ones
        return x


def build(n_out=4):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.ReLU(), NaNWhenFlagged(), nn.Linear(16, n_out)
    )
'''


# ----------------------------------------------------------------------------- the study
@dataclass
class Env:
    """Where one case runs: its directory, the fixtures' zoo and world, helpers."""

    tmp: Path
    world: dict[str, Any]
    zoo: Path
    folder: Path  # a clean tiny ImageFolder (4 classes x 6 images)
    monkeypatch: pytest.MonkeyPatch
    classes: tuple[str, ...] = ()  # the world's class names
    #: the ``disk_full_after`` fixture: makes the store's disk full after n arrays
    disk_full_after: Callable[[int], Callable[[], None]] | None = None
    #: the ``stored`` fixture: a stored array's bytes, wherever the store keeps them
    stored: Any = None
    cleanups: list[Callable[[], None]] = dataclasses.field(default_factory=list)

    def study(
        self,
        name: str = "study",
        store: Path | None = None,
        out: Path | None = None,
        models: list[dict[str, Any]] | None = None,
        datasets: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> Path:
        data = {
            "name": name,
            "store": str(store or self.tmp / "store"),
            "output": str(out or self.tmp / f"out-{name}"),
            "world": self.world,
            "models": models or [{"source": "zoo", "path": str(self.zoo)}],
            "datasets": datasets or [{"world": ["val"]}],
            "measures": ["accuracy"],
            "engine": {"num_workers": 0, "batch_size": 8, "shard_size": 16, **extra},
        }
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def folder_copy(self, name: str = "folder") -> Path:
        root = self.tmp / name
        shutil.copytree(self.folder, root, symlinks=True)
        return root


def invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def study_results(study: Path) -> pd.DataFrame:
    """The numbers of one study (its own rows, by the fingerprints in its plan)."""
    data = yaml.safe_load(study.read_text())
    plan = read_plan(data["output"])
    assert plan is not None, f"no plan.json in {data['output']}"
    df = study_store(Store(data["store"]), plan).results()
    return _numbers(df)


def _numbers(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["model", "dataset", "measure", "name", "value"]
    return df[cols].sort_values(cols[:4]).reset_index(drop=True)


def nothing_stored(store: Path) -> bool:
    if not (store / "store.sqlite").exists():
        return True
    stats = Store(store).stats()
    return stats["shards"] == 0 and stats["results"] == 0


def logits_hashes(store: Path, model: str | None = None) -> list[str]:
    con = sqlite3.connect(store / "store.sqlite")
    rows = con.execute(
        "SELECT a.hash FROM arrays a JOIN entities e ON e.fingerprint = a.model_fp "
        "WHERE a.name='logits'" + (" AND e.name=?" if model else "") + " ORDER BY a.shard",
        (model,) if model else (),
    ).fetchall()
    con.close()
    return [r[0] for r in rows]


# ----------------------------------------------------------------------------- the faults
# Each returns (commands to run, the study whose results the invariant reads, checks):
# commands run in order; the exit code and message are those of the last one.
Fault = Callable[[Env], tuple[list[list[str]], Path | None, Callable[[], None] | None]]


def _study_then(env: Env, damage: Callable[[Path], None]) -> tuple:
    """A clean run, then ``damage(store)``, then the same study into a new output directory
    (so that its measures read the arrays again)."""
    first = env.study("first")
    invoke("study", str(first), "--no-report")
    damage(env.tmp / "store")
    again = env.study("again")

    def check() -> None:
        assert any((env.tmp / "store" / "quarantine").iterdir())  # moved aside, not deleted
        assert Store(env.tmp / "store").verify().ok  # and recomputed

    return [["study", str(again), "--no-report"]], again, check


def overwritten_array(env: Env):
    def damage(store: Path) -> None:
        digest = logits_hashes(store, "tiny-cnn")[0]
        data = bytearray(env.stored.read(store, digest))
        data[-64:] = data[-64:][::-1]  # same size, other numbers
        env.stored.write(store, digest, bytes(data))

    return _study_then(env, damage)


def truncated_array(env: Env):
    def damage(store: Path) -> None:
        digest = logits_hashes(store, "tiny-resnet")[1]
        env.stored.write(store, digest, env.stored.read(store, digest)[:100])

    return _study_then(env, damage)


def deleted_array(env: Env):
    def damage(store: Path) -> None:
        env.stored.delete(store, logits_hashes(store, "tiny-mixer")[0])

    cmds, study, _ = _study_then(env, damage)

    def check() -> None:  # nothing to move aside; recomputed
        assert Store(env.tmp / "store").verify().ok

    return cmds, study, check


def _folder_study(env: Env, root: Path, name: str = "study", **entry: Any) -> Path:
    return env.study(
        name, datasets=[{"layout": "imagefolder", "root": str(root), "size": 32, **entry}]
    )


def symlink_loop(env: Env):
    root = env.folder_copy()
    first = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (first / "loop").symlink_to("..")
    return [["study", str(_folder_study(env, root)), "--no-report"]], env.tmp / "study.yaml", None


def corrupt_image(env: Env):
    root = env.folder_copy()
    cls = sorted(p for p in root.iterdir() if p.is_dir())[1]
    (cls / "zz-garbage.png").write_bytes(b"not an image at all" * 20)
    study = _folder_study(env, root)
    invoke("study", str(study), "--no-report")  # the skip is listed on the cached rerun too
    return [["study", str(study), "--no-report"]], study, None


def zero_byte_image(env: Env):
    root = env.folder_copy()
    cls = sorted(p for p in root.iterdir() if p.is_dir())[2]
    (cls / "zz-empty.png").write_bytes(b"")
    study = _folder_study(env, root)
    invoke("study", str(study), "--no-report")
    return [["study", str(study), "--no-report"]], study, None


def decompression_bomb(env: Env):
    root = env.folder_copy()
    cls = sorted(p for p in root.iterdir() if p.is_dir())[0]
    Image.new("RGB", (64, 64), "red").save(cls / "zz-bomb.png")  # 4096 pixels
    # PIL's limit (the default max_pixels) between 4096 / 2 and 4096: PIL itself would warn
    env.monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    study = _folder_study(env, root)
    return [["study", str(study), "--no-report"]], study, None


def same_model_name_other_weights(env: Env):
    """Two studies share a store; their zoos both have a 'tiny-cnn', with other weights."""
    zoo_b = env.tmp / "zoo-b"
    shutil.copytree(env.zoo, zoo_b)
    path = zoo_b / "tiny-cnn.safetensors"
    sd = load_file(str(path))
    gen = torch.Generator().manual_seed(0)
    sd["head.weight"] = sd["head.weight"] + torch.randn(sd["head.weight"].shape, generator=gen)
    save_file(sd, str(path))
    a = env.study("a")
    b = env.study("b", models=[{"source": "zoo", "path": str(zoo_b)}])
    out_a = env.tmp / "out-a"

    def clean_a() -> pd.DataFrame:
        return env.clean["world"]  # type: ignore[attr-defined]

    def check() -> None:
        exported = pd.read_csv(out_a / "results_long.csv")
        assert set(exported["model_fp"]) == set(read_plan(out_a)["fingerprints"]["models"].values())
        pd.testing.assert_frame_equal(_numbers(exported.fillna({"dataset_fp": ""})), clean_a())
        b_acc = study_results(b).query("model == 'tiny-cnn' and name == 'accuracy'")["value"]
        a_acc = study_results(a).query("model == 'tiny-cnn' and name == 'accuracy'")["value"]
        assert b_acc.item() != a_acc.item()  # B's numbers really differ, and A kept its own

    return (
        [
            ["study", str(a), "--no-report"],
            ["study", str(b), "--no-report"],
            ["report", str(a)],
            ["export", str(a)],
        ],
        a,
        check,
    )


def _faulty_model(env: Env) -> dict[str, Any]:
    (env.tmp / "faultymod.py").write_text(textwrap.dedent(FAULTY_MODULE))
    env.monkeypatch.syspath_prepend(str(env.tmp))
    env.monkeypatch.setenv("ROBUSTLENS_TEST_NAN_FLAG", str(env.tmp / "nan-flag"))
    (env.tmp / "nan-flag").write_text("on")
    return {
        "source": "module",
        "name": "faulty",
        "factory": "faultymod:build",
        "classes": list(env.classes),
        "input_size": 32,
    }


def nan_logits(env: Env):
    faulty = _faulty_model(env)
    study = env.study(models=[{"source": "zoo", "path": str(env.zoo)}, faulty])
    store = env.tmp / "store"

    def check() -> None:
        plan = read_plan(env.tmp / "out-study")
        assert [f["model"] for f in plan["failures"]] == ["faulty"]
        fp = plan["fingerprints"]["models"]["faulty"]
        con = sqlite3.connect(store / "store.sqlite")
        assert con.execute("SELECT COUNT(*) FROM shards WHERE model_fp=?", (fp,)).fetchone() == (
            0,
        )  # nothing of the faulty model is cached
        page = (env.tmp / "out-study" / "report.html").read_text()
        assert "Skipped files and failures" in page and "non-finite logits" in page
        # fixed: the same study (same weights, so the same fingerprint) is computed, not served
        (env.tmp / "nan-flag").unlink()
        code, out = invoke("study", str(study), "--no-report")
        assert code == 0, out
        assert "faulty" in set(study_results(study)["model"])

    return [["study", str(study)]], study, check


def _nothing(env: Env, study: Path) -> tuple:
    return [["study", str(study), "--no-report"]], None, None


def device_tpu(env: Env):
    return _nothing(env, env.study(device="tpu"))


def device_cuda_without_gpu(env: Env):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return _nothing(env, env.study(device="cuda"))


def objectnet_without_mapping(env: Env):
    return _nothing(env, env.study(datasets=[{"layout": "objectnet", "root": str(env.folder)}]))


def _zoo_member_copy(env: Env, name: str = "tiny-cnn") -> Path:
    out = env.tmp / "zoo-copy"
    out.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(env.zoo / f"{name}{suffix}", out / f"{name}{suffix}")
    return out / f"{name}.safetensors"


def truncated_safetensors(env: Env):
    path = _zoo_member_copy(env)
    path.write_bytes(path.read_bytes()[:5000])
    return _nothing(env, env.study(models=[{"source": "zoo_checkpoint", "path": str(path)}]))


def unknown_architecture(env: Env):
    path = _zoo_member_copy(env)
    cfg = path.with_suffix(".json")
    meta = json.loads(cfg.read_text())
    meta["member"]["arch"] = "vit"
    cfg.write_text(json.dumps(meta))
    return _nothing(env, env.study(models=[{"source": "zoo_checkpoint", "path": str(path)}]))


def ctrl_c(env: Env):
    study = env.study()
    real = Engine._run_shard
    calls = {"n": 0}

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    env.monkeypatch.setattr(Engine, "_run_shard", interrupted)

    def check() -> None:  # rerun: resumes, identical to a clean run
        env.monkeypatch.setattr(Engine, "_run_shard", real)
        assert Store(env.tmp / "store").stats()["shards"] > 0  # finished shards were kept
        code, out = invoke("study", str(study), "--no-report")
        assert code == 0, out

    return [["study", str(study), "--no-report"]], study, check


def read_only_store(env: Env):
    study = env.study()
    invoke("study", str(study))
    store = env.tmp / "store"
    before = Store(store).stats()
    env.monkeypatch.setattr(store_mod, "_writable", lambda path: False)

    def check() -> None:
        assert Store(store).readonly and Store(store).stats() == before
        for cmd in ("report", "export"):  # reading it works
            code, out = invoke(cmd, str(study))
            assert code == 0, out

    return [["study", str(study), "--no-report"]], None, check


def group_readable(env: Env):
    study = env.study()
    old = os.umask(0o027)
    env.cleanups.append(lambda: os.umask(old))

    def check() -> None:
        store = env.tmp / "store"
        modes = {p.stat().st_mode & 0o777 for p in (store / "objects").glob("*/*.npy")}
        assert modes == {0o640}, modes  # group-readable, as the umask says (not 0600)
        assert (store / "store.sqlite").stat().st_mode & 0o777 == 0o640

    return [["study", str(study), "--no-report"]], study, check


def more_outputs_than_classes(env: Env):
    (env.tmp / "faultymod.py").write_text(textwrap.dedent(FAULTY_MODULE))
    env.monkeypatch.syspath_prepend(str(env.tmp))
    root = env.tmp / "three"
    for c in range(3):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (80 * c, 40 * i, 0)).save(root / f"class_{c}" / f"{i}.png")
    five = {"source": "module", "factory": "faultymod:build", "kwargs": {"n_out": 5}}
    study = env.study(
        models=[five], datasets=[{"layout": "imagefolder", "root": str(root), "size": 32}]
    )
    return _nothing(env, study)


def disk_full(env: Env):
    study = env.study()
    free_disk = env.disk_full_after(12)

    def check() -> None:
        free_disk()
        code, out = invoke("study", str(study), "--no-report")
        assert code == 0, out

    return [["study", str(study), "--no-report"]], study, check


def pickled_module(env: Env):
    (env.tmp / "faultymod.py").write_text(textwrap.dedent(FAULTY_MODULE))
    env.monkeypatch.syspath_prepend(str(env.tmp))
    weights = env.tmp / "whole-module.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), weights)
    entry = {"source": "module", "factory": "faultymod:build", "weights": str(weights)}
    return _nothing(env, env.study(models=[entry]))


@dataclass(frozen=True)
class Case:
    fault: str
    inject: Fault
    exit_code: int
    message: str  # a fragment of the output (case-sensitive)
    invariant: str  # "identical" (to a clean run) or "nothing stored"
    clean: str = "world"  # which clean run "identical" compares with: world or folder
    absent: str = ""  # a fragment that must NOT be in the output


CASES = [
    Case("array overwritten, same size", overwritten_array, 0, "does not match its hash",
         "identical"),
    Case("array truncated", truncated_array, 0, "is truncated", "identical"),
    Case("array deleted", deleted_array, 0, "its file is missing", "identical"),
    Case("symlink loop in a dataset", symlink_loop, 0, "symlinked directory not followed",
         "identical", clean="folder"),
    Case("corrupt image (cached rerun)", corrupt_image, 0, "zz-garbage.png: UnidentifiedImageError",
         "identical", clean="folder"),
    Case("zero-byte image (cached rerun)", zero_byte_image, 0, "zz-empty.png: zero-byte file",
         "identical", clean="folder"),
    Case("decompression bomb", decompression_bomb, 0, "zz-bomb.png: decompression-bomb refusal",
         "identical", clean="folder", absent="DecompressionBombWarning"),
    Case("same model name, other weights, shared store", same_model_name_other_weights, 0,
         "results_long.csv", "identical"),
    Case("NaN logits from one model", nan_logits, 1,
         "failed: accuracy of faulty on world/val: non-finite logits", "identical"),
    Case("device: tpu", device_tpu, 2, "unknown device 'tpu'", "nothing stored"),
    Case("device: cuda without a GPU", device_cuda_without_gpu, 2, "no usable CUDA GPU",
         "nothing stored"),
    Case("objectnet without mapping_file", objectnet_without_mapping, 2,
         "needs 'mapping_file'", "nothing stored"),
    Case("truncated zoo .safetensors", truncated_safetensors, 2, "is damaged", "nothing stored"),
    Case("zoo .json with an unknown architecture", unknown_architecture, 2,
         "unknown zoo architecture 'vit'", "nothing stored"),
    Case("Ctrl-C mid-run", ctrl_c, 130, "interrupted after 2 of 3 shards; rerun to resume",
         "identical"),
    Case("read-only store", read_only_store, 2, "is read-only", "nothing stored"),
    Case("stored files group-readable (umask 027)", group_readable, 0, "forward passes",
         "identical"),
    Case("5-output model on a 3-class folder", more_outputs_than_classes, 2,
         "5 outputs but dataset", "nothing stored"),
    Case("disk full mid-run", disk_full, 2, "disk is full", "identical"),
    Case("pickled module as weights", pickled_module, 2, "--trust-pickle", "nothing stored"),
]  # fmt: skip

#: earlier reliability faults whose tests are slow or need more than one process
ELSEWHERE = {
    "kill -9 mid-run, resume identical": "tests/foundation/test_resume.py",
    "concurrent writers on one store": "tests/foundation/test_engine_store.py"
    "::test_concurrent_writers_do_not_corrupt",
    "disk full (engine level)": "tests/executors/test_faults.py",
    "killed Ray worker retried": "tests/executors/test_faults.py (ray)",
    "malicious pickle refused unless trusted": "tests/models/test_checkpoints.py",
}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world_dict(tiny_world) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }


@pytest.fixture(scope="module")
def tiny_folder(tiny_world, tmp_path_factory) -> Path:
    """A tiny ImageFolder: 6 images of each class of the tiny world's val split."""
    root = tmp_path_factory.mktemp("folder")
    tiny_world.export_imagefolder(root, ["val"], limit_per_class=6)
    return root / "val"


@pytest.fixture(scope="module")
def clean(tiny_world, tiny_zoo_dir, tiny_folder, world_dict, tmp_path_factory) -> dict:
    """The numbers of clean runs: the world study and the folder study."""
    tmp = tmp_path_factory.mktemp("clean")
    env = Env(tmp, world_dict, tiny_zoo_dir, tiny_folder, pytest.MonkeyPatch())
    out = {}
    for kind, study in (
        ("world", env.study("world")),
        ("folder", _folder_study(env, tiny_folder, "folder")),
    ):
        code, text = invoke("study", str(study), "--no-report")
        assert code == 0, text
        out[kind] = study_results(study)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.fault for c in CASES])
def test_fault(
    case,
    clean,
    tiny_world,
    tiny_zoo_dir,
    tiny_folder,
    world_dict,
    tmp_path,
    monkeypatch,
    disk_full_after,
    stored,
):
    env = Env(
        tmp_path,
        world_dict,
        tiny_zoo_dir,
        tiny_folder,
        monkeypatch,
        tuple(tiny_world.classes),
        disk_full_after,
        stored,
    )
    env.clean = clean  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            commands, study, check = case.inject(env)
            for cmd in commands:
                code, out = invoke(*cmd)
        flat = " ".join(out.split())  # rich wraps long lines
        assert code == case.exit_code, out
        assert case.message in flat, out
        if case.absent:
            assert case.absent not in out
            assert not [w for w in seen if case.absent in w.category.__name__]
        if check is not None:
            check()
    finally:
        for undo in env.cleanups:
            undo()
    if case.invariant == "identical":
        got = study_results(study)
        want = clean[case.clean]
        got = got[got["model"].isin(want["model"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
    else:
        assert nothing_stored(tmp_path / "store") or case.fault == "read-only store"


def test_every_issue_case_is_in_the_table():
    faults = {c.fault for c in CASES}
    assert len(faults) == len(CASES) == 20
    assert all(c.invariant in ("identical", "nothing stored") for c in CASES)
    assert set(ELSEWHERE)  # referenced, not repeated


def test_the_report_and_summary_list_every_skipped_file(
    clean, tiny_folder, world_dict, tiny_zoo_dir, tmp_path, monkeypatch
):
    env = Env(tmp_path, world_dict, tiny_zoo_dir, tiny_folder, monkeypatch)
    root = env.folder_copy()
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    for i in range(8):  # more than the console shows
        (classes[i % 4] / f"zz-empty-{i}.png").write_bytes(b"")
    study = _folder_study(env, root)
    code, out = invoke("study", str(study))
    assert code == 0, out
    assert "8 file(s) skipped" in out and "... and 3 more" in out
    summary = json.loads((tmp_path / "out-study" / "study_summary.json").read_text())
    assert len(summary["skipped"]["imagefolder"]) == 8
    page = (tmp_path / "out-study" / "report.html").read_text()
    assert all(f"zz-empty-{i}.png" in page for i in range(8))
    assert np.isclose(
        study_results(study).query("name == 'accuracy'")["value"].to_numpy(),
        clean["folder"].query("name == 'accuracy'")["value"].to_numpy(),
    ).all()
