"""Faults: a full disk mid-run loses nothing, a killed Ray worker is retried."""

import os
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import robustlens.study as study_mod
from robustlens.config import parse_config
from robustlens.engine import Engine, EngineJob
from robustlens.errors import StoreError
from robustlens.store import Store, StoredArrays
from robustlens.study import run_study


def test_disk_full_mid_run_is_a_clear_error_and_resumes(
    tmp_path, tiny_world, tiny_models, disk_full_after
):
    store = Store(tmp_path / "s")
    ds = tiny_world.dataset("val")
    m = tiny_models[0]
    free_disk = disk_full_after(10)  # shard 0 (8 arrays) completes, shard 1 hits the full disk
    eng = Engine(store, batch_size=8, shard_size=16)
    with pytest.raises(StoreError, match=r"disk is full.*rerun to resume"):
        eng.run(ds, [EngineJob(m, ("clean", "gray"))])
    committed = store.stats()["shards"]
    assert committed >= 1
    free_disk()
    rep = eng.run(ds, [EngineJob(m, ("clean", "gray"))])
    assert rep.shards_cached >= 1  # finished shards were kept
    assert rep.forward_passes < 2 * len(ds)
    ref = Store(tmp_path / "ref")
    Engine(ref, batch_size=8, shard_size=16).run(ds, [EngineJob(m, ("clean", "gray"))])
    for view in ("clean", "gray"):
        np.testing.assert_array_equal(
            StoredArrays(store, m.fingerprint(), ds.fingerprint()).logits(view),
            StoredArrays(ref, m.fingerprint(), ds.fingerprint()).logits(view),
        )


def test_read_only_database_is_a_clear_error(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")

    def readonly(*a, **k):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Store, "_transaction", readonly)
    with pytest.raises(StoreError, match=r"read-only.*writable --store"):
        store.put_results(
            [
                {
                    "model": "m",
                    "model_fp": "m",
                    "dataset": "d",
                    "dataset_fp": "d",
                    "measure": "x",
                    "name": "y",
                    "value": 1.0,
                }
            ]
        )


ray = pytest.importorskip("ray")


class KillOnceDataset:
    """Wraps a dataset; the first worker to load from it dies (a marker file says so)."""

    def __init__(self, inner, marker):
        self.inner, self.marker = inner, marker
        self.name, self.classes = inner.name, inner.classes
        self.extra_label_names, self.skipped = inner.extra_label_names, []

    def __len__(self):
        return len(self.inner)

    def fingerprint(self):
        return self.inner.fingerprint()

    def class_mapping(self, classes):
        return self.inner.class_mapping(classes)

    def labels(self):
        return self.inner.labels()

    def acceptable_labels(self):
        return self.inner.acceptable_labels()

    def load(self, i):
        if not Path(self.marker).exists():
            Path(self.marker).write_text("killed")
            os._exit(1)  # the worker process dies mid-job
        return self.inner.load(i)


@pytest.mark.ray
def test_killed_ray_worker_is_retried(tmp_path, tiny_world, tiny_zoo_dir):
    # ship this test module's class by value: Ray workers cannot import test files
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        w = {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(tiny_world.config).items()
        }
        cfg = parse_config(
            {
                "store": str(tmp_path / "store"),
                "output": str(tmp_path / "out"),
                "world": w,
                "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
                "datasets": [{"world": ["sketch"]}],
                "measures": ["accuracy"],
                "executor": "ray",
            }
        )

        original = study_mod.resolve_datasets
        marker = tmp_path / "marker"

        def wrapped(c, s):
            specs = original(c, s)
            for spec in specs:
                inner = spec.dataset()
                spec._ds = KillOnceDataset(inner, str(marker))
            return specs

        study_mod.resolve_datasets = wrapped
        try:
            res = run_study(cfg)
        finally:
            study_mod.resolve_datasets = original
        assert marker.exists()  # a worker did die
        df = res.results()
        assert len(df[df["name"] == "accuracy"]) == 3  # and the study completed
    finally:
        ray.shutdown()
