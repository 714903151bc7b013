"""The synthetic world's planted structure: marks, the spurious split, the concept shifts."""

from __future__ import annotations

import numpy as np
import pytest

from robustlens.data.synthetic import (
    LIGHT_CONTRAST,
    MARK_SIZE,
    RENDITION_STYLES,
    SyntheticWorld,
    WorldConfig,
    _nearest_class_mean,
    mark_codes,
    relight,
)

WORLD = WorldConfig(
    seed=11,
    n_classes=5,
    n_train_per_class=30,
    n_val_per_class=12,
    n_shift_per_class=16,
    corruptions=("contrast",),
    severities=(3,),
    stylized=True,
)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld(WORLD)


def _corner(images: np.ndarray) -> np.ndarray:
    size = images.shape[1]
    y0 = size - MARK_SIZE - 1
    return np.asarray(images)[:, y0 : y0 + MARK_SIZE, y0 : y0 + MARK_SIZE]


def test_marks_are_distinct_coloured_and_survive_a_flip():
    codes = mark_codes(10)
    assert codes.shape == (10, MARK_SIZE, MARK_SIZE, 3)
    flat = codes.reshape(10, -1)
    assert len({row.tobytes() for row in flat}) == 10
    assert np.array_equal(codes, codes[:, :, ::-1])  # left-right symmetric
    frames = codes[:, 0, 0]  # each frame is one saturated colour of its own
    assert len({tuple(np.round(f, 3)) for f in frames}) == 10
    assert (frames.max(axis=1) - frames.min(axis=1) > 0.5).all()


def test_spurious_split_stamps_a_mark_on_an_object_of_another_class(world):
    sp = world.split("spurious")
    labels, objects = np.asarray(sp["labels"]), np.asarray(sp["object_labels"])
    k, per = WORLD.n_classes, WORLD.n_shift_per_class
    assert np.bincount(labels, minlength=k).tolist() == [per] * k
    assert np.array_equal(sp["spurious_labels"], labels)
    assert (objects != labels).all() and set(objects.tolist()) == set(range(k))
    stamped = np.round(world.codes[labels] * 255).astype(np.uint8)
    assert np.array_equal(_corner(sp["images"]), stamped)
    extras = world.dataset("spurious").extra_labels()
    assert np.array_equal(extras["spurious_label"], labels)
    assert np.array_equal(extras["object_label"], objects)


def test_concept_shifts_carry_no_mark_and_sketches_are_gray(world):
    codes = np.round(world.codes * 255).astype(np.uint8)
    for split in ("sketch", "rendition", "stylized"):
        corner = _corner(world.split(split)["images"])
        assert not any(np.array_equal(c, m) for c in corner for m in codes), split
    sketch = np.asarray(world.split("sketch")["images"]).astype(int)
    assert (sketch[..., 0] == sketch[..., 1]).all() and (sketch[..., 1] == sketch[..., 2]).all()
    assert np.median(sketch) > 170  # pencil on light paper


def test_colours_say_nothing_about_the_class_in_renditions(world):
    rend = world.split("rendition")
    assert set(np.unique(rend["style_labels"])) == set(range(len(RENDITION_STYLES)))
    train = world.split("train")
    fit = (np.asarray(train["images"]), np.asarray(train["labels"]))

    def ncm(a) -> float:
        pred = _nearest_class_mean(*fit, np.asarray(a["images"]), WORLD.n_classes)
        return float((pred == a["labels"]).mean())

    acc = {"val": ncm(world.split("val")), "rendition": ncm(rend)}
    assert acc["val"] > 0.5 and acc["rendition"] < 0.45, acc


def test_training_photos_record_their_lighting(world):
    arrays = world.training_arrays()
    light = arrays["light"]
    assert light.shape == (len(arrays["labels"]), 2)
    assert (light[:, 0] >= LIGHT_CONTRAST).all() and (light[:, 0] <= 1).all()
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
    same = relight(x, np.array([[1.0, 0.3], [1.0, 0.7]], np.float32))
    assert np.allclose(same, x)
    flat = relight(x, np.array([[0.0, 0.3], [0.0, 0.7]], np.float32))
    assert np.allclose(flat[0], 0.3) and np.allclose(flat[1], 0.7)
