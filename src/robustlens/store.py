"""The result store: a SQLite index plus content-addressed array files.

Layout under ``root``::

    store.sqlite            index (WAL mode, safe for several processes)
    objects/ab/abcdef...npy content-addressed arrays (name = sha256 of the .npy bytes)

Arrays the engine produces are kept per *shard* (a fixed, contiguous slice of a dataset) and
keyed by (model fingerprint, dataset fingerprint, view spec, engine version, shard). A shard is
committed in one SQLite transaction after its files are on disk, so a run killed at any point
leaves either a complete shard or none; starting again redoes only missing shards and yields
identical arrays. Results (one number per model, dataset, measure and name) live in a table
that analysis and report read as pandas frames.

This module and the engine are the only places that touch disk caches.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import StoreError

ENGINE_VERSION = "1"
SCHEMA_VERSION = 3
META_VIEW = "__meta__"  # labels, extra labels and sample ids of a dataset shard

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    hash TEXT PRIMARY KEY, nbytes INTEGER NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS arrays (
    model_fp TEXT NOT NULL, dataset_fp TEXT NOT NULL, view TEXT NOT NULL,
    engine_version TEXT NOT NULL, shard INTEGER NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL, n_rows INTEGER NOT NULL,
    PRIMARY KEY (model_fp, dataset_fp, view, engine_version, shard, name)
);
CREATE TABLE IF NOT EXISTS shards (
    model_fp TEXT NOT NULL, dataset_fp TEXT NOT NULL, view TEXT NOT NULL,
    engine_version TEXT NOT NULL, shard INTEGER NOT NULL, n_shards INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model_fp, dataset_fp, view, engine_version, shard)
);
CREATE TABLE IF NOT EXISTS skipped (
    dataset_fp TEXT NOT NULL, item TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (dataset_fp, item)
);
CREATE TABLE IF NOT EXISTS blobs (
    namespace TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (namespace, key, name)
);
CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL, model_fp TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_fp TEXT NOT NULL, measure TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    created REAL NOT NULL,
    PRIMARY KEY (model, dataset, measure, name)
);
CREATE TABLE IF NOT EXISTS measure_runs (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, model_fp TEXT NOT NULL, measure TEXT NOT NULL,
    outputs TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    fingerprint TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, info TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ArrayKey:
    """Identifies the arrays of one (model, dataset, view)."""

    model_fp: str
    dataset_fp: str
    view: str
    engine_version: str = ENGINE_VERSION

    @property
    def row(self) -> tuple[str, str, str, str]:
        """The key's columns, in the order of :data:`_KEY_WHERE` and the tables."""
        return (self.model_fp, self.dataset_fp, self.view, self.engine_version)


# the rows of one ArrayKey (parameters: ArrayKey.row)
_KEY_WHERE = "model_fp=? AND dataset_fp=? AND view=? AND engine_version=?"
# its arrays in completed shards, as ``a`` (arrays) and ``s`` (shards)
_COMPLETED_ARRAYS = (
    "arrays a JOIN shards s USING (model_fp, dataset_fp, view, engine_version, shard) "
    "WHERE a.model_fp=? AND a.dataset_fp=? AND a.view=? AND a.engine_version=?"
)


def _readonly_hint(path: Path, exc: BaseException) -> StoreError:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return StoreError(
            f"store at {path}: the disk is full ({exc}); free space or point --store elsewhere. "
            "Completed shards are kept; rerun to resume."
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(
            f"store at {path} is not writable ({exc}); choose a writable --store directory"
        )
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        return StoreError(
            f"store at {path} is read-only ({exc}); choose a writable --store directory"
        )
    return StoreError(f"store at {path}: {exc}")


class Store:
    """Content-addressed array store with a SQLite index. Safe for concurrent processes."""

    def __init__(self, root: str | os.PathLike[str], timeout_s: float = 120.0) -> None:
        self.root = Path(root).expanduser().resolve()
        self.objects_dir = self.root / "objects"
        self.db_path = self.root / "store.sqlite"
        self._timeout_s = timeout_s
        try:
            self.objects_dir.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                self._migrate(con)
                con.executescript(_SCHEMA)
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise _readonly_hint(self.root, exc) from exc

    @staticmethod
    def _migrate(con: sqlite3.Connection) -> None:
        """Bring a store written by an older robustlens up to the current schema."""
        version = con.execute("PRAGMA user_version").fetchone()[0]
        has_results = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='results'"
        ).fetchone()
        if has_results and version < 2:
            # v1 keyed results by fingerprints: two study datasets with the same files (say,
            # the same folder in two roles) overwrote each other. v2 keys them by name.
            con.execute("ALTER TABLE results RENAME TO results_v1")
            con.executescript(_SCHEMA)
            con.execute("INSERT OR REPLACE INTO results SELECT * FROM results_v1")
            con.execute("DROP TABLE results_v1")

    # ------------------------------------------------------------------ connection
    def __getstate__(self) -> dict[str, Any]:
        # connections do not cross processes; a copy opens its own
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The connection of this thread and process, opened on first use and then reused.

        Opening SQLite (and setting WAL) costs about a millisecond, which dominated cached
        re-runs that make thousands of small queries. A forked child gets a fresh one.
        """
        local = self.__dict__.get("_local")
        if local is None:
            local = self.__dict__["_local"] = threading.local()
        con = getattr(local, "con", None)
        if con is None or getattr(local, "pid", None) != os.getpid():
            con = sqlite3.connect(self.db_path, timeout=self._timeout_s, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
            except BaseException:
                con.close()
                raise
            local.con, local.pid = con, os.getpid()
        yield con

    def close(self) -> None:
        """Close this thread's connection (reopened on next use)."""
        local = self.__dict__.get("_local")
        con = getattr(local, "con", None) if local is not None else None
        if con is not None:
            con.close()
            local.con = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as con:
            try:
                con.execute("BEGIN IMMEDIATE")
                yield con
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ objects
    def _object_path(self, digest: str) -> Path:
        return self.objects_dir / digest[:2] / f"{digest}.npy"

    def put_array(self, array: np.ndarray) -> str:
        """Write one array as a content-addressed .npy file (atomic rename); return its hash."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        data = buf.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        path = self._object_path(digest)
        if path.exists() and path.stat().st_size == len(data):
            return digest
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise _readonly_hint(self.root, exc) from exc
        return digest

    def get_array(self, digest: str, mmap: bool = False) -> np.ndarray:
        path = self._object_path(digest)
        if not path.exists():
            raise StoreError(
                f"store at {self.root}: object {digest[:12]} is indexed but its file is missing; "
                "the store was modified by hand. Delete the store directory to rebuild it."
            )
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)

    def _index_object(self, con: sqlite3.Connection, digest: str, now: float) -> None:
        con.execute(
            "INSERT OR IGNORE INTO objects VALUES (?,?,?)",
            (digest, self._object_path(digest).stat().st_size, now),
        )

    # ------------------------------------------------------------------ shards
    def completed_shards(self, key: ArrayKey) -> set[int]:
        with self._connect() as con:
            rows = con.execute(f"SELECT shard FROM shards WHERE {_KEY_WHERE}", key.row).fetchall()
        return {r[0] for r in rows}

    def completed_shards_many(self, keys: Iterable[ArrayKey]) -> dict[ArrayKey, set[int]]:
        """Completed shards of many keys in one query (the planner asks for hundreds)."""
        keys = list(keys)
        out: dict[ArrayKey, set[int]] = {k: set() for k in keys}
        if not keys:
            return out
        dataset_fps = sorted({k.dataset_fp for k in keys})
        with self._connect() as con:
            for dfp in dataset_fps:
                for m, v, ev, s in con.execute(
                    "SELECT model_fp, view, engine_version, shard FROM shards WHERE dataset_fp=?",
                    (dfp,),
                ):
                    k = ArrayKey(m, dfp, v, ev)
                    if k in out:
                        out[k].add(s)
        return out

    def shards_with_array(self, key: ArrayKey, name: str) -> set[int]:
        """Completed shards of ``key`` that hold the array ``name`` (e.g. ``features``)."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT a.shard FROM {_COMPLETED_ARRAYS} AND a.name=?", (*key.row, name)
            ).fetchall()
        return {r[0] for r in rows}

    def put_shard(
        self, key: ArrayKey, shard: int, n_shards: int, arrays: Mapping[str, np.ndarray]
    ) -> None:
        """Store the arrays of one shard and mark it complete, atomically."""
        hashes = {name: (self.put_array(a), len(a)) for name, a in arrays.items()}
        now = time.time()
        try:
            with self._transaction() as con:
                for name, (digest, n_rows) in hashes.items():
                    self._index_object(con, digest, now)
                    con.execute(
                        "INSERT OR REPLACE INTO arrays VALUES (?,?,?,?,?,?,?,?)",
                        (*key.row, shard, name, digest, n_rows),
                    )
                con.execute(
                    "INSERT OR REPLACE INTO shards VALUES (?,?,?,?,?,?,?)",
                    (*key.row, shard, n_shards, now),
                )
        except sqlite3.Error as exc:
            raise _readonly_hint(self.root, exc) from exc

    def has(self, key: ArrayKey, name: str | None = None) -> bool:
        """True when every shard of ``key`` is complete (and holds ``name`` if given)."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT shard, n_shards FROM shards WHERE {_KEY_WHERE}", key.row
            ).fetchall()
            if not rows or len(rows) != rows[0][1]:
                return False
            if name is None:
                return True
            n = con.execute(
                f"SELECT COUNT(*) FROM arrays WHERE {_KEY_WHERE} AND name=?", (*key.row, name)
            ).fetchone()[0]
        return n == len(rows)

    def load(self, key: ArrayKey, name: str) -> np.ndarray:
        """Concatenate the shards of one array in shard order. Missing shards are an error."""
        with self._connect() as con:
            rows = con.execute(
                f"SELECT a.shard, a.hash, s.n_shards FROM {_COMPLETED_ARRAYS} AND a.name=? "
                "ORDER BY a.shard",
                (*key.row, name),
            ).fetchall()
        if not rows:
            raise KeyError(
                f"no array {name!r} for view {key.view!r} (model {key.model_fp[:12]}, dataset "
                f"{key.dataset_fp[:12]}) in the store; run the engine for it first"
            )
        n_shards = rows[0][2]
        if len(rows) != n_shards:
            raise KeyError(
                f"array {name!r} for view {key.view!r} is incomplete: {len(rows)} of {n_shards} "
                "shards; rerun to resume"
            )
        return np.concatenate([self.get_array(h) for _, h, _ in rows], axis=0)

    def shard_arrays(self, key: ArrayKey) -> list[tuple[int, int, dict[str, np.ndarray]]]:
        """Every completed shard of ``key`` as ``(shard, n_shards, {name: array})``, in order.

        What :meth:`put_shard` wrote, read back whole: another store can take it as it is.
        """
        with self._connect() as con:
            rows = con.execute(
                f"SELECT a.shard, s.n_shards, a.name, a.hash FROM {_COMPLETED_ARRAYS} "
                "ORDER BY a.shard, a.name",
                key.row,
            ).fetchall()
        shards: dict[int, tuple[int, dict[str, np.ndarray]]] = {}
        for shard, n_shards, name, digest in rows:
            shards.setdefault(shard, (n_shards, {}))[1][name] = self.get_array(digest)
        return [(shard, n, arrays) for shard, (n, arrays) in shards.items()]

    # ------------------------------------------------------------------ skipped items
    def put_skipped(self, dataset_fp: str, items: Iterable[tuple[str, str]]) -> None:
        items = list(items)
        if not items:
            return
        with self._transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO skipped VALUES (?,?,?)",
                [(dataset_fp, i, r) for i, r in items],
            )

    def skipped(self, dataset_fp: str) -> list[tuple[str, str]]:
        with self._connect() as con:
            return [
                (i, r)
                for i, r in con.execute(
                    "SELECT item, reason FROM skipped WHERE dataset_fp=? ORDER BY item",
                    (dataset_fp,),
                )
            ]

    # ------------------------------------------------------------------ blobs
    def put_blob(self, namespace: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Named arrays under (namespace, key), committed together (e.g. a world split)."""
        hashes = {name: self.put_array(a) for name, a in arrays.items()}
        now = time.time()
        with self._transaction() as con:
            for name, digest in hashes.items():
                self._index_object(con, digest, now)
                con.execute(
                    "INSERT OR REPLACE INTO blobs VALUES (?,?,?,?)", (namespace, key, name, digest)
                )

    def get_blob(self, namespace: str, key: str, mmap: bool = True) -> dict[str, np.ndarray] | None:
        with self._connect() as con:
            rows = con.execute(
                "SELECT name, hash FROM blobs WHERE namespace=? AND key=?", (namespace, key)
            ).fetchall()
        if not rows:
            return None
        return {name: self.get_array(h, mmap=mmap) for name, h in rows}

    # ------------------------------------------------------------------ measure runs
    def put_measure_run(
        self, key: str, model: str, model_fp: str, measure: str, outputs: Mapping[str, Any]
    ) -> None:
        """Record that ``measure`` ran for ``model`` under ``key`` and what it wrote."""
        try:
            with self._transaction() as con:
                con.execute(
                    "INSERT OR REPLACE INTO measure_runs VALUES (?,?,?,?,?,?)",
                    (key, model, model_fp, measure, json.dumps(dict(outputs)), time.time()),
                )
        except sqlite3.Error as exc:
            raise _readonly_hint(self.root, exc) from exc

    def measure_run(self, key: str) -> dict[str, Any] | None:
        """What a recorded measure run wrote (``None`` if ``key`` never ran)."""
        with self._connect() as con:
            row = con.execute("SELECT outputs FROM measure_runs WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def count_results(
        self, model: str, model_fp: str, measure: str, datasets: Iterable[str]
    ) -> int:
        """Result rows of one model's measure on ``datasets``, for these exact weights."""
        datasets = list(datasets)
        with self._connect() as con:
            return con.execute(
                "SELECT COUNT(*) FROM results WHERE model=? AND model_fp=? AND measure=? "
                f"AND dataset IN ({','.join('?' * len(datasets))})",
                (model, model_fp, measure, *datasets),
            ).fetchone()[0]

    # ------------------------------------------------------------------ entities
    def register(self, fingerprint: str, kind: str, name: str, info: Mapping[str, Any]) -> None:
        """Record what a fingerprint is (model or dataset name and config) for traceability."""
        with self._transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO entities VALUES (?,?,?,?)",
                (fingerprint, kind, name, json.dumps(dict(info), sort_keys=True, default=str)),
            )

    # ------------------------------------------------------------------ results
    def put_results(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Upsert result rows (keys: model, model_fp, dataset, dataset_fp, measure, name, value)."""
        now = time.time()
        values = [
            (
                r["model"],
                r["model_fp"],
                r["dataset"],
                r["dataset_fp"],
                r["measure"],
                r["name"],
                None if r["value"] is None or not np.isfinite(r["value"]) else float(r["value"]),
                now,
            )
            for r in rows
        ]
        if not values:
            return 0
        try:
            with self._transaction() as con:
                con.executemany("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)", values)
        except sqlite3.Error as exc:
            raise _readonly_hint(self.root, exc) from exc
        return len(values)

    def drop_stale_results(self, model: str, model_fp: str, dataset_fps: Mapping[str, str]) -> int:
        """Delete results of ``model`` computed for other weights or other dataset contents.

        Results are read by name in tables and reports; after a model is retrained or a dataset
        changes, the rows of the old fingerprints would otherwise shadow the new ones.
        """
        with self._transaction() as con:
            n = con.execute(
                "DELETE FROM results WHERE model=? AND model_fp<>?", (model, model_fp)
            ).rowcount
            for ds, fp in dataset_fps.items():
                n += con.execute(
                    "DELETE FROM results WHERE model=? AND dataset=? AND dataset_fp<>?",
                    (model, ds, fp),
                ).rowcount
        return n

    def results(
        self,
        models: Iterable[str] | None = None,
        datasets: Iterable[str] | None = None,
        measures: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Results as a long pandas DataFrame, filtered in SQL (never loads the whole table)."""
        clauses, params = [], []
        for col, vals in (("model", models), ("dataset", datasets), ("measure", measures)):
            if vals is not None:
                vals = list(vals)
                clauses.append(f"{col} IN ({','.join('?' * len(vals))})")
                params.extend(vals)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as con:
            return pd.read_sql_query(
                "SELECT model, model_fp, dataset, dataset_fp, measure, name, value FROM results"
                + where
                + " ORDER BY model, dataset, measure, name",
                con,
                params=params,
            )

    def stats(self) -> dict[str, int]:
        with self._connect() as con:
            return {
                t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("objects", "arrays", "shards", "results", "blobs")
            }


class StoredArrays:
    """Read access to what the engine stored for one (model, dataset): what measures receive."""

    def __init__(self, store: Store, model_fp: str, dataset_fp: str) -> None:
        self.store = store
        self.model_fp = model_fp
        self.dataset_fp = dataset_fp
        self._meta: dict[str, np.ndarray] = {}

    def _m(self, name: str) -> np.ndarray:
        if name not in self._meta:
            self._meta[name] = self.store.load(ArrayKey("", self.dataset_fp, META_VIEW), name)
        return self._meta[name]

    def labels(self) -> np.ndarray:
        return self._m("labels")

    def sample_ids(self) -> np.ndarray:
        return self._m("sample_ids")

    def index(self) -> np.ndarray:
        return self._m("index")

    def extra(self, name: str) -> np.ndarray:
        return self._m(name)

    def acceptable_labels(self) -> np.ndarray | None:
        """(N, L) labels that count as correct, padded with -1; ``None`` if the dataset has none.

        See :meth:`robustlens.data.base.Dataset.acceptable_labels`.
        """
        key = ArrayKey("", self.dataset_fp, META_VIEW)
        return self._m("acceptable") if self.store.has(key, "acceptable") else None

    def has(self, view: str, name: str = "logits") -> bool:
        return self.store.has(ArrayKey(self.model_fp, self.dataset_fp, view), name)

    def logits(self, view: str = "clean") -> np.ndarray:
        return self.store.load(ArrayKey(self.model_fp, self.dataset_fp, view), "logits")

    def features(self, view: str = "clean") -> np.ndarray:
        return self.store.load(ArrayKey(self.model_fp, self.dataset_fp, view), "features")
