"""The result store: a SQLite index plus content-addressed arrays.

Layout under ``root``::

    store.sqlite            index (WAL mode, safe for several processes), and the bytes of
                            the small arrays (``inline_bytes``, 64 KiB by default)
    objects/ab/abcdef...npy content-addressed arrays (name = sha256 of the .npy bytes)
    quarantine/             arrays that failed their check, moved aside (never deleted)

An array is addressed by the sha256 of its ``.npy`` bytes wherever it lives. Small ones (a
tiny dataset's logits) are rows of the index database rather than files: creating a file
cost 0.3-1 ms of kernel time on the 2-core test machine, an insert of a few kilobytes
0.05 ms, and a study of many small datasets writes thousands of them.

Arrays the engine produces are kept per *shard* (a fixed, contiguous slice of a dataset) and
keyed by (model fingerprint, dataset fingerprint, view spec, engine version, shard). A shard is
committed in one SQLite transaction after its files are on disk, so a run killed at any point
leaves either a complete shard or none; starting again redoes only missing shards and yields
identical arrays. Results (one number per model, dataset, measure and name) live in a table
keyed by the model's and the dataset's names *and fingerprints*, so studies that share a store
never overwrite each other's numbers; :meth:`Store.scoped` gives the view of one study.

Every array is checked before it is used: its file is hashed and compared with its name (the
sha256 the file was written under). A file that is missing, truncated or overwritten is
reported with the entries that use it, moved to ``quarantine/`` and its entries are removed,
so the engine computes it again; it is never served (:class:`CorruptArrayError`). Checking
costs one sha256 per read, under 1% of a study's time (measured in :meth:`Store.get_array`).
An array this process wrote is served from the bytes it hashed while writing, as long as
they fit in the store's ``recent_bytes`` (the measures read what the engine just computed);
those bytes are the digest's by construction, whatever happens to the file afterwards.
:meth:`Store.verify` checks a whole store, :meth:`Store.gc` drops arrays nothing refers to.

A store whose directory or database cannot be written (a read-only mount, another user's
files) opens read-only: results, arrays and skipped files can be read (reports and exports
work), and any write raises :class:`ReadOnlyStoreError` saying so.

This module and the engine are the only places that touch disk caches.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import sqlite3
import threading
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import StoreError

__all__ = [
    "ENGINE_VERSION",
    "META_VIEW",
    "SCHEMA_VERSION",
    "ArrayKey",
    "CorruptArrayError",
    "GcReport",
    "Problem",
    "ReadOnlyStoreError",
    "ShardWriter",
    "Store",
    "StoredArrays",
    "VerifyReport",
]


def pixel_code_version(root: Path | None = None) -> str:
    """A hash of the code that turns files into the pixels and views models see, and of the
    code that runs the models on them (the engine, the adapter, BatchNorm folding).

    Part of every array key: arrays computed by an earlier version of a view (a corrected
    filter, a corruption made faithful to its reference) are never served for the new one;
    they are computed again. Read from the files, not imported: the store sits below them.
    """
    root = root or Path(__file__).resolve().parent
    files = sorted(
        [
            root / "engine.py",
            root / "data" / "imagefolder.py",
            root / "models" / "base.py",
            root / "models" / "folding.py",
            *root.glob("views/*.py"),
            *root.glob("transforms/*.py"),
        ]
    )
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


#: version of what the engine stores: the key format, then the pixel and view code
ENGINE_VERSION = f"2-{pixel_code_version()}"
#: 4: results keyed by (model, model_fp, dataset, dataset_fp, measure, name); 5: small
#: arrays kept in the ``inline_objects`` table (an older robustlens would find no file)
SCHEMA_VERSION = 5
#: arrays of at most this many bytes (as ``.npy``) are kept in the index database
INLINE_BYTES = 64 << 10
META_VIEW = "__meta__"  # labels, extra labels and sample ids of a dataset shard
QUARANTINE = "quarantine"
#: files of unfinished writes (and unreferenced arrays) younger than this are left to gc
GC_GRACE_S = 3600.0
#: report fragments not used for this long are dropped (30 days)
FRAGMENT_KEEP_S = 30 * 86400.0
#: a file digest recorded less than this after the file's modification time is not trusted
RACY_S = 2.0
#: how long shards finished on the CPU may wait to be committed together (ShardWriter)
COMMIT_INTERVAL_S = 1.0

_TABLES = (
    """CREATE TABLE IF NOT EXISTS objects (
    hash TEXT PRIMARY KEY, nbytes INTEGER NOT NULL, created REAL NOT NULL)""",
    # the .npy bytes of small arrays (an objects row each, written in the same transaction)
    """CREATE TABLE IF NOT EXISTS inline_objects (
    hash TEXT PRIMARY KEY, body BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS arrays (
    model_fp TEXT NOT NULL, dataset_fp TEXT NOT NULL, view TEXT NOT NULL,
    engine_version TEXT NOT NULL, shard INTEGER NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL, n_rows INTEGER NOT NULL,
    PRIMARY KEY (model_fp, dataset_fp, view, engine_version, shard, name))""",
    "CREATE INDEX IF NOT EXISTS arrays_hash ON arrays (hash)",
    """CREATE TABLE IF NOT EXISTS shards (
    model_fp TEXT NOT NULL, dataset_fp TEXT NOT NULL, view TEXT NOT NULL,
    engine_version TEXT NOT NULL, shard INTEGER NOT NULL, n_shards INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model_fp, dataset_fp, view, engine_version, shard))""",
    """CREATE TABLE IF NOT EXISTS skipped (
    dataset_fp TEXT NOT NULL, item TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (dataset_fp, item))""",
    """CREATE TABLE IF NOT EXISTS blobs (
    namespace TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (namespace, key, name))""",
    """CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL, model_fp TEXT NOT NULL, dataset TEXT NOT NULL,
    dataset_fp TEXT NOT NULL, measure TEXT NOT NULL, name TEXT NOT NULL, value REAL,
    created REAL NOT NULL,
    PRIMARY KEY (model, model_fp, dataset, dataset_fp, measure, name))""",
    """CREATE TABLE IF NOT EXISTS measure_runs (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, model_fp TEXT NOT NULL, measure TEXT NOT NULL,
    outputs TEXT NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS entities (
    fingerprint TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, info TEXT NOT NULL)""",
    # report fragments (a section's HTML) by the sha256 of what drew them; checked on read
    """CREATE TABLE IF NOT EXISTS fragments (
    key TEXT PRIMARY KEY, hash TEXT NOT NULL, body BLOB NOT NULL, created REAL NOT NULL,
    used REAL NOT NULL)""",
    # what a file's content hashed to, by its stat signature (see Store.file_digest)
    """CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY, signature TEXT NOT NULL, digest TEXT NOT NULL,
    recorded REAL NOT NULL)""",
    # derived fingerprints (a dataset's, a model's) by the signature of what they derive from
    """CREATE TABLE IF NOT EXISTS memo (
    namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, recorded REAL NOT NULL,
    PRIMARY KEY (namespace, key))""",
)
_RESULT_COLUMNS = "model, model_fp, dataset, dataset_fp, measure, name, value, created"


class CorruptArrayError(StoreError):
    """A stored array's file is missing or does not match its hash (truncated, overwritten).

    By the time it is raised the file is in ``quarantine/`` and the entries that used it are
    gone from the index: running the engine again recomputes them.

    Attributes:
        digest: the array's hash (its name in ``objects/``).
        reason: what is wrong (``missing``, ``truncated``, ``content does not match``).
        keys: the index entries that used the array, in words.
    """

    def __init__(self, message: str, digest: str, reason: str, keys: list[str]) -> None:
        super().__init__(message)
        self.digest, self.reason, self.keys = digest, reason, keys


class ReadOnlyStoreError(StoreError):
    """A write to a store that was opened read-only."""


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


@dataclass(frozen=True)
class Problem:
    """One bad array found by :meth:`Store.verify` (or when it was read)."""

    digest: str
    reason: str
    keys: tuple[str, ...]
    path: str

    def line(self) -> str:
        used = "; ".join(self.keys[:3]) + (
            f"; and {len(self.keys) - 3} more" if len(self.keys) > 3 else ""
        )
        return f"{self.digest[:12]} {self.reason}: {used or 'not used by any entry'}"


@dataclass
class VerifyReport:
    """What :meth:`Store.verify` found (and, with ``repair``, did)."""

    root: str
    checked: int = 0
    nbytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    unreferenced: int = 0  # stored arrays that no entry uses (``store gc`` drops them)
    repaired: bool = False
    entries_removed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class GcReport:
    """What :meth:`Store.gc` dropped (or, with ``dry_run``, would drop)."""

    objects: int = 0
    nbytes: int = 0
    temp_files: int = 0
    quarantined: int = 0
    dry_run: bool = False


# the rows of one ArrayKey (parameters: ArrayKey.row)
_KEY_WHERE = "model_fp=? AND dataset_fp=? AND view=? AND engine_version=?"
# its arrays in completed shards, as ``a`` (arrays) and ``s`` (shards)
_COMPLETED_ARRAYS = (
    "arrays a JOIN shards s USING (model_fp, dataset_fp, view, engine_version, shard) "
    "WHERE a.model_fp=? AND a.dataset_fp=? AND a.view=? AND a.engine_version=?"
)


_TMP_COUNT = itertools.count()
#: one shard for :meth:`Store.put_shards`: (key, shard, number of shards, arrays by name)
ShardArrays = tuple["ArrayKey", int, int, Mapping[str, np.ndarray]]


def _store_error(path: Path, exc: BaseException) -> StoreError:
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
        isinstance(exc, sqlite3.OperationalError)
        and (
            getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or "database or disk is full" in str(exc)
        )
    )
    if full:
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


_readonly_hint = _store_error  # the former name


def _file_mode() -> int:
    """Permissions of a new stored file: ``0o666`` less the process umask (as ``open`` does).

    ``tempfile.mkstemp`` creates files as 0600, which made a store shared by a team unreadable
    to everyone but its writer. The umask is read from ``/proc`` where there is one (setting it
    to read it is not thread-safe).
    """
    umask = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _writable(path: Path) -> bool:
    """Whether this process may create and change files in the directory ``path``."""
    return os.access(path, os.W_OK | os.X_OK)


def _parse_npy(data: bytearray) -> np.ndarray:
    """The array in a ``.npy`` file's bytes, sharing them (writable, no copy, no pickle)."""
    major = data[6] if data[:6] == b"\x93NUMPY" else 0
    start = 10 if major == 1 else 12
    end = start + int.from_bytes(data[8:start], "little")
    shape, fortran, dtype = _npy_header(bytes(data[:end]))
    count = math.prod(shape)  # (np.prod of a tuple costs microseconds a read adds up)
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=end)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def npy_bytes(array: np.ndarray) -> bytes:
    """The bytes ``np.save`` writes for ``array`` (C order, no pickle), whose sha256 names
    it in the store. The header is made once per dtype and shape: numpy formats each one
    from a dict's repr, a tenth of a millisecond that thousands of small arrays add up."""
    arr = np.asarray(array)
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # (which would make a 0-d array 1-d)
    if arr.dtype.hasobject:
        raise ValueError("object arrays are never stored")
    head = _npy_save_header(arr.dtype, arr.shape)
    if head is None:  # a header numpy writes in a later format version: as np.save does
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    return head + arr.tobytes()


@functools.lru_cache(maxsize=1024)
def _npy_save_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes | None:
    """The header ``np.save`` writes for a C-order array of this dtype and shape (format
    1.0, as for every array short of a huge structured dtype; ``None`` otherwise)."""
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": shape,
    }
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, then writes version 2.0 or 3.0
            np.lib.format.write_array_header_1_0(buf, header)
    except (ValueError, UserWarning):
        return None
    return buf.getvalue()


@functools.lru_cache(maxsize=1024)
def _npy_header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of a ``.npy`` header (magic included); remembered,
    because the arrays of a study share a few shapes and numpy parses each header with
    ``ast.literal_eval``."""
    stream = io.BytesIO(head)
    major, _ = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read_header(stream)
    if dtype.hasobject:
        raise ValueError("object arrays are never stored")
    return shape, fortran, dtype


class Store:
    """Content-addressed array store with a SQLite index. Safe for concurrent processes.

    Args:
        root: the store directory (created if missing).
        timeout_s: how long a writer waits for another one's transaction.
        readonly: open for reading only; ``None`` (default): read-only exactly when the
            directory or the database cannot be written.
        recent_bytes: how many bytes of the arrays this process wrote are kept in memory
            (least recently used dropped first) to serve later reads without reading and
            hashing their files; 0 keeps none.
        inline_bytes: arrays of at most this many bytes (as ``.npy``) are written into the
            index database instead of a file each; 0 writes every array as a file. Either
            way an array is read from wherever it is, and checked against its hash.

    Attributes:
        readonly: the store was opened read-only (every write raises
            :class:`ReadOnlyStoreError`).
        incidents: what went wrong with stored arrays in this process (one line each: an
            array quarantined and recomputed), in order.
        on_incident: called with each incident's line as it happens (a study logs them).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        timeout_s: float = 120.0,
        readonly: bool | None = None,
        recent_bytes: int = 256 << 20,
        inline_bytes: int = INLINE_BYTES,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.objects_dir = self.root / "objects"
        self.db_path = self.root / "store.sqlite"
        self._timeout_s = timeout_s
        self.incidents: list[str] = []
        self.on_incident: Callable[[str], None] | None = None
        self._mode = _file_mode()  # of new files: the umask when the store was opened
        self._scope: tuple[dict[str, str], dict[str, str]] | None = None
        self.recent_bytes = recent_bytes
        self.inline_bytes = inline_bytes
        self._init_recent()
        exists = self.db_path.exists()
        if readonly is None:
            readonly = exists and not (
                _writable(self.root)
                and os.access(self.db_path, os.W_OK)
                and (not self.objects_dir.exists() or _writable(self.objects_dir))
            )
        self.readonly = bool(readonly)
        if self.readonly:
            if not exists:
                raise StoreError(
                    f"store at {self.root} does not exist (no store.sqlite); run a study with "
                    "--store pointing there first"
                )
            self._check_version()
            return
        try:
            self.objects_dir.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                self._create(con)
            if not exists:
                with contextlib.suppress(OSError):
                    os.chmod(self.db_path, self._mode)
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise _store_error(self.root, exc) from exc

    # ------------------------------------------------------------------ schema
    def _check_version(self) -> None:
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store at {self.root} was written by a newer robustlens (schema {version}, "
                f"this one reads up to {SCHEMA_VERSION}); upgrade robustlens or use another "
                "--store"
            )

    def _create(self, con: sqlite3.Connection) -> None:
        """Create the tables, or bring a store written by an older robustlens up to date.

        Done in one write transaction, so that two processes opening an old store at once
        migrate it once.
        """
        con.execute("BEGIN IMMEDIATE")
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                con.execute("ROLLBACK")
                self._check_version()
            has_results = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='results'"
            ).fetchone()
            if has_results and version < SCHEMA_VERSION:
                # v1 keyed results by fingerprints only, v2-3 by names only (two studies with
                # one model name for different weights overwrote each other); v4 keys them by
                # both. Every row is kept.
                con.execute("ALTER TABLE results RENAME TO results_old")
            for statement in _TABLES:
                con.execute(statement)
            if has_results and version < SCHEMA_VERSION:
                con.execute(
                    f"INSERT OR REPLACE INTO results ({_RESULT_COLUMNS}) "
                    f"SELECT {_RESULT_COLUMNS} FROM results_old"
                )
                con.execute("DROP TABLE results_old")
            if version != SCHEMA_VERSION:
                con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ connection
    def __getstate__(self) -> dict[str, Any]:
        # connections, locks and the arrays this process wrote do not cross processes; a copy
        # opens its own
        private = ("_local", "on_incident", "_recent", "_recent_lock", "_recent_size", "_dirs")
        return {k: v for k, v in self.__dict__.items() if k not in private}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("on_incident", None)
        self.__dict__.setdefault("recent_bytes", 256 << 20)
        self.__dict__.setdefault("inline_bytes", INLINE_BYTES)
        self._init_recent()

    def _init_recent(self) -> None:
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._recent_size = 0
        self._recent_lock = threading.Lock()
        self._dirs: set[Path] = set()  # object directories known to exist

    def _open(self) -> sqlite3.Connection:
        if not self.readonly:
            con = sqlite3.connect(self.db_path, timeout=self._timeout_s, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
            except BaseException:
                con.close()
                raise
            return con
        # read-only: a WAL database needs its -shm file; on a read-only mount where none was
        # left behind, SQLite can read it only as an immutable file
        uri = self.db_path.as_uri()
        last: sqlite3.Error | None = None
        for mode in ("mode=ro", "immutable=1"):
            try:
                con = sqlite3.connect(
                    f"{uri}?{mode}", uri=True, timeout=self._timeout_s, isolation_level=None
                )
                con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return con
            except sqlite3.Error as exc:
                last = exc
        raise StoreError(f"store at {self.root} cannot be read ({last})")

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
            con = self._open()
            local.con, local.pid = con, os.getpid()
        yield con

    def close(self) -> None:
        """Close this thread's connection (reopened on next use)."""
        local = self.__dict__.get("_local")
        con = getattr(local, "con", None) if local is not None else None
        if con is not None:
            con.close()
            local.con = None

    def check_writable(self) -> None:
        """Raise :class:`ReadOnlyStoreError` (saying what still works) if read-only."""
        if self.readonly:
            raise ReadOnlyStoreError(
                f"store at {self.root} is read-only: `robustlens report` and `robustlens "
                "export` can read it, but nothing can be written to it; to run a study, "
                "choose a writable --store (or copy this one)"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.check_writable()
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

    def _file_matches(self, path: Path, digest: str) -> bool:
        try:
            with open(path, "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest() == digest
        except OSError:
            return False

    def put_array(self, array: np.ndarray) -> str:
        """Write one array (a content-addressed .npy file, or a row of the index database
        when it is at most ``inline_bytes``); return its hash.

        A file gets the permissions of any new file (``0o666`` less the umask) and is written
        under a temporary name, then renamed. A file of that name already there is reused only
        when its bytes match (and then touched, so that :meth:`gc` does not take it while the
        caller indexes it). A small array is committed with its ``objects`` row in one
        transaction.

        Files are not synced to the disk (``fsync``): a study writes thousands of arrays,
        and a sync cost a quarter of a millisecond apiece here (about 2 % of the engine time
        of ``bench/study_overhead.py``, as much as the rest of the write). A process that is
        killed loses nothing (the bytes are in the operating system's cache); a machine that
        loses power may lose the newest files while the index names them, and then every
        read of one finds it missing or damaged, quarantines it and has it computed again
        (:meth:`get_array`): a wrong number is never served, and the study recomputes what
        was lost.
        """
        digest, _, inline = self._put_array(array)
        if inline is not None:
            try:
                with self._transaction() as con:
                    self._index_inline(con, [(digest, inline)], time.time())
            except sqlite3.Error as exc:
                raise _store_error(self.root, exc) from exc
        return digest

    def _put_array(self, array: np.ndarray) -> tuple[str, int, bytes | None]:
        """Write ``array``'s file; return its hash, its size in bytes and, for an array kept
        in the index database (:attr:`inline_bytes`), its bytes instead of a file: the
        caller inserts them (:meth:`_index_inline`) in the transaction that indexes them."""
        self.check_writable()
        data = npy_bytes(array)
        digest = hashlib.sha256(data).hexdigest()
        if len(data) <= self.inline_bytes:
            self._remember(digest, data)
            return digest, len(data), data
        path = self._object_path(digest)
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        # a file this process wrote was hashed as it was written: its bytes are not read
        # again here
        if size == len(data) and (
            self._recalled(digest) is not None or self._file_matches(path, digest)
        ):
            with contextlib.suppress(OSError):
                os.utime(path)
            self._remember(digest, data)
            return digest, size, None
        # a name no other writer uses: this process and thread, and a count
        tmp = path.parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{next(_TMP_COUNT)}.npy"
        try:
            if path.parent not in self._dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._dirs.add(path.parent)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._mode)
            except FileNotFoundError:  # the directory was removed since it was made
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._mode)
            try:
                with os.fdopen(fd, "wb") as fh:
                    os.fchmod(fh.fileno(), self._mode)  # os.open's mode is filtered by the umask
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise _store_error(self.root, exc) from exc
        self._remember(digest, data)
        return digest, len(data), None

    @classmethod
    def _index_written(
        cls, con: sqlite3.Connection, written: Iterable[tuple[str, int, bytes | None]], now: float
    ) -> None:
        """Index arrays :meth:`_put_array` wrote, given as its ``(digest, size, bytes)``
        (inside a transaction): an ``objects`` row each, and the bytes of the small ones."""
        written = list(written)
        cls._index_inline(con, [(d, body) for d, _, body in written if body is not None], now)
        con.executemany(
            "INSERT OR IGNORE INTO objects VALUES (?,?,?)",
            [(d, nbytes, now) for d, nbytes, body in written if body is None],
        )

    @staticmethod
    def _index_inline(
        con: sqlite3.Connection, items: Sequence[tuple[str, bytes]], now: float
    ) -> None:
        """Insert small arrays' bytes and their ``objects`` rows (inside a transaction).

        The bytes are replaced, not kept when a row is there: a row damaged since it was
        written is made good by the bytes just hashed. ``created`` is refreshed, so that
        :meth:`gc` leaves an array alone while a caller is about to index it."""
        con.executemany("INSERT OR REPLACE INTO inline_objects VALUES (?,?)", items)
        con.executemany(
            "INSERT OR REPLACE INTO objects VALUES (?,?,?)",
            [(digest, len(body), now) for digest, body in items],
        )

    def _remember(self, digest: str, data: bytes) -> None:
        """Keep the bytes of an array this process wrote (their sha256 is ``digest``)."""
        if len(data) > self.recent_bytes:
            return
        with self._recent_lock:
            if digest in self._recent:
                self._recent.move_to_end(digest)
                return
            self._recent[digest] = data
            self._recent_size += len(data)
            while self._recent_size > self.recent_bytes:
                _, old = self._recent.popitem(last=False)
                self._recent_size -= len(old)

    def _recalled(self, digest: str) -> bytes | None:
        with self._recent_lock:
            data = self._recent.get(digest)
            if data is not None:
                self._recent.move_to_end(digest)
            return data

    def get_array(self, digest: str, mmap: bool = False) -> np.ndarray:
        """The array stored under ``digest``, after checking its bytes' sha256 against it.

        The file is read once, hashed, and parsed from the bytes read. Measured on the quick
        demo study's store (8,647 array reads and 80 world blobs, 89 MB, 2-core machine):
        0.81 s checked against 0.65 s unchecked (``np.load``), +0.16 s, under 1% of the
        ~37 s a study spends recomputing every measure from those arrays. A CRC-32 recorded
        at write time hashes about twice as fast (1.0 against 0.57 GB/s here) but would save
        under 0.1 s, need a new column, and leave the arrays of older stores unchecked; the
        sha256 is the array's name already. With ``mmap`` the file is hashed in chunks, then
        memory-mapped. An array this process wrote and still remembers (``recent_bytes``) is
        parsed from a copy of the bytes hashed when it was written; the file is not read. An
        array kept in the index database (``inline_bytes``) is read from there, checked the
        same way, and never memory-mapped.

        Raises:
            CorruptArrayError: the file is missing or does not match; it is quarantined and
                its entries are removed from the index first (the engine recomputes them).
        """
        if not mmap and (known := self._recalled(digest)) is not None:
            return _parse_npy(bytearray(known))  # a copy: callers may write to what they get
        path = self._object_path(digest)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if mmap:
                    actual = hashlib.file_digest(fh, "sha256").hexdigest()
                    data = None
                else:
                    data = bytearray(size)
                    size = fh.readinto(data)
                    del data[size:]
                    actual = hashlib.sha256(data).hexdigest()
        except FileNotFoundError:
            body = self._inline_body(digest)
            if body is None:
                raise self._corrupt(digest, "its file is missing") from None
            data = bytearray(body)
            size = len(data)
            actual = hashlib.sha256(data).hexdigest()
        except OSError as exc:
            raise _store_error(self.root, exc) from exc
        if actual != digest:
            raise self._corrupt(digest, self._mismatch_reason(digest, size))
        try:
            if data is None:
                return np.load(path, mmap_mode="r", allow_pickle=False)
            return _parse_npy(data)
        except (ValueError, OSError) as exc:  # matches its hash, yet is not a .npy
            raise StoreError(
                f"store at {self.root}: object {digest[:12]} is not an array: {exc}"
            ) from exc

    def _inline_body(self, digest: str) -> bytes | None:
        """The bytes of an array kept in the index database, ``None`` when there is none."""
        try:
            with self._connect() as con:
                row = con.execute(
                    "SELECT body FROM inline_objects WHERE hash=?", (digest,)
                ).fetchone()
        except sqlite3.Error as exc:
            raise _store_error(self.root, exc) from exc
        return None if row is None else bytes(row[0])

    def _mismatch_reason(self, digest: str, size: int) -> str:
        """Why ``size`` bytes stored under ``digest`` do not hash to it, in words."""
        with self._connect() as con:
            row = con.execute("SELECT nbytes FROM objects WHERE hash=?", (digest,)).fetchone()
        if row is not None and size < row[0]:
            return f"is truncated ({size} of {row[0]} bytes)"
        if row is not None and size > row[0]:
            return f"has {size - row[0]} bytes too many"
        return "does not match its hash (its bytes were changed)"

    # ------------------------------------------------------------------ damage
    def _names(self, con: sqlite3.Connection) -> dict[str, str]:
        return dict(con.execute("SELECT fingerprint, name FROM entities").fetchall())

    def array_uses(self, digest: str) -> list[str]:
        """The index entries that use the array ``digest``, in words (model, dataset, view,
        shard and array name; or the blob)."""
        with self._connect() as con:
            names = self._names(con)
            rows = con.execute(
                "SELECT model_fp, dataset_fp, view, shard, name FROM arrays WHERE hash=? "
                "ORDER BY dataset_fp, model_fp, view, shard, name",
                (digest,),
            ).fetchall()
            blobs = con.execute(
                "SELECT namespace, key, name FROM blobs WHERE hash=?", (digest,)
            ).fetchall()
        out = []
        for mfp, dfp, view, shard, name in rows:
            dataset = f"dataset {names.get(dfp, '?')!r} ({dfp[:12]})"
            if view == META_VIEW:
                out.append(f"{name} of {dataset}, shard {shard}")
            else:
                model = f"model {names.get(mfp, '?')!r} ({mfp[:12]})"
                out.append(f"{name} of {model} on {dataset}, view {view!r}, shard {shard}")
        out += [f"{ns} blob {key!r} array {name!r}" for ns, key, name in blobs]
        return out

    def _move_aside(self, digest: str) -> Path | None:
        """Move an object's file into ``quarantine/`` (never deleted); its new path. The bytes
        of an array kept in the index database are copied there (:meth:`_forget` deletes
        its row)."""
        path = self._object_path(digest)
        body = None
        if not path.exists():
            body = self._inline_body(digest)
            if body is None:
                return None
        qdir = self.root / QUARANTINE
        qdir.mkdir(exist_ok=True)
        target = qdir / f"{digest}.npy"
        i = 1
        while target.exists():
            target = qdir / f"{digest}.{i}.npy"
            i += 1
        if body is not None:
            target.write_bytes(body)
            return target
        try:
            os.replace(path, target)
        except FileNotFoundError:  # another process moved it first
            return None
        return target

    def _forget(self, con: sqlite3.Connection, digest: str) -> int:
        """Remove every entry that uses ``digest`` (whole shards and whole blobs), inside a
        transaction; the measure runs of the models concerned are recorded as not run, so
        their numbers are computed again from good arrays. Returns the entries removed."""
        shards = con.execute(
            "SELECT DISTINCT model_fp, dataset_fp, view, engine_version, shard FROM arrays "
            "WHERE hash=?",
            (digest,),
        ).fetchall()
        n = 0
        for row in shards:
            n += con.execute(f"DELETE FROM shards WHERE {_KEY_WHERE} AND shard=?", row).rowcount
            con.execute(f"DELETE FROM arrays WHERE {_KEY_WHERE} AND shard=?", row)
        models = {r[0] for r in shards}
        if "" in models:  # a dataset's labels: every model's numbers on it
            con.execute("DELETE FROM measure_runs")
        elif models:
            con.executemany("DELETE FROM measure_runs WHERE model_fp=?", [(m,) for m in models])
        blobs = con.execute(
            "SELECT DISTINCT namespace, key FROM blobs WHERE hash=?", (digest,)
        ).fetchall()
        for ns, key in blobs:
            n += con.execute("DELETE FROM blobs WHERE namespace=? AND key=?", (ns, key)).rowcount
        con.execute("DELETE FROM objects WHERE hash=?", (digest,))
        con.execute("DELETE FROM inline_objects WHERE hash=?", (digest,))
        return n

    def _corrupt(self, digest: str, reason: str) -> CorruptArrayError:
        """Quarantine a bad array, remove its entries, record it; the error to raise."""
        keys = self.array_uses(digest)
        where = ""
        if not self.readonly:
            try:
                moved = self._move_aside(digest)
                with self._transaction() as con:
                    self._forget(con, digest)
                where = f"; moved to {moved}" if moved is not None else ""
                fix = "its entries were removed and are recomputed"
            except (OSError, sqlite3.Error) as exc:
                fix = f"it could not be quarantined ({exc}); run `robustlens store verify --repair`"
        else:
            fix = "the store is read-only: repair a writable copy with `robustlens store verify`"
        used = "; ".join(keys[:3]) + (f"; and {len(keys) - 3} more" if len(keys) > 3 else "")
        message = (
            f"store at {self.root}: array {digest[:12]} {reason} (used by: "
            f"{used or 'no entry'}){where}; {fix}"
        )
        self._incident(message)
        return CorruptArrayError(message, digest, reason, keys)

    def _incident(self, message: str) -> None:
        self.incidents.append(message)
        if self.on_incident is not None:
            self.on_incident(message)

    # ------------------------------------------------------------------ verify and gc
    def verify(
        self, repair: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> VerifyReport:
        """Check every array the index uses against its hash; report what is wrong.

        Args:
            repair: quarantine every bad array and remove the entries that use it (whole
                shards, whole blobs; the measure runs of the models concerned), so that the
                next study recomputes them.
            progress: called with ``(done, total)`` as arrays are checked.

        Returns:
            A :class:`VerifyReport`: each problem with the entries that use the array, and the
            number of files in ``objects/`` that no entry uses.
        """
        t0 = time.perf_counter()
        report = VerifyReport(str(self.root))
        with self._connect() as con:
            used = [
                r[0]
                for r in con.execute(
                    "SELECT hash FROM arrays UNION SELECT hash FROM blobs ORDER BY 1"
                ).fetchall()
            ]
        for i, digest in enumerate(used):
            where = str(self._object_path(digest))
            reason = None
            try:
                with open(where, "rb") as fh:
                    ok = hashlib.file_digest(fh, "sha256").hexdigest() == digest
                    size = os.fstat(fh.fileno()).st_size
            except FileNotFoundError:
                body = self._inline_body(digest)
                if body is None:
                    reason = "its file is missing"
                else:
                    where = f"{self.db_path} (inline_objects)"
                    ok, size = hashlib.sha256(body).hexdigest() == digest, len(body)
            if reason is None:
                report.nbytes += size
                if not ok:
                    reason = self._mismatch_reason(digest, size)
            report.checked += 1
            if reason is not None:
                report.problems.append(
                    Problem(digest, reason, tuple(self.array_uses(digest)), where)
                )
            if progress is not None:
                progress(i + 1, len(used))
        on_disk = (
            {p.stem for p in self.objects_dir.glob("*/*.npy")}
            if self.objects_dir.exists()
            else set()
        )
        with self._connect() as con:
            on_disk |= {r[0] for r in con.execute("SELECT hash FROM inline_objects")}
        report.unreferenced = len(on_disk - set(used))
        if repair and report.problems:
            self.check_writable()
            for p in report.problems:
                self._move_aside(p.digest)
                with self._transaction() as con:
                    report.entries_removed += self._forget(con, p.digest)
            report.repaired = True
        report.seconds = time.perf_counter() - t0
        return report

    def gc(
        self, dry_run: bool = False, grace_s: float = GC_GRACE_S, quarantine: bool = False
    ) -> GcReport:
        """Drop arrays no entry uses (and leftovers of interrupted writes).

        Arrays written less than ``grace_s`` ago are kept: a writer may be about to index
        them (a file's age is its modification time, an array in the index database's the
        ``created`` of its ``objects`` row).

        Args:
            dry_run: count only.
            grace_s: keep files modified less than this many seconds ago.
            quarantine: also delete the files in ``quarantine/``.
        """
        if not dry_run:
            self.check_writable()
        report = GcReport(dry_run=dry_run)
        now = time.time()
        with self._connect() as con:
            used = {
                r[0] for r in con.execute("SELECT hash FROM arrays UNION SELECT hash FROM blobs")
            }
            indexed = {r[0] for r in con.execute("SELECT hash FROM objects")}
            inline = con.execute(
                "SELECT i.hash, length(i.body), o.created FROM inline_objects i "
                "LEFT JOIN objects o USING (hash)"
            ).fetchall()
        files = list(self.objects_dir.glob("*/*.npy")) if self.objects_dir.exists() else []
        dropped: list[str] = []
        for path in files:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if now - st.st_mtime < grace_s:
                continue
            if path.name.startswith(".tmp-"):
                report.temp_files += 1
                if not dry_run:
                    path.unlink(missing_ok=True)
                continue
            if path.stem in used:
                continue
            report.objects += 1
            report.nbytes += st.st_size
            dropped.append(path.stem)
        dropped_inline: list[str] = []
        for digest, nbytes, created in inline:
            if digest in used or (created is not None and now - created < grace_s):
                continue
            report.objects += 1
            report.nbytes += nbytes
            dropped_inline.append(digest)
        if not dry_run and dropped_inline:
            with self._transaction() as con:
                now_used = {
                    r[0]
                    for r in con.execute("SELECT hash FROM arrays UNION SELECT hash FROM blobs")
                }
                gone = [(d,) for d in dropped_inline if d not in now_used]
                con.executemany("DELETE FROM inline_objects WHERE hash=?", gone)
                con.executemany("DELETE FROM objects WHERE hash=?", gone)
        if not dry_run and dropped:
            with self._transaction() as con:
                # checked again inside the transaction: nothing may have started using them
                now_used = {
                    r[0]
                    for r in con.execute("SELECT hash FROM arrays UNION SELECT hash FROM blobs")
                }
                gone = [d for d in dropped if d not in now_used]
                con.executemany("DELETE FROM objects WHERE hash=?", [(d,) for d in gone])
                for d in gone:
                    self._object_path(d).unlink(missing_ok=True)
        stale_rows = indexed - used - {p.stem for p in files} - {r[0] for r in inline}
        if not dry_run and stale_rows:
            with self._transaction() as con:
                con.executemany("DELETE FROM objects WHERE hash=?", [(d,) for d in stale_rows])
        qdir = self.root / QUARANTINE
        if quarantine and qdir.exists():
            report.quarantined = sum(1 for _ in qdir.iterdir())
            if not dry_run:
                shutil.rmtree(qdir)
        return report

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
        self.put_shards([(key, shard, n_shards, arrays)])

    def put_shards(self, shards: Sequence[ShardArrays]) -> None:
        """Store several shards (``(key, shard, n_shards, arrays)`` each) in one transaction:
        their files first, then their index rows.

        When writing fails (a full disk), as many of the shards as can be are still
        committed, one by one in order, before the error is raised: finished work is kept.
        """
        prepared: list[tuple[ArrayKey, int, int, dict[str, tuple]]] = []
        try:
            for key, shard, n_shards, arrays in shards:
                hashes = {name: (*self._put_array(a), len(a)) for name, a in arrays.items()}
                prepared.append((key, shard, n_shards, hashes))
        except BaseException:
            self._commit_each(prepared)
            raise
        try:
            self._commit_shards(prepared)
        except (sqlite3.Error, OSError) as exc:
            if len(prepared) > 1:
                self._commit_each(prepared)
            raise _store_error(self.root, exc) from exc

    def _commit_each(self, prepared: Sequence[tuple]) -> None:
        """Commit prepared shards one at a time until one fails (raising nothing)."""
        for item in prepared:
            try:
                self._commit_shards([item])
            except (sqlite3.Error, OSError):
                return

    def _commit_shards(self, prepared: Sequence[tuple]) -> None:
        """Index prepared shards (their arrays written, small ones still in memory) and mark
        them complete, in one transaction."""
        now = time.time()
        values = [v for *_, hashes in prepared for v in hashes.values()]
        with self._transaction() as con:
            self._index_written(con, [v[:3] for v in values], now)
            con.executemany(
                "INSERT OR REPLACE INTO arrays VALUES (?,?,?,?,?,?,?,?)",
                [
                    (*key.row, shard, name, digest, n_rows)
                    for key, shard, _, hashes in prepared
                    for name, (digest, _, _, n_rows) in hashes.items()
                ],
            )
            con.executemany(
                "INSERT OR REPLACE INTO shards VALUES (?,?,?,?,?,?,?)",
                [(*key.row, shard, n_shards, now) for key, shard, n_shards, _ in prepared],
            )

    def drop_key(self, key: ArrayKey) -> int:
        """Forget every shard of ``key`` (its files stay until :meth:`gc`); shards removed."""
        with self._transaction() as con:
            n = con.execute(f"DELETE FROM shards WHERE {_KEY_WHERE}", key.row).rowcount
            con.execute(f"DELETE FROM arrays WHERE {_KEY_WHERE}", key.row)
        return n

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
        """Concatenate the shards of one array in shard order. Missing shards are an error.

        Raises:
            CorruptArrayError: a shard's file is missing or damaged (see :meth:`get_array`).
        """
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
        return self.concatenated([h for _, h, _ in rows])

    def complete_arrays(
        self, model_fp: str, dataset_fp: str, engine_version: str = ENGINE_VERSION
    ) -> dict[tuple[str, str], list[str]]:
        """Every complete array of one model on one dataset (``model_fp=""``: the dataset's
        meta), as ``{(view, name): its shards' hashes in shard order}``: in one query what
        :meth:`has` and :meth:`load` find key by key. An array some of whose shards are
        missing is left out."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT a.view, a.name, a.hash, s.n_shards FROM arrays a JOIN shards s "
                "USING (model_fp, dataset_fp, view, engine_version, shard) "
                "WHERE a.model_fp=? AND a.dataset_fp=? AND a.engine_version=? "
                "ORDER BY a.view, a.name, a.shard",
                (model_fp, dataset_fp, engine_version),
            ).fetchall()
        found: dict[tuple[str, str], tuple[int, list[str]]] = {}
        for view, name, digest, n_shards in rows:
            found.setdefault((view, name), (n_shards, []))[1].append(digest)
        return {k: hashes for k, (n, hashes) in found.items() if len(hashes) == n}

    def concatenated(self, digests: Sequence[str]) -> np.ndarray:
        """The arrays ``digests`` (each checked, see :meth:`get_array`) joined along axis 0."""
        parts = [self.get_array(h) for h in digests]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

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
        with self._connect() as con:
            known = dict(
                con.execute(
                    "SELECT item, reason FROM skipped WHERE dataset_fp=?", (dataset_fp,)
                ).fetchall()
            )
        new = [(i, r) for i, r in items if known.get(i) != r]
        if not new or self.readonly:
            return
        with self._transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO skipped VALUES (?,?,?)",
                [(dataset_fp, i, r) for i, r in new],
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
        hashes = {name: self._put_array(a) for name, a in arrays.items()}
        now = time.time()
        try:
            with self._transaction() as con:
                self._index_written(con, hashes.values(), now)
                con.executemany(
                    "INSERT OR REPLACE INTO blobs VALUES (?,?,?,?)",
                    [(namespace, key, name, d) for name, (d, _, _) in hashes.items()],
                )
        except sqlite3.Error as exc:
            raise _store_error(self.root, exc) from exc

    def get_blob(self, namespace: str, key: str, mmap: bool = True) -> dict[str, np.ndarray] | None:
        """The arrays of a blob, checked; ``None`` when there is none (or it was damaged: it is
        quarantined and forgotten, so the caller builds it again)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT name, hash FROM blobs WHERE namespace=? AND key=?", (namespace, key)
            ).fetchall()
        if not rows:
            return None
        try:
            return {name: self.get_array(h, mmap=mmap) for name, h in rows}
        except CorruptArrayError:
            if self.readonly:
                raise
            return None

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
            raise _store_error(self.root, exc) from exc

    def measure_run(self, key: str) -> dict[str, Any] | None:
        """What a recorded measure run wrote (``None`` if ``key`` never ran)."""
        with self._connect() as con:
            row = con.execute("SELECT outputs FROM measure_runs WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def count_results(
        self,
        model: str,
        model_fp: str,
        measure: str,
        datasets: Iterable[str] | Mapping[str, str],
    ) -> int:
        """Result rows of one model's measure on ``datasets``, for these exact weights.

        ``datasets`` may map each name to its fingerprint: then only rows of that dataset
        content count.
        """
        where = "model=? AND model_fp=? AND measure=?"
        params: list[Any] = [model, model_fp, measure]
        if isinstance(datasets, Mapping):
            pairs = list(datasets.items())
            if not pairs:
                return 0
            where += " AND (" + " OR ".join(["(dataset=? AND dataset_fp=?)"] * len(pairs)) + ")"
            params += [v for pair in pairs for v in pair]
        else:
            names = list(datasets)
            where += f" AND dataset IN ({','.join('?' * len(names))})"
            params += names
        with self._connect() as con:
            return con.execute(f"SELECT COUNT(*) FROM results WHERE {where}", params).fetchone()[0]

    # ------------------------------------------------------------------ entities
    def register(self, fingerprint: str, kind: str, name: str, info: Mapping[str, Any]) -> None:
        """Record what a fingerprint is (model or dataset name and config) for traceability."""
        text = json.dumps(dict(info), sort_keys=True, default=str)
        with self._connect() as con:
            row = con.execute(
                "SELECT kind, name, info FROM entities WHERE fingerprint=?", (fingerprint,)
            ).fetchone()
        if row == (kind, name, text):
            return
        with self._transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO entities VALUES (?,?,?,?)", (fingerprint, kind, name, text)
            )

    # ------------------------------------------------------------------ results
    def put_results(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Upsert result rows (keys: model, model_fp, dataset, dataset_fp, measure, name, value).

        A row replaces only the row of the same names *and* fingerprints.
        """
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
                con.executemany(
                    f"INSERT OR REPLACE INTO results ({_RESULT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                    values,
                )
        except sqlite3.Error as exc:
            raise _store_error(self.root, exc) from exc
        return len(values)

    def drop_stale_results(self, model: str, model_fp: str, dataset_fps: Mapping[str, str]) -> int:
        """Delete results of ``model`` computed for other weights or other dataset contents.

        Studies no longer call this: results are keyed by fingerprints and each study reads
        its own (:meth:`scoped`), so another study's rows for the same names are kept.
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

    def scoped(self, models: Mapping[str, str], datasets: Mapping[str, str]) -> Store:
        """This store as one study sees it: :meth:`results` returns only the rows of these
        ``{model name: fingerprint}`` and ``{dataset name: fingerprint}`` (``"*"``: the
        fingerprint of the study's model-level rows). Everything else is shared."""
        view = copy.copy(self)
        view._scope = (dict(models), dict(datasets))
        return view

    @property
    def scope(self) -> tuple[dict[str, str], dict[str, str]] | None:
        """``(models, datasets)`` fingerprints of :meth:`scoped`, or ``None``."""
        return self._scope

    def results(
        self,
        models: Iterable[str] | None = None,
        datasets: Iterable[str] | None = None,
        measures: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Results as a long pandas DataFrame, filtered in SQL (never loads the whole table).

        A :meth:`scoped` store returns only its study's rows (by fingerprints).
        """
        clauses, params = [], []
        scope = self._scope
        if scope is not None:
            models = list(scope[0]) if models is None else [m for m in models if m in scope[0]]
        for col, vals in (("model", models), ("dataset", datasets), ("measure", measures)):
            if vals is not None:
                vals = list(vals)
                clauses.append(f"{col} IN ({','.join('?' * len(vals))})")
                params.extend(vals)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as con:
            df = pd.read_sql_query(
                "SELECT model, model_fp, dataset, dataset_fp, measure, name, value FROM results"
                + where
                + " ORDER BY model, dataset, measure, name",
                con,
                params=params,
            )
        if scope is not None and len(df):
            mfp = df["model"].map(scope[0])
            dfp = df["dataset"].map(scope[1])
            keep = (df["model_fp"] == mfp) & (df["dataset_fp"] == dfp)
            df = df[keep].reset_index(drop=True)
        return df

    # ------------------------------------------------------------------ report fragments
    def get_fragment(self, key: str) -> str | None:
        """The fragment stored under ``key`` (see :meth:`put_fragment`), or ``None``.

        Its sha256 is checked against the one recorded with it: a fragment whose bytes were
        changed is never served; it is forgotten (``None``: the caller draws it again) and
        the incident is recorded.
        """
        try:
            with self._connect() as con:
                row = con.execute("SELECT hash, body FROM fragments WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a read-only store written before fragments
            return None
        if row is None:
            return None
        digest, body = row
        body = bytes(body)
        if hashlib.sha256(body).hexdigest() != digest:
            self._incident(f"report fragment {key[:12]} does not match its hash; it is drawn again")
            if not self.readonly:
                with contextlib.suppress(sqlite3.Error), self._transaction() as con:
                    con.execute("DELETE FROM fragments WHERE key=?", (key,))
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not self.readonly:
            now = time.time()
            with contextlib.suppress(sqlite3.Error), self._connect() as con:
                con.execute(
                    "UPDATE fragments SET used=? WHERE key=? AND used<?", (now, key, now - 3600)
                )
        return text

    def put_fragment(self, key: str, text: str) -> None:
        """Keep ``text`` (e.g. a report section's HTML) under ``key``, with its sha256.

        ``key`` names everything the text was made from (the caller hashes the code that made
        it and its inputs). Does nothing on a read-only store. Fragments unused for
        :data:`FRAGMENT_KEEP_S` are dropped as new ones come in.
        """
        if self.readonly:
            return
        body = text.encode("utf-8")
        now = time.time()
        try:
            with self._transaction() as con:
                con.execute(
                    "INSERT OR REPLACE INTO fragments VALUES (?,?,?,?,?)",
                    (key, hashlib.sha256(body).hexdigest(), body, now, now),
                )
                con.execute("DELETE FROM fragments WHERE used<?", (now - FRAGMENT_KEEP_S,))
        except sqlite3.Error as exc:
            raise _store_error(self.root, exc) from exc

    # ------------------------------------------------------------------ file digests
    def file_digest(self, path: str | os.PathLike[str]) -> str:
        """The sha256 of a file's bytes, hashed only when its stat signature moved.

        The digest is recorded with the file's size, modification time (ns), inode and
        device; a later call with the same signature returns it without reading the file.
        A digest recorded within :data:`RACY_S` of the file's modification time is not
        trusted (the file may have changed again within the same clock tick): it is hashed
        again. Works on read-only stores (nothing is recorded there).

        Raises:
            OSError: the file cannot be read.
        """
        return self.file_digests([path])[0]

    def file_digests(self, paths: Sequence[str | os.PathLike[str]]) -> list[str]:
        """:meth:`file_digest` of many files, with one query and one transaction."""
        if not paths:
            return []
        full = [os.path.abspath(p) for p in paths]
        sigs = []
        for p in full:
            st = os.stat(p)
            sigs.append((f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_dev}", st.st_mtime))
        known: dict[str, tuple[str, str, float]] = {}
        try:
            with self._connect() as con:
                for i in range(0, len(full), 500):
                    chunk = full[i : i + 500]
                    known.update(
                        (r[0], (r[1], r[2], r[3]))
                        for r in con.execute(
                            "SELECT path, signature, digest, recorded FROM file_digests "
                            f"WHERE path IN ({','.join('?' * len(chunk))})",
                            chunk,
                        )
                    )
        except sqlite3.OperationalError:  # a read-only store written before file digests
            known = {}
        now = time.time()
        out, fresh = [], []
        for p, (sig, mtime) in zip(full, sigs, strict=True):
            row = known.get(p)
            if row is not None and row[0] == sig and row[2] - mtime > RACY_S:
                out.append(row[1])
                continue
            with open(p, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            out.append(digest)
            fresh.append((p, sig, digest, now))
        if fresh and not self.readonly:
            with contextlib.suppress(sqlite3.Error), self._transaction() as con:
                con.executemany("INSERT OR REPLACE INTO file_digests VALUES (?,?,?,?)", fresh)
        return out

    # ------------------------------------------------------------------ memo
    def memo(self, namespace: str, key: str) -> str | None:
        """A value recorded with :meth:`put_memo` under ``(namespace, key)``, or ``None``.

        For derived values that are expensive to recompute and determined by ``key`` (e.g. a
        dataset's fingerprint by the signature of the files and config it is made from).
        """
        try:
            with self._connect() as con:
                row = con.execute(
                    "SELECT value FROM memo WHERE namespace=? AND key=?", (namespace, key)
                ).fetchone()
        except sqlite3.OperationalError:  # a read-only store written before memos
            return None
        return None if row is None else row[0]

    def put_memo(self, namespace: str, key: str, value: str) -> None:
        """Record ``value`` under ``(namespace, key)`` (nothing on a read-only store)."""
        if self.readonly:
            return
        try:
            with self._transaction() as con:
                con.execute(
                    "INSERT OR REPLACE INTO memo VALUES (?,?,?,?)",
                    (namespace, key, value, time.time()),
                )
        except sqlite3.Error as exc:
            raise _store_error(self.root, exc) from exc

    def stats(self) -> dict[str, int]:
        with self._connect() as con:
            return {
                t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("objects", "arrays", "shards", "results", "blobs")
            }


class ShardWriter:
    """Commits shards to a store, in the order they are put: on one background thread, or
    in the caller's.

    Serialising, hashing and writing an array file and indexing it takes up to a
    millisecond, and a study writes thousands of them. When the models run on an
    accelerator the CPU waits for it, and on the background thread that time overlaps the
    forward passes of the next shard instead of adding to them. When they run on the CPU
    they use every core, and a thread writing beside them slows them down by more than the
    writes cost (on 2 cores, the engine time of ``bench/study_overhead.py`` rose by
    15-25 %); there the writes are made in the caller's thread (``background=False``), the
    shards finished within ``commit_interval_s`` of the last commit in one transaction
    (:meth:`Store.put_shards`): a study of many small datasets finishes a shard every few
    milliseconds, and a transaction each cost a quarter of a millisecond. A shard that took
    longer than that to compute is committed as soon as it is put. Each shard is committed
    whole (its files first, then the transaction), so a process killed at any point leaves
    complete shards only; the ones still queued (at most ``commit_interval_s`` of work on
    the CPU) are computed again on resume.

    Args:
        store: where the shards go.
        background: write on a background thread (else :meth:`put` writes in the caller's
            thread, grouping shards as above).
        max_bytes: while the queued arrays hold more than this, :meth:`put` waits for the
            oldest shard to be written (memory stays bounded when the disk is slow).
        commit_interval_s: in the caller's thread, how long finished shards may wait to be
            committed together (``None``: :data:`COMMIT_INTERVAL_S`, 1 s); 0 commits each
            shard as it is put.

    :meth:`put` raises the error of any shard written since the last call, :meth:`flush`
    waits for every queued shard and raises the first error; a writer whose caller is
    leaving on an error of its own calls :meth:`settle`, which waits without raising.
    """

    def __init__(
        self,
        store: Store,
        background: bool = True,
        max_bytes: int = 256 << 20,
        commit_interval_s: float | None = None,
    ) -> None:
        self.store = store
        self.background = background
        self.max_bytes = max_bytes
        self.commit_interval_s = (
            COMMIT_INTERVAL_S if commit_interval_s is None else commit_interval_s
        )
        self._pool: ThreadPoolExecutor | None = None
        self._queued: deque[tuple[Future[None], int]] = deque()
        self._queued_bytes = 0
        self._pending: list[ShardArrays] = []  # in the caller's thread: not yet committed
        self._last_commit = time.perf_counter()

    def put(
        self, key: ArrayKey, shard: int, n_shards: int, arrays: Mapping[str, np.ndarray]
    ) -> None:
        """Queue one shard for :meth:`Store.put_shard`; the arrays must not change after."""
        self.store.check_writable()
        nbytes = sum(int(a.nbytes) for a in arrays.values())
        if not self.background:
            self._pending.append((key, shard, n_shards, arrays))
            self._queued_bytes += nbytes
            if (
                time.perf_counter() - self._last_commit >= self.commit_interval_s
                or self._queued_bytes > self.max_bytes
            ):
                self._commit_pending()
            return
        self._collect(wait=False)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="robustlens-store")
        future = self._pool.submit(self.store.put_shard, key, shard, n_shards, dict(arrays))
        self._queued.append((future, nbytes))
        self._queued_bytes += nbytes
        while self._queued_bytes > self.max_bytes and len(self._queued) > 1:
            self._collect_one()

    def _commit_pending(self) -> None:
        pending, self._pending = self._pending, []
        self._queued_bytes = 0
        try:
            if pending:
                self.store.put_shards(pending)
        finally:
            self._last_commit = time.perf_counter()

    def flush(self) -> None:
        """Wait until every queued shard is committed; raise the first error."""
        self._commit_pending()
        self._collect(wait=True)

    def settle(self) -> None:
        """Wait until every queued shard is written or failed, raising nothing."""
        with contextlib.suppress(BaseException):
            self._commit_pending()
        for future, _ in self._queued:
            with contextlib.suppress(BaseException):
                future.result()
        self._queued.clear()
        self._queued_bytes = 0

    def close(self) -> None:
        """Flush, then stop the thread (closing its connection to the index first: SQLite
        folds its write-ahead log into the database when the last connection closes)."""
        try:
            self.flush()
        finally:
            self.settle()
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    self._pool.submit(self.store.close).result()
                self._pool.shutdown(wait=True)
                self._pool = None

    def _collect(self, wait: bool) -> None:
        while self._queued and (wait or self._queued[0][0].done()):
            self._collect_one()

    def _collect_one(self) -> None:
        future, nbytes = self._queued.popleft()
        self._queued_bytes -= nbytes
        try:
            future.result()
        except BaseException:
            self.settle()  # later shards finish (or fail) before the caller hears of this
            raise


class StoredArrays:
    """Read access to what the engine stored for one (model, dataset): what measures receive.

    Args:
        store: the store.
        model_fp, dataset_fp: whose arrays.
        recompute: called when an array turns out damaged (it is quarantined and its entries
            removed by then); it runs the engine again for this model and dataset, and the
            array is read once more. Without it the damage is an error.
    """

    def __init__(
        self,
        store: Store,
        model_fp: str,
        dataset_fp: str,
        recompute: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.model_fp = model_fp
        self.dataset_fp = dataset_fp
        self.recompute = recompute
        self._meta: dict[str, np.ndarray] = {}
        # {model_fp or "" (meta): {(view, name): shard hashes}}, read once: measures ask for
        # the same few arrays many times, and each lookup was a query
        self._complete: dict[str, dict[tuple[str, str], list[str]]] = {}

    def _hashes(self, key: ArrayKey, name: str) -> list[str] | None:
        if key.model_fp not in self._complete:
            self._complete[key.model_fp] = self.store.complete_arrays(
                key.model_fp, key.dataset_fp, key.engine_version
            )
        return self._complete[key.model_fp].get((key.view, name))

    def _read(self, key: ArrayKey, name: str) -> np.ndarray:
        hashes = self._hashes(key, name)
        if hashes is None:
            return self.store.load(key, name)  # raises the store's error for what is missing
        return self.store.concatenated(hashes)

    def _load(self, key: ArrayKey, name: str) -> np.ndarray:
        try:
            return self._read(key, name)
        except CorruptArrayError:
            if self.recompute is None:
                raise
        # the labels may have been recomputed too, and the damaged arrays are written anew
        self._meta.clear()
        self._complete.clear()
        self.recompute()
        return self._read(key, name)

    def _m(self, name: str) -> np.ndarray:
        if name not in self._meta:
            self._meta[name] = self._load(ArrayKey("", self.dataset_fp, META_VIEW), name)
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
        return self._m("acceptable") if self._hashes(key, "acceptable") is not None else None

    def has(self, view: str, name: str = "logits") -> bool:
        return self._hashes(ArrayKey(self.model_fp, self.dataset_fp, view), name) is not None

    def logits(self, view: str = "clean") -> np.ndarray:
        return self._load(ArrayKey(self.model_fp, self.dataset_fp, view), "logits")

    def features(self, view: str = "clean") -> np.ndarray:
        return self._load(ArrayKey(self.model_fp, self.dataset_fp, view), "features")
