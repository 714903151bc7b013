"""The verified store: checked reads, quarantine, ``store verify`` / ``store gc``, the schema
migration to fingerprint-keyed results, read-only stores and scoped results."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from robustlens.cli import app
from robustlens.data.synthetic import SyntheticWorld
from robustlens.engine import Engine, EngineJob
from robustlens.errors import StoreError
from robustlens.store import (
    SCHEMA_VERSION,
    ArrayKey,
    CorruptArrayError,
    ReadOnlyStoreError,
    Store,
    StoredArrays,
)
from robustlens.study import read_plan, study_store

RUNNER = CliRunner()


def _hashes(store: Store, view: str = "clean", name: str = "logits") -> list[str]:
    con = sqlite3.connect(store.db_path)
    rows = con.execute(
        "SELECT hash FROM arrays WHERE view=? AND name=? ORDER BY shard", (view, name)
    ).fetchall()
    con.close()
    return [r[0] for r in rows]


@pytest.fixture()
def computed(tmp_path, tiny_world, tiny_models, storage):
    """A store holding two models' logits on the tiny world's val split (3 shards), opened
    again as another process would open it (nothing it wrote is remembered); its arrays
    are files, or rows of the index database (``storage``)."""
    store = Store(tmp_path / "s", **storage)
    ds = tiny_world.dataset("val")
    Engine(store, batch_size=8, shard_size=16).run(ds, [EngineJob(m) for m in tiny_models[:2]])
    store.close()
    return Store(tmp_path / "s", **storage), ds, tiny_models[:2]


# ----------------------------------------------------------------------------- checked reads
@pytest.mark.parametrize(
    "damage, reason",
    [
        ("overwrite", "does not match its hash"),
        ("truncate", "is truncated"),
        ("delete", "its file is missing"),
    ],
)
def test_a_damaged_array_is_never_served(computed, stored, damage, reason):
    store, ds, models = computed
    m = models[0]
    a = StoredArrays(store, m.fingerprint(), ds.fingerprint())
    good = a.logits()
    digest = _hashes(store)[0]
    assert stored.where(store.root, digest) == ("inline" if store.inline_bytes else "file")
    if damage == "overwrite":
        data = bytearray(stored.read(store.root, digest))
        data[-8:] = bytes(8)
        stored.write(store.root, digest, bytes(data))
    elif damage == "truncate":
        stored.write(store.root, digest, stored.read(store.root, digest)[:50])
    else:
        stored.delete(store.root, digest)
    with pytest.raises(CorruptArrayError, match=reason) as err:
        a.logits()
    assert "view 'clean', shard 0" in str(err.value) and "logits of model" in str(err.value)
    assert store.incidents and reason in store.incidents[0]
    if damage != "delete":  # moved aside, never deleted
        assert (store.root / "quarantine" / f"{digest}.npy").exists()
    assert not stored.exists(store.root, digest)
    # the shard is forgotten: the engine recomputes exactly it, and the numbers come back
    key = ArrayKey(m.fingerprint(), ds.fingerprint(), "clean")
    assert 0 not in store.completed_shards(key)
    rep = Engine(store, batch_size=8, shard_size=16).run(ds, [EngineJob(m) for m in models])
    assert rep.shards_computed == 1
    np.testing.assert_array_equal(a.logits(), good)


def test_stored_arrays_recompute_on_the_spot(computed, stored):
    store, ds, models = computed
    m = models[1]
    runs = []

    def recompute():
        runs.append(Engine(store, batch_size=8, shard_size=16).run(ds, [EngineJob(m)]))

    a = StoredArrays(store, m.fingerprint(), ds.fingerprint(), recompute)
    good = a.logits()
    labels = a.labels()
    con = sqlite3.connect(store.db_path)
    ((meta,),) = con.execute(
        "SELECT hash FROM arrays WHERE view='__meta__' AND name='labels' AND shard=2"
    ).fetchall()
    con.close()
    stored.write(store.root, meta, b"\x93NUMPY garbage")
    fresh = StoredArrays(store, m.fingerprint(), ds.fingerprint(), recompute)
    np.testing.assert_array_equal(fresh.labels(), labels)  # damaged labels: recomputed
    last = _hashes(store)[-1]
    stored.write(store.root, last, stored.read(store.root, last)[:-4] + b"\0\0\0\0")
    np.testing.assert_array_equal(fresh.logits(), good)  # damaged logits: recomputed
    assert len(runs) == 2 and all(r.shards_computed == 1 for r in runs)


def test_a_damaged_world_split_is_rebuilt(tmp_path, tiny_world, stored):
    store = Store(tmp_path / "s")
    world = SyntheticWorld(tiny_world.config, store)
    images = np.array(world.split("sketch")["images"])
    con = sqlite3.connect(store.db_path)
    digest = con.execute(
        "SELECT hash FROM blobs WHERE key LIKE '%/sketch' AND name='images'"
    ).fetchone()[0]
    con.close()
    data = bytearray(stored.read(store.root, digest))
    data[-100:] = bytes(100)
    stored.write(store.root, digest, bytes(data))
    again = SyntheticWorld(tiny_world.config, store)  # a new process, in effect
    np.testing.assert_array_equal(np.array(again.split("sketch")["images"]), images)
    assert store.incidents and "world blob" in store.incidents[0]


def test_arrays_round_trip_exactly(tmp_path, storage, stored):
    d = tmp_path / "s"
    store = Store(d, **storage)
    for a in (
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
        np.zeros((0, 5), np.float32),
        np.array([True, False]),
        np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8")]),
        np.array(2.5),
    ):
        digest = store.put_array(a)
        buf = io.BytesIO()
        np.save(buf, np.array(a, order="C"), allow_pickle=False)
        assert stored.read(d, digest) == buf.getvalue()  # np.save's bytes
        assert stored.where(d, digest) == ("inline" if storage == {} else "file")
        assert hashlib.sha256(buf.getvalue()).hexdigest() == digest
        # from memory (this process wrote it) and from the store (another one reads it)
        for got in (store.get_array(digest), Store(d).get_array(digest)):
            np.testing.assert_array_equal(got, a)
            assert got.dtype == a.dtype and got.shape == a.shape and got.flags.writeable


# ----------------------------------------------------------------------------- verify and gc
def _cli(*args: str):
    return RUNNER.invoke(app, list(args))


def test_verify_lists_bad_arrays_with_their_keys_and_repair_forgets_them(computed, stored):
    store, ds, models = computed
    assert store.verify().ok
    res = _cli("store", "verify", str(store.root))
    assert res.exit_code == 0 and "0 bad" in res.output, res.output
    hashes = _hashes(store)
    stored.write(store.root, hashes[0], b"x" * 10)
    stored.delete(store.root, hashes[1])
    report = store.verify()
    assert len(report.problems) == 2 and report.checked > 10
    assert {p.reason.split()[0] for p in report.problems} == {"is", "its"}
    res = _cli("store", "verify", str(store.root))
    out = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "2 bad" in out and out.count("view 'clean', shard 0") == 2 and "--repair" in out
    res = _cli("store", "verify", str(store.root), "--repair")
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "quarantined 2 array(s)" in out, res.output
    assert "next study on this store recomputes them" in out
    assert store.verify().ok
    assert (store.root / "quarantine" / f"{hashes[0]}.npy").read_bytes() == b"x" * 10
    # the next run recomputes the forgotten shard (shard 0 of both models) and nothing else
    rep = Engine(store, batch_size=8, shard_size=16).run(ds, [EngineJob(m) for m in models])
    assert rep.shards_computed == 1 and rep.forward_passes == 2 * 16


def _study(tmp_path: Path, world, zoo_dir: Path, name: str = "s") -> Path:
    data = {
        "name": name,
        "store": str(tmp_path / "store"),
        "output": str(tmp_path / f"out-{name}"),
        "world": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(world.config).items()
        },
        "models": [{"source": "zoo", "path": str(zoo_dir)}],
        "datasets": [{"world": ["val"]}],
        "measures": ["accuracy"],
        "engine": {"num_workers": 0, "shard_size": 16},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_verify_repair_with_the_study_recomputes_at_once(
    tmp_path, tiny_world, tiny_zoo_dir, stored
):
    study = _study(tmp_path, tiny_world, tiny_zoo_dir)
    assert _cli("study", str(study), "--no-report").exit_code == 0
    store = Store(tmp_path / "store")
    before = store.results()
    digest = _hashes(store)[2]
    stored.write(store.root, digest, stored.read(store.root, digest)[::-1])
    res = _cli("store", "verify", str(study), "--repair")
    out = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "1 bad" in out and "recomputing them" in out and "repaired:" in out
    assert store.verify().ok
    pd.testing.assert_frame_equal(store.results(), before)


def test_gc_drops_only_unreferenced_old_arrays(computed, stored):
    store, _, _ = computed
    orphan = store.put_array(np.arange(7))  # written, never indexed (a killed run)
    kept = _hashes(store)
    assert store.verify().unreferenced == 1
    assert store.gc().objects == 0  # too young: a writer may be about to index it
    stored.age(store.root, orphan, 7200)
    old = time.time() - 7200
    tmp = store.objects_dir / "ab" / ".tmp-leftover.npy"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_bytes(b"partial")
    os.utime(tmp, (old, old))
    dry = store.gc(dry_run=True)
    assert dry.objects == 1 and dry.temp_files == 1 and stored.exists(store.root, orphan)
    assert dry.nbytes == len(stored.read(store.root, orphan))
    res = _cli("store", "gc", str(store.root))
    assert res.exit_code == 0 and "dropped 1 unreferenced" in res.output, res.output
    assert not stored.exists(store.root, orphan) and not tmp.exists()
    assert all(stored.exists(store.root, h) for h in kept)
    assert store.verify().ok and store.verify().unreferenced == 0
    # nothing of the orphan is left in the index either
    con = sqlite3.connect(store.db_path)
    assert con.execute("SELECT COUNT(*) FROM objects WHERE hash=?", (orphan,)).fetchone() == (0,)
    con.close()


def test_store_commands_say_what_they_need(tmp_path):
    res = _cli("store", "verify", str(tmp_path))
    assert res.exit_code == 2 and "neither a store directory" in res.output


# ----------------------------------------------------------------------------- schema, modes
_V3 = """
CREATE TABLE results (
    model TEXT NOT NULL, model_fp TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_fp TEXT NOT NULL, measure TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    created REAL NOT NULL, PRIMARY KEY (model, dataset, measure, name));
CREATE TABLE shards (model_fp TEXT NOT NULL, dataset_fp TEXT NOT NULL, view TEXT NOT NULL,
    engine_version TEXT NOT NULL, shard INTEGER NOT NULL, n_shards INTEGER NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (model_fp, dataset_fp, view, engine_version, shard));
PRAGMA user_version=3;
"""


def test_an_old_store_is_upgraded_and_keeps_its_results(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    con = sqlite3.connect(root / "store.sqlite")
    con.executescript(_V3)
    con.execute("INSERT INTO results VALUES ('m','fpA','d','dfp','acc','acc',0.25,1.0)")
    con.commit()
    con.close()
    store = Store(root)
    con = sqlite3.connect(root / "store.sqlite")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    con.close()
    assert store.results()["value"].tolist() == [0.25]
    # the same names for other weights are a row of their own now
    row = {"model": "m", "dataset": "d", "dataset_fp": "dfp", "measure": "acc", "name": "acc"}
    store.put_results([{**row, "model_fp": "fpB", "value": 0.75}])
    assert sorted(store.results()["value"]) == [0.25, 0.75]
    scoped = store.scoped({"m": "fpB"}, {"d": "dfp"})
    assert scoped.results()["value"].tolist() == [0.75]
    assert Store(root).results().shape[0] == 2  # opening again changes nothing


def test_a_store_from_a_newer_robustlens_is_a_clear_error(tmp_path):
    Store(tmp_path / "s")
    con = sqlite3.connect(tmp_path / "s" / "store.sqlite")
    con.execute("PRAGMA user_version=99")
    con.close()
    with pytest.raises(StoreError, match=r"newer robustlens \(schema 99"):
        Store(tmp_path / "s")


def test_a_read_only_store_reads_and_refuses_writes(computed):
    store, ds, models = computed
    store.put_results(
        [
            {
                "model": "m",
                "model_fp": "f",
                "dataset": "d",
                "dataset_fp": "g",
                "measure": "a",
                "name": "b",
                "value": 1.0,
            }
        ]
    )
    store.close()
    for f in ("store.sqlite-wal", "store.sqlite-shm"):  # as on a read-only mount
        (store.root / f).unlink(missing_ok=True)
    ro = Store(store.root, readonly=True)
    assert ro.readonly and ro.results()["value"].tolist() == [1.0]
    a = StoredArrays(ro, models[0].fingerprint(), ds.fingerprint())
    assert a.logits().shape == (len(ds), 4) and ro.verify().ok
    with pytest.raises(ReadOnlyStoreError, match=r"read-only.*report.*export"):
        ro.put_results([{"model": "m", "model_fp": "f", "dataset": "d", "dataset_fp": "g",
                         "measure": "a", "name": "c", "value": 2.0}])  # fmt: skip
    with pytest.raises(ReadOnlyStoreError):
        Engine(ro).run(ds, [EngineJob(models[0], ("gray",))])


def test_stored_files_respect_the_umask(tmp_path, stored):
    old = os.umask(0o002)
    try:
        store = Store(tmp_path / "s", inline_bytes=0)
        digest = store.put_array(np.arange(3))
    finally:
        os.umask(old)
    assert stored.file(store.root, digest).stat().st_mode & 0o777 == 0o664
    assert store.db_path.stat().st_mode & 0o777 == 0o664


def test_each_study_reads_its_own_numbers(tmp_path, tiny_world, tiny_zoo_dir):
    """Two studies on one store: results are keyed by fingerprints, each plan records its own."""
    a = _study(tmp_path, tiny_world, tiny_zoo_dir, "a")
    assert _cli("study", str(a), "--no-report").exit_code == 0
    plan = read_plan(tmp_path / "out-a")
    fps = plan["fingerprints"]
    assert set(fps["models"]) == {"tiny-cnn", "tiny-resnet", "tiny-mixer"}
    assert set(fps["datasets"]) == {"world/val", "*"}
    store = Store(tmp_path / "store")
    # a row of another study: same names, other weights
    row = store.results().iloc[0].to_dict()
    store.put_results([{**row, "model_fp": "other-weights", "value": 0.123}])
    assert 0.123 in store.results()["value"].tolist()
    assert 0.123 not in study_store(store, plan).results()["value"].tolist()
    res = _cli("report", str(a))
    assert res.exit_code == 0, res.output
    exported = pd.read_csv(tmp_path / "out-a" / "results_long.csv")
    assert 0.123 not in exported["value"].tolist()
    assert json.loads((tmp_path / "out-a" / "study_summary.json").read_text())["fingerprints"]


def test_an_array_this_process_wrote_is_served_from_the_bytes_it_hashed(tmp_path, storage, stored):
    a, b = np.arange(10.0), np.arange(10.0) + 1  # 208 bytes each as .npy
    store = Store(tmp_path / "s", recent_bytes=300, **storage)
    da = store.put_array(a)
    stored.write(store.root, da, b"\x93NUMPY garbage")  # the bytes are damaged afterwards
    got = store.get_array(da)
    np.testing.assert_array_equal(got, a)  # what was computed, not what the disk now holds
    got[:] = -1  # each reader gets its own copy
    np.testing.assert_array_equal(store.get_array(da), a)
    # (an array in the index database has its size recorded with it: it reads as truncated)
    with pytest.raises(CorruptArrayError, match=r"does not match|is truncated"):
        Store(tmp_path / "s").get_array(da)  # another process reads the bytes, and checks them
    # at most recent_bytes are kept: the oldest array goes first, and is then read from disk
    db = store.put_array(b)
    da = store.put_array(a)  # written again (the damaged file was quarantined)
    dc = store.put_array(a + 2)
    for digest in (da, db, dc):
        stored.write(store.root, digest, b"\x93NUMPY garbage")
    np.testing.assert_array_equal(store.get_array(dc), a + 2)
    for digest in (db, da):
        with pytest.raises(CorruptArrayError):
            store.get_array(digest)
    none = Store(tmp_path / "t", recent_bytes=0, **storage)
    d0 = none.put_array(a)
    stored.write(none.root, d0, b"\x93NUMPY garbage")
    with pytest.raises(CorruptArrayError):
        none.get_array(d0)


def test_an_object_directory_removed_since_it_was_made_is_made_again(tmp_path, stored):
    store = Store(tmp_path / "s", recent_bytes=0, inline_bytes=0)
    a = np.arange(5)
    digest = store.put_array(a)
    shutil.rmtree(stored.file(store.root, digest).parent)  # by another process, or by hand
    assert store.put_array(a) == digest
    np.testing.assert_array_equal(Store(tmp_path / "s").get_array(digest), a)


def test_a_full_database_is_the_full_disk_error_and_writes_nothing(tmp_path):
    """SQLite's own "database or disk is full" (here the database may not grow: a small
    array is written into it) reads as a full disk, and the shard is not half there."""
    store = Store(tmp_path / "s")
    with store._connect() as con:
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count={pages}")
    key = ArrayKey("m", "d", "clean")
    with pytest.raises(StoreError, match=r"disk is full.*rerun to resume"):
        store.put_shard(key, 0, 1, {"logits": np.ones((200, 10), np.float32)})
    store.close()
    again = Store(tmp_path / "s")
    assert again.completed_shards(key) == set() and again.stats()["objects"] == 0
