import hashlib

import numpy as np
import pytest
from PIL import Image

from robustlens.config import parse_config
from robustlens.data.synthetic import (
    SHAPES,
    STYLES,
    TEXTURES,
    SyntheticWorld,
    WorldConfig,
    _nearest_class_mean,
)
from robustlens.errors import ConfigError
from robustlens.roles import corrupt_group, world_role


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


# -- the splits the generalization dimensions need: C-bar, stylized, natural ------------------

NEW = WorldConfig(
    seed=5,
    n_classes=4,
    n_train_per_class=40,
    n_val_per_class=25,
    n_shift_per_class=25,
    corruptions=("contrast",),
    severities=(2, 4),
    cbar_corruptions=("sparkles", "checkerboard_cutout"),
    n_cbar_per_class=3,
    stylized=True,
    natural=True,
)
OFF = WorldConfig(**{**NEW.__dict__, "cbar_corruptions": (), "stylized": False, "natural": False})


def test_new_options_off_keep_the_splits_and_fingerprints():
    # the fingerprints of worlds without these options (generator version 3)
    assert WorldConfig().fingerprint() == "4e8e110ca00a901916274d4f"
    assert SMALL.fingerprint() == "60473773d2307d9f060ffd39"
    assert SyntheticWorld(SMALL).split_names() == [
        "train",
        "val",
        "v2",
        "corrupt/gaussian_noise/2",
        "sketch",
        "cue_conflict",
        "spurious",
        "rendition",
        "adversarial",
    ]
    # n_cbar_per_class alone adds nothing: no C-bar split, same fingerprint
    without = WorldConfig(**{**OFF.__dict__, "n_cbar_per_class": None})
    assert OFF.fingerprint() == without.fingerprint()


def test_new_options_on_add_splits_and_leave_the_others_unchanged():
    on, off = SyntheticWorld(NEW), SyntheticWorld(OFF)
    assert on.fingerprint() != off.fingerprint()
    added = [n for n in on.split_names() if n not in off.split_names()]
    assert on.split_names()[: len(off.split_names())] == off.split_names()
    assert added == [
        "cbar/sparkles/2",
        "cbar/sparkles/4",
        "cbar/checkerboard_cutout/2",
        "cbar/checkerboard_cutout/4",
        "stylized",
        "natural",
    ]
    for split in ("train", "val", "cue_conflict", "corrupt/contrast/4"):
        for key, arr in off.split(split).items():
            assert _digest(arr) == _digest(on.split(split)[key]), (split, key)
    assert {s: world_role(s)[0] for s in added} == {
        "cbar/sparkles/2": "corrupt_bar",
        "cbar/sparkles/4": "corrupt_bar",
        "cbar/checkerboard_cutout/2": "corrupt_bar",
        "cbar/checkerboard_cutout/4": "corrupt_bar",
        "stylized": "stylized",
        "natural": "natural",
    }
    assert world_role("cbar/sparkles/4")[1] == {"corruption": "sparkles", "severity": 4}
    assert corrupt_group("world/cbar/sparkles/4", world_role("cbar/sparkles/4")[1]) == "world/cbar"
    # same config -> identical new splits
    again = SyntheticWorld(NEW)
    for split in added:
        assert _digest(on.split(split)["images"]) == _digest(again.split(split)["images"]), split


def test_cbar_splits_are_the_val_images_under_the_corruption():
    w = SyntheticWorld(NEW)
    val = w.split("val")
    for split in ("cbar/sparkles/2", "cbar/checkerboard_cutout/4"):
        c = w.split(split)
        n = 3 * NEW.n_classes  # n_cbar_per_class images per class
        assert len(c["labels"]) == n and np.array_equal(c["labels"], val["labels"][:n])
        assert not np.array_equal(c["images"], val["images"][:n])
        assert w.dataset(split).name == f"world/{split}"
    # checkerboard cutout only greys cells; the rest of each image is the val image
    c = w.split("cbar/checkerboard_cutout/4")["images"].astype(int)
    v = np.asarray(val["images"][: len(c)]).astype(int)
    changed = (c != v).any(-1)
    assert (np.abs(c[changed] - 128) <= 1).all()
    with pytest.raises(ValueError, match=r"cbar_corruptions.*concentric_sine_waves.*available"):
        WorldConfig(cbar_corruptions=("concentric_sine_waves",))


def test_stylized_textures_say_nothing_about_the_class():
    w = SyntheticWorld(NEW)
    st = w.split("stylized")
    k, per = NEW.n_classes, NEW.n_shift_per_class
    assert np.bincount(st["labels"], minlength=k).tolist() == [per] * k
    assert set(np.unique(st["style_labels"])) <= set(range(len(STYLES)))
    assert not set(STYLES) & set(TEXTURES)  # no training texture family
    # a classifier of colours and textures (nearest class mean in pixels) reads the class off
    # val images, but is near chance on stylized ones: their textures are tied to no class
    train = w.split("train")
    args = (np.asarray(train["images"]), np.asarray(train["labels"]))
    val = w.split("val")
    acc = {
        name: float((_nearest_class_mean(*args, np.asarray(a["images"]), k) == a["labels"]).mean())
        for name, a in (("val", val), ("stylized", st))
    }
    assert acc["val"] > 0.8 and acc["stylized"] < 0.45, acc


def test_natural_split_is_fresh_images_the_reference_model_gets_wrong():
    w = SyntheticWorld(NEW)
    nat = w.split("natural")
    k, per = NEW.n_classes, NEW.n_shift_per_class
    assert np.bincount(nat["labels"], minlength=k).tolist() == [per] * k
    train = w.split("train")
    pred = _nearest_class_mean(
        np.asarray(train["images"]), np.asarray(train["labels"]), np.asarray(nat["images"]), k
    )
    assert np.array_equal(pred, nat["reference_predictions"])
    assert (pred != nat["labels"]).all()  # every image fools the held-out reference model
    # fresh images: none is a val or v2 image
    seen = {np.asarray(im).tobytes() for s in ("val", "v2") for im in w.split(s)["images"]}
    assert not any(np.asarray(im).tobytes() in seen for im in nat["images"])


def test_reference_classifier_is_the_nearest_class_mean():
    train = np.zeros((4, 1, 1, 3), np.uint8)
    train[1] = train[3] = 200  # class 1: mean 200; class 0: mean 0
    labels = np.array([0, 1, 0, 1])
    images = np.array([10, 90, 100, 101, 250], np.uint8)[:, None, None, None].repeat(3, -1)
    # 100 is as far from 0 as from 200: the tie goes to the lower class
    assert _nearest_class_mean(train, labels, images, 2).tolist() == [0, 0, 0, 1, 1]


def test_new_world_options_from_a_study_file():
    cfg = parse_config({"world": {"cbar_corruptions": ["sparkles"], "stylized": True}})
    assert cfg.world.cbar_corruptions == ("sparkles",) and cfg.world.stylized
    with pytest.raises(ConfigError, match=r"world: cbar_corruptions: unknown \['fog'\]"):
        parse_config({"world": {"cbar_corruptions": ["fog"]}})
