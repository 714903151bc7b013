"""A run killed mid-way and started again resumes and gives identical results."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict

import numpy as np

from robustlens.models.zoo import load_zoo_model
from robustlens.store import Store, StoredArrays

SCRIPT = """
import sys, time, json
from robustlens.data.synthetic import SyntheticWorld, WorldConfig
from robustlens.engine import Engine, EngineJob
from robustlens.models.zoo import load_zoo_model
from robustlens.store import Store
import robustlens.store as st_mod

slow = sys.argv[3] == "slow"
if slow:  # commit each shard, slowly, so that the parent can kill us between shards
    st_mod.COMMIT_INTERVAL_S = 0.0
    orig = st_mod.Store.put_shards
    def put_shards(self, shards):
        orig(self, shards)
        print("SHARD", flush=True)
        time.sleep(0.4)
    st_mod.Store.put_shards = put_shards
cfg = WorldConfig(**json.loads(sys.argv[4]))
store = Store(sys.argv[1])
world = SyntheticWorld(cfg, store)
model = load_zoo_model(sys.argv[2])
views = ("clean", "gray", "corrupt:contrast:3")
Engine(store, batch_size=8, shard_size=8).run(world.dataset("val"), [EngineJob(model, views)])
print("DONE", flush=True)
"""


def _run(args, kill_after_shards=None):
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), *args], stdout=subprocess.PIPE, text=True
    )
    if kill_after_shards is None:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and "DONE" in out
        return
    seen = 0
    for line in p.stdout:
        seen += line.startswith("SHARD")
        if seen >= kill_after_shards:
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL


def test_killed_run_resumes_with_identical_results(tmp_path, tiny_world, tiny_zoo_dir):
    ckpt = str(sorted(tiny_zoo_dir.glob("*.safetensors"))[0])
    cfg = json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()}
    )
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    _run([str(killed), ckpt, "slow", cfg], kill_after_shards=4)
    partial = Store(killed).stats()["shards"]
    assert 0 < partial < 6 * 4 + 6  # some shards are committed, not all
    t0 = time.perf_counter()
    _run([str(killed), ckpt, "fast", cfg])
    _run([str(clean), ckpt, "fast", cfg])
    assert time.perf_counter() - t0 < 280

    m = load_zoo_model(ckpt)
    ds = tiny_world.dataset("val")
    for view in ("clean", "gray", "corrupt:contrast:3"):
        a = StoredArrays(Store(killed), m.fingerprint(), ds.fingerprint()).logits(view)
        b = StoredArrays(Store(clean), m.fingerprint(), ds.fingerprint()).logits(view)
        np.testing.assert_array_equal(a, b)
