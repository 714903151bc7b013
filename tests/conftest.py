"""Shared fixtures: a tiny synthetic world and a tiny trained zoo (session-scoped, seconds)."""

from __future__ import annotations

import errno
import os
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
    """``disk_full_after(n)``: a store can create n more array files, then creating one
    fails as on a full disk (``ENOSPC``); returns a function that frees the disk again."""
    real = os.open

    def install(n: int):
        created = {"n": 0}

        def open_(path, *args, **kwargs):
            p = Path(path)
            if p.name.startswith(".tmp-") and p.parent.parent.name == "objects":
                created["n"] += 1
                if created["n"] > n:
                    raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", open_)
        return lambda: monkeypatch.setattr(os, "open", real)

    return install
