"""Shared fixtures: a tiny synthetic world and a tiny trained zoo (session-scoped, seconds)."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

import pytest
import torch

from robustlens.data.synthetic import SyntheticWorld, WorldConfig
from robustlens.models.zoo import ZooMember, train_zoo
from robustlens.store import Store

TINY_WORLD = WorldConfig(
    seed=3,
    n_classes=4,
    image_size=32,
    n_train_per_class=40,
    n_val_per_class=12,
    n_shift_per_class=6,
    corruptions=("gaussian_noise", "contrast"),
    severities=(1, 3),
)

TINY_ZOO = [
    ZooMember("tiny-cnn", "cnn", 8, "standard", 3, lr=5e-3),
    ZooMember("tiny-resnet", "resnet", 8, "texrand", 2, lr=5e-3),
    ZooMember("tiny-mixer", "mixer", 16, "none", 2, mark_rate=0.0, lr=5e-3),
]


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Run records and the command index of the tests stay out of the user's cache."""
    before = os.environ.get("ROBUSTLENS_CACHE_DIR")
    os.environ["ROBUSTLENS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("ROBUSTLENS_CACHE_DIR", None)
    else:
        os.environ["ROBUSTLENS_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def tiny_world(tiny_store: Store) -> SyntheticWorld:
    return SyntheticWorld(TINY_WORLD, tiny_store)


@pytest.fixture(scope="session")
def tiny_zoo_dir(tiny_world: SyntheticWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    train_zoo(tiny_world, TINY_ZOO, out, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_models(tiny_zoo_dir: Path):
    from robustlens.models.zoo import load_zoo_model, zoo_members_in

    return [load_zoo_model(p) for p in zoo_members_in(tiny_zoo_dir)]


@pytest.fixture()
def disk_full_after(monkeypatch: pytest.MonkeyPatch):
    """``disk_full_after(n)``: a store can write n more arrays, then writing one fails as on
    a full disk: creating an array file raises ``ENOSPC``, and inserting a small array into
    the index database raises SQLite's ``database or disk is full``. Returns a function
    that frees the disk again."""
    real_open, real_inline = os.open, Store.__dict__["_index_inline"]

    def install(n: int):
        written = {"n": 0}

        def open_(path, *args, **kwargs):
            p = Path(path)
            if p.name.startswith(".tmp-") and p.parent.parent.name == "objects":
                written["n"] += 1
                if written["n"] > n:
                    raise OSError(errno.ENOSPC, "No space left on device")
            return real_open(path, *args, **kwargs)

        def index_inline(con, items, now):
            if written["n"] + len(items) > n:  # the transaction is rolled back: none is written
                raise sqlite3.OperationalError("database or disk is full")
            written["n"] += len(items)
            return real_inline.__func__(con, items, now)

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(Store, "_index_inline", staticmethod(index_inline))

        def free() -> None:
            monkeypatch.setattr(os, "open", real_open)
            monkeypatch.setattr(Store, "_index_inline", real_inline)

        return free

    return install


class StoredObjects:
    """Reads, damages and ages a stored array wherever its store keeps it: its file in
    ``objects/``, or its row of the index database (arrays of at most ``inline_bytes``), as
    a disk fault, a hand edit or time would."""

    @staticmethod
    def file(root: Path, digest: str) -> Path:
        return Path(root) / "objects" / digest[:2] / f"{digest}.npy"

    @staticmethod
    def _sql(root: Path, query: str, *params):
        con = sqlite3.connect(Path(root) / "store.sqlite")
        try:
            with con:
                return con.execute(query, params).fetchall()
        finally:
            con.close()

    def where(self, root: Path, digest: str) -> str | None:
        """``"file"``, ``"inline"`` or ``None`` (the array is gone)."""
        if self.file(root, digest).exists():
            return "file"
        rows = self._sql(root, "SELECT 1 FROM inline_objects WHERE hash=?", digest)
        return "inline" if rows else None

    def exists(self, root: Path, digest: str) -> bool:
        return self.where(root, digest) is not None

    def read(self, root: Path, digest: str) -> bytes:
        if self.where(root, digest) == "file":
            return self.file(root, digest).read_bytes()
        ((body,),) = self._sql(root, "SELECT body FROM inline_objects WHERE hash=?", digest)
        return bytes(body)

    def write(self, root: Path, digest: str, data: bytes) -> None:
        where = self.where(root, digest)
        assert where is not None, f"array {digest[:12]} is not stored"
        if where == "file":
            self.file(root, digest).write_bytes(data)
        else:
            self._sql(root, "UPDATE inline_objects SET body=? WHERE hash=?", data, digest)

    def delete(self, root: Path, digest: str) -> None:
        if self.where(root, digest) == "file":
            self.file(root, digest).unlink()
        else:
            self._sql(root, "DELETE FROM inline_objects WHERE hash=?", digest)

    def age(self, root: Path, digest: str, seconds: float) -> None:
        """Make the array look written ``seconds`` ago (what :meth:`Store.gc` goes by)."""
        old = time.time() - seconds
        if self.where(root, digest) == "file":
            os.utime(self.file(root, digest), (old, old))
        else:
            self._sql(root, "UPDATE objects SET created=? WHERE hash=?", old, digest)


@pytest.fixture()
def stored() -> StoredObjects:
    """:class:`StoredObjects`: a stored array's bytes, wherever its store keeps them."""
    return StoredObjects()


@pytest.fixture(params=["files", "inline"])
def storage(request: pytest.FixtureRequest) -> dict:
    """``Store`` keyword arguments for the two ways an array is kept: a file each, or (the
    default for arrays of at most ``inline_bytes``) rows of the index database."""
    return {"inline_bytes": 0} if request.param == "files" else {}
