"""Tests for robustlens.data.photos: labelled scikit-image photos in an ImageNet tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robustlens.data.imagenet import cue_conflict
from robustlens.data.imagenet_info import load_category_mapping
from robustlens.data.photos import (
    build_cue_conflict_folder,
    build_photo_folder,
    cue_conflict_image,
    load_photo,
    photo_categories,
    photo_labels,
)
from robustlens.models.pretrained import imagenet_wnids


def test_labels_are_consistent_with_imagenet():
    df = photo_labels()
    assert list(df.columns) == ["photo", "label", "wnid", "indices", "wnids", "names", "note"]
    assert df["photo"].is_unique
    assert {"chelsea", "coffee"} <= set(df["photo"])
    wnids = imagenet_wnids()
    for row in df.itertuples():
        assert row.label == row.indices[0] and row.wnid == row.wnids[0]
        # every listed index agrees with its listed wnid (hand-written, so check it)
        assert [wnids[i] for i in row.indices] == list(row.wnids), row.photo
        assert all(0 <= i < 1000 for i in row.indices)
        assert row.note.strip()


def test_known_labels():
    df = photo_labels().set_index("photo")
    assert set(df.loc["chelsea", "indices"]) == {281, 282, 285}
    assert df.loc["chelsea", "wnid"] == "n02123045"
    assert df.loc["coffee", "indices"][0] == 967
    assert "astronaut" not in df.index  # no person class in ImageNet-1k


@pytest.mark.parametrize("photo", ["chelsea", "camera"])
def test_load_photo_is_rgb_uint8(photo):
    img = load_photo(photo)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    if photo == "camera":  # grayscale source: three equal channels
        assert np.array_equal(img[..., 0], img[..., 1])
        assert np.array_equal(img[..., 0], img[..., 2])


def test_load_photo_resize_keeps_the_centre():
    full = load_photo("chelsea")  # 300 x 451
    small = load_photo("chelsea", size=100)
    assert small.shape == (100, 100, 3)
    # centre crop of the resized photo: its mean colour is close to the full centre's
    h, w = full.shape[:2]
    centre = full[:, (w - h) // 2 : (w - h) // 2 + h]
    assert np.abs(small.mean((0, 1)) - centre.mean((0, 1))).max() < 3


def test_load_photo_unknown_name():
    with pytest.raises(ValueError, match="no photo named 'nope'"):
        load_photo("nope")


def test_build_photo_folder_writes_imagenet_tree(tmp_path):
    out = build_photo_folder(tmp_path / "photos", size=48)
    assert out == tmp_path / "photos"
    df = photo_labels()
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(f"{r.wnid}/{r.photo}.png" for r in df.itertuples())
    for r in df.itertuples():
        with Image.open(out / r.wnid / f"{r.photo}.png") as im:
            assert im.mode == "RGB" and im.size == (48, 48)
        assert np.array_equal(
            np.asarray(Image.open(out / r.wnid / f"{r.photo}.png")), load_photo(r.photo, size=48)
        )


def test_build_photo_folder_full_size_and_subset(tmp_path):
    out = build_photo_folder(tmp_path, photos=["camera"])
    [path] = list(out.rglob("*.png"))
    assert path.parent.name == "n04485082"  # tripod, the first listed label
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (512, 512)
    with pytest.raises(ValueError, match=r"no ImageNet label for photos \['astronaut'\]"):
        build_photo_folder(tmp_path, photos=["astronaut"])


# ---------------------------------------------------------------------------- cue conflict
SHARED_16 = (
    Path(__file__).parents[2].parent / "shared" / "imagenet" / "cue_conflict_16_categories.json"
)


@pytest.fixture(scope="module")
def categories_16() -> dict[str, list[int]]:
    if not SHARED_16.exists():
        pytest.skip(f"{SHARED_16} not present (the 16-category mapping is not shipped)")

    return load_category_mapping(SHARED_16)


def test_photo_categories_of_the_16(categories_16):
    assert photo_categories(categories_16) == {"chelsea": "cat", "clock": "clock"}
    with pytest.raises(ValueError, match="several categories"):
        photo_categories({"cat": [281], "tabby": [281]})


def test_cue_conflict_image_is_shape_lowpass_plus_shuffled_texture_highpass():
    rng = np.random.default_rng(0)
    shape = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    flat = np.full((32, 32, 3), 90, np.uint8)
    # a flat texture has no high frequencies: the image is the shape's blur alone
    only_shape = cue_conflict_image(shape, flat, seed=0, patch=4).astype(float)
    assert abs(only_shape.mean() - shape.mean()) < 2
    assert only_shape.std() < shape.std() / 2  # blurred
    # a flat shape: mean 90 plus the texture's high-pass tiles, in another order per seed
    texture = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a = cue_conflict_image(flat, texture, seed=0, patch=4)
    b = cue_conflict_image(flat, texture, seed=1, patch=4)
    assert abs(a.astype(float).mean() - 90) < 3 and not np.array_equal(a, b)
    tiles = lambda x: sorted(  # noqa: E731
        x.reshape(8, 4, 8, 4, 3).transpose(0, 2, 1, 3, 4).reshape(64, -1).tolist()
    )
    assert tiles(a) == tiles(b)  # the same tiles, shuffled
    with pytest.raises(ValueError, match="must divide"):
        cue_conflict_image(shape, texture, seed=0, patch=5)
    with pytest.raises(ValueError, match="one size"):
        cue_conflict_image(shape, texture[:16], seed=0)


def test_cue_conflict_folder_reads_back_with_the_16_categories(tmp_path, categories_16):
    out = build_cue_conflict_folder(tmp_path / "cc", categories_16, size=64, variants=3)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == [f"cat/cat{i}-clock{i}.png" for i in range(3)] + [
        f"clock/clock{i}-cat{i}.png" for i in range(3)
    ]
    ds = cue_conflict(out, SHARED_16, size=64)
    assert len(ds.classes) == 16 and len(ds) == 6
    cat, clock = ds.classes.index("cat"), ds.classes.index("clock")
    shapes = ds.labels().tolist()
    textures = ds.extra_labels()["texture_label"].tolist()
    assert sorted(zip(shapes, textures, strict=True)) == sorted(
        [(cat, clock)] * 3 + [(clock, cat)] * 3
    )
    with pytest.raises(ValueError, match="two categories"):
        build_cue_conflict_folder(tmp_path / "none", {"cat": [281, 282, 285]})
