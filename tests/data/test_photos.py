"""Tests for robustlens.data.photos: labelled scikit-image photos in an ImageNet tree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from robustlens.data.photos import build_photo_folder, load_photo, photo_labels
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
