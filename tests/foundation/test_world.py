import hashlib

import numpy as np
import pytest
from PIL import Image

from robustlens.data.synthetic import SHAPES, SyntheticWorld, WorldConfig


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


SMALL = WorldConfig(
    seed=5,
    n_classes=3,
    n_train_per_class=8,
    n_val_per_class=4,
    n_shift_per_class=3,
    corruptions=("gaussian_noise",),
    severities=(2,),
)


def test_same_seed_gives_identical_arrays_by_hash():
    a, b = SyntheticWorld(SMALL), SyntheticWorld(SMALL)
    for split in a.split_names():
        for key, arr in a.split(split).items():
            assert _digest(arr) == _digest(b.split(split)[key]), (split, key)


def test_other_seed_gives_other_images():
    a = SyntheticWorld(SMALL)
    b = SyntheticWorld(WorldConfig(**{**SMALL.__dict__, "seed": 6}))
    assert _digest(a.split("val")["images"]) != _digest(b.split("val")["images"])
    assert a.fingerprint() != b.fingerprint()


def test_cached_world_equals_fresh_world(tiny_store):
    cached = SyntheticWorld(SMALL, tiny_store)
    first = cached.split("cue_conflict")["images"].copy()
    reread = SyntheticWorld(SMALL, tiny_store).split("cue_conflict")["images"]  # from the store
    assert (
        _digest(first)
        == _digest(reread)
        == _digest(SyntheticWorld(SMALL).split("cue_conflict")["images"])
    )


def test_splits_have_known_ground_truth():
    w = SyntheticWorld(SMALL)
    assert w.classes == list(SHAPES[:3])
    cue = w.split("cue_conflict")
    assert np.all(cue["labels"] != cue["texture_labels"])
    spur = w.dataset("spurious")
    assert np.array_equal(spur.extra_labels()["spurious_label"], spur.labels())
    val = w.split("val")
    assert val["images"].dtype == np.uint8 and val["images"].shape[1:] == (32, 32, 3)
    # corrupted split is the val images under the corruption: same labels, different pixels
    c = w.split("corrupt/gaussian_noise/2")
    assert np.array_equal(c["labels"], val["labels"][: len(c["labels"])])
    assert not np.array_equal(c["images"], val["images"][: len(c["labels"])])


def test_mark_rate_controls_marks():
    w = SyntheticWorld(SMALL)
    none = w.training_arrays(mark_rate=0.0)
    full = w.training_arrays(mark_rate=1.0)
    assert not none["mark_present"].any() and full["mark_present"].all()
    corner = (slice(None), slice(26, 31), slice(26, 31))
    assert not np.array_equal(none["images"][corner], full["images"][corner])
    # outside the mark's corner the images are identical
    assert np.array_equal(none["images"][:, :20], full["images"][:, :20])


def test_invalid_config_names_the_field():
    with pytest.raises(ValueError, match="mark_rate"):
        WorldConfig(mark_rate=1.5)
    with pytest.raises(KeyError, match="available"):
        SyntheticWorld(SMALL).split("nope")


def test_export_imagefolder(tmp_path):
    w = SyntheticWorld(SMALL)
    w.export_imagefolder(tmp_path, ["val"], limit_per_class=2)
    files = sorted((tmp_path / "val").rglob("*.png"))
    assert len(files) == 6
    assert {f.parent.name for f in files} == set(w.classes)
    assert Image.open(files[0]).size == (32, 32)
