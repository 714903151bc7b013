"""ImageFolderDataset: indexing, decoding of every PIL mode, preprocessing, fingerprints."""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from robustlens.data import imagefolder
from robustlens.data.base import stable_id
from robustlens.data.imagefolder import (
    CorruptImageError,
    FileListDataset,
    ImageEntry,
    ImageFolderDataset,
    decode_rgb,
    resize_and_crop,
)
from robustlens.errors import ClassMismatchError, DatasetLayoutError, RobustlensError


def save(path: Path, color=(200, 30, 30), size=(16, 12), mode="RGB", fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


def noise_jpeg(path: Path, size=(40, 32), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "set"
    save(root / "dog" / "b.png", (0, 0, 255))
    save(root / "dog" / "a.jpg", (0, 255, 0), fmt="JPEG")
    save(root / "cat" / "x.png", (255, 0, 0))
    save(root / "cat" / "sub" / "y.PNG", (255, 0, 0))
    save(root / "emu" / "z.bmp", (9, 9, 9), fmt="BMP")
    return root


def test_index_is_sorted_and_labels_follow_sorted_folders(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8)
    assert ds.classes == ["cat", "dog", "emu"]
    assert [e.path for e in ds.entries] == [
        "cat/sub/y.PNG",
        "cat/x.png",
        "dog/a.jpg",
        "dog/b.png",
        "emu/z.bmp",
    ]
    assert ds.labels().tolist() == [0, 0, 1, 1, 2]
    assert ds.name == "set"
    assert len(ds) == 5


def test_labels_and_ids_do_not_decode(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = ImageFolderDataset(tree, size=8)

    def boom(path):
        raise AssertionError(f"decoded {path}")

    monkeypatch.setattr(imagefolder, "decode_rgb", boom)
    assert ds.labels().dtype == np.int64
    assert ds.sample_ids().tolist() == [stable_id(e.path) for e in ds.entries]
    assert ds.sample_ids()[3] == stable_id("dog/b.png")
    with pytest.raises(AssertionError, match="decoded"):
        ds.load(0)


def test_load_returns_uint8_sample_with_label_and_id(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8)
    s = ds.load(3)
    assert s.image.dtype == np.uint8 and s.image.shape == (8, 8, 3)
    assert s.label == 1 and s.sample_id == stable_id("dog/b.png")
    assert (s.image == [0, 0, 255]).all()
    assert s.extras == {}


def test_non_image_files_are_ignored(tree: Path) -> None:
    (tree / "dog" / "notes.txt").write_text("hello")
    (tree / "dog" / ".DS_Store").write_bytes(b"\0\1")
    (tree / "README.md").write_text("top level")
    (tree / ".cache").mkdir()
    save(tree / "dog" / ".thumbs" / "t.png")
    save(tree / "dog" / "._b.png")  # macOS resource fork
    ds = ImageFolderDataset(tree, size=8)
    assert len(ds) == 5
    assert set(ds.ignored) == {
        "dog/notes.txt",
        "dog/.DS_Store",
        "dog/._b.png",
        "dog/.thumbs/",
        "README.md",
        ".cache/",
    }


def test_zero_byte_file_is_skipped_with_reason(tree: Path) -> None:
    (tree / "dog" / "empty.jpg").write_bytes(b"")
    ds = ImageFolderDataset(tree, size=8)
    assert "dog/empty.jpg" not in [e.path for e in ds.entries]
    assert ds.skipped == [("dog/empty.jpg", "zero-byte file")]


def test_extensions_are_case_insensitive_and_configurable(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8, extensions=("png", "BMP"))
    assert [e.path for e in ds.entries] == ["cat/sub/y.PNG", "cat/x.png", "dog/b.png", "emu/z.bmp"]
    assert "dog/a.jpg" in ds.ignored
    # emu has no png: an empty class folder unless allowed
    with pytest.raises(DatasetLayoutError):
        ImageFolderDataset(tree, size=8, extensions=(".png", ".jpg"))


def test_truncated_image_raises_corrupt_error_naming_path(tmp_path: Path) -> None:
    root = tmp_path / "set"
    full = noise_jpeg(root / "a" / "ok.jpg")
    bad = root / "a" / "bad.jpg"
    bad.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    ds = ImageFolderDataset(root, size=8)
    i = [e.path for e in ds.entries].index("a/bad.jpg")
    with pytest.raises(CorruptImageError, match=r"bad\.jpg") as info:
        ds.load(i)
    assert isinstance(info.value, RobustlensError)
    assert any(p == "a/bad.jpg" for p, _ in ds.skipped)
    ds.load(1 - i)  # the intact one decodes


def test_truncation_is_not_hidden_by_load_truncated_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = noise_jpeg(tmp_path / "ok.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    png = io.BytesIO()
    Image.new("RGB", (30, 30), (1, 2, 3)).save(png, format="PNG")
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(png.getvalue()[:-40])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with Image.open(bad) as im:  # PIL alone would decode it silently
        im.load()
    with pytest.raises(CorruptImageError):
        decode_rgb(bad)
    with pytest.raises(CorruptImageError):
        decode_rgb(bad_png)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def test_not_an_image_raises_corrupt_error(tmp_path: Path) -> None:
    p = tmp_path / "fake.png"
    p.write_bytes(b"this is not a png at all")
    with pytest.raises(CorruptImageError, match=r"fake\.png"):
        decode_rgb(p)


def test_verify_moves_failures_out_of_the_index(tmp_path: Path) -> None:
    root = tmp_path / "set"
    full = noise_jpeg(root / "a" / "1.jpg")
    noise_jpeg(root / "b" / "2.jpg", seed=1)
    (root / "b" / "3.jpg").write_bytes(full.read_bytes()[:300])
    ds = ImageFolderDataset(root, size=8)
    fp = ds.fingerprint()
    assert len(ds) == 3
    failed = ds.verify(workers=2)
    assert [p for p, _ in failed] == ["b/3.jpg"]
    assert [e.path for e in ds.entries] == ["a/1.jpg", "b/2.jpg"]
    assert ds.labels().tolist() == [0, 1]
    assert ds.sample_ids().tolist() == [stable_id("a/1.jpg"), stable_id("b/2.jpg")]
    assert [p for p, _ in ds.skipped] == ["b/3.jpg"]
    assert ds.fingerprint() != fp
    assert ds.verify() == []


def test_grayscale_palette_and_rgba_become_rgb(tmp_path: Path) -> None:
    gray = save(tmp_path / "g.png", 77, mode="L")
    assert (np.asarray(decode_rgb(gray)) == 77).all()
    bilevel = save(tmp_path / "b.png", 1, mode="1")
    assert (np.asarray(decode_rgb(bilevel)) == 255).all()
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert (np.asarray(decode_rgb(tmp_path / "p.png")) == [10, 20, 30]).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = [200, 10, 10, 255]  # opaque red
    rgba[:, 2:] = [0, 0, 0, 0]  # fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(decode_rgb(tmp_path / "a.png"))
    assert out.shape == (4, 4, 3)
    assert (out[:, :2] == [200, 10, 10]).all()
    assert (out[:, 2:] == 255).all()  # composited onto white, not black


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.array([[65535, 25700, 32768, 0]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    out = np.asarray(decode_rgb(tmp_path / "g16.png"))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert out[0, :, 0].tolist() == [255, 100, 128, 0]  # white stays white, 25700/257 = 100
    # 32-bit "I" (e.g. TIFF) holding 16-bit values
    Image.fromarray(arr.astype(np.int32)).save(tmp_path / "g32.tif")
    with Image.open(tmp_path / "g32.tif") as im:
        assert im.mode == "I"
    assert np.asarray(decode_rgb(tmp_path / "g32.tif"))[0, :, 1].tolist() == [255, 100, 128, 0]


def test_sixteen_bit_white_stays_white_through_the_dataset(tmp_path: Path) -> None:
    root = tmp_path / "set"
    (root / "c").mkdir(parents=True)
    Image.fromarray(np.full((12, 12), 65535, np.uint16)).save(root / "c" / "w.png")
    assert (ImageFolderDataset(root, size=8).load(0).image == 255).all()


def test_center_crop_is_the_imagenet_eval_transform() -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8))
    out = resize_and_crop(img, 8, "center")
    # shorter side -> round(8 / 0.875) = 9, longer side int(9 * 40 / 20) = 18, centre 8x8
    resized = img.resize((18, 9), Image.Resampling.BILINEAR)
    assert np.array_equal(out, np.asarray(resized)[0:8, 5:13])
    assert np.array_equal(
        resize_and_crop(img, 8, "none"), np.asarray(img.resize((8, 8), Image.Resampling.BILINEAR))
    )
    # "crop": no resize when the image is large enough
    assert np.array_equal(resize_and_crop(img, 8, "crop"), np.asarray(img)[6:14, 16:24])
    assert resize_and_crop(img, 224, "center").shape == (224, 224, 3)


def test_border_is_removed_before_resizing(tmp_path: Path) -> None:
    root = tmp_path / "set"
    arr = np.zeros((10, 10, 3), np.uint8)
    arr[:] = [255, 0, 0]
    arr[1:-1, 1:-1] = [0, 0, 255]
    (root / "c").mkdir(parents=True)
    Image.fromarray(arr).save(root / "c" / "framed.png")
    framed = ImageFolderDataset(root, size=8, crop="none", border=1)
    assert (framed.load(0).image == [0, 0, 255]).all()
    assert (ImageFolderDataset(root, size=10, crop="none").load(0).image[0, 0] == [255, 0, 0]).all()


def test_empty_class_folder_is_an_error_naming_it(tree: Path) -> None:
    (tree / "zebra").mkdir()
    (tree / "zebra" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetLayoutError, match="zebra") as info:
        ImageFolderDataset(tree, size=8)
    assert "allow_empty" in str(info.value)
    ds = ImageFolderDataset(tree, size=8, allow_empty=True)
    assert ds.classes == ["cat", "dog", "emu", "zebra"]
    assert 3 not in ds.labels()


def test_missing_root_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"root/<class>/<image>\.jpg") as info:
        ImageFolderDataset(tmp_path / "nope")
    assert "does not exist" in str(info.value)


def test_root_without_class_folders_names_the_layout(tmp_path: Path) -> None:
    save(tmp_path / "flat" / "a.png")
    with pytest.raises(DatasetLayoutError, match=r"root/<class>/<image>\.jpg"):
        ImageFolderDataset(tmp_path / "flat")


def test_explicit_classes_reject_unknown_folders(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8, classes=["ant", "cat", "dog", "emu"])
    assert ds.labels().tolist() == [1, 1, 2, 2, 3]
    with pytest.raises(DatasetLayoutError, match="emu"):
        ImageFolderDataset(tree, size=8, classes=["cat", "dog"])
    ds = ImageFolderDataset(tree, size=8, classes=["cat", "dog"], unknown_folders="ignore")
    assert "emu/" in ds.ignored and len(ds) == 4


def test_class_mapping_mismatch_names_both_counts(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8)
    with pytest.raises(ClassMismatchError, match="3 classes") as info:
        ds.class_mapping([f"c{i}" for i in range(10)])
    assert "10" in str(info.value)
    assert ds.class_mapping(["cat", "dog", "emu"]).is_identity
    sub = ds.class_mapping(["x", "emu", "cat", "dog"])
    assert sub.targets == ((2,), (3,), (1,))


def test_fingerprint_changes_when_an_image_changes(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8)
    fp = ds.fingerprint()
    assert len(fp) == 64 and ds.fingerprint() == fp
    save(tree / "dog" / "b.png", (0, 0, 254))  # same size, one colour value differs
    assert ds.fingerprint() != fp
    assert ImageFolderDataset(tree, size=8).fingerprint() == ds.fingerprint()


def test_fingerprint_survives_copy_and_tracks_preprocessing(tree: Path, tmp_path: Path) -> None:
    fp = ImageFolderDataset(tree, size=8).fingerprint()
    copy = tmp_path / "copy" / "set"
    shutil.copytree(tree, copy)
    assert ImageFolderDataset(copy, size=8).fingerprint() == fp
    assert ImageFolderDataset(tree, size=16).fingerprint() != fp
    assert ImageFolderDataset(tree, size=8, crop="none").fingerprint() != fp
    (copy / "cat" / "x.png").rename(copy / "dog" / "x.png")  # a label changes
    assert ImageFolderDataset(copy, size=8).fingerprint() != fp


def test_fingerprint_sees_a_change_in_the_last_bytes_of_a_large_file(tmp_path: Path) -> None:
    root = tmp_path / "set"
    p = noise_jpeg(root / "a" / "big.jpg", size=(120, 120))
    data = bytearray(p.read_bytes())
    assert len(data) > 3 * 4096
    ds = ImageFolderDataset(root, size=8)
    fp = ds.fingerprint()
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    assert ds.fingerprint() != fp


def test_file_list_dataset_validates_labels_and_extras(tmp_path: Path) -> None:
    save(tmp_path / "a.png")
    ok = FileListDataset(
        tmp_path,
        [ImageEntry("a.png", 1, {"texture_label": 0})],
        ["x", "y"],
        name="t",
        size=4,
        extra_label_names=("texture_label",),
    )
    assert ok.extra_labels()["texture_label"].tolist() == [0]
    assert ok.load(0).extras == {"texture_label": 0}
    with pytest.raises(ValueError, match="outside"):
        FileListDataset(tmp_path, [ImageEntry("a.png", 2)], ["x", "y"], name="t")
    with pytest.raises(ValueError, match="texture_label"):
        FileListDataset(
            tmp_path,
            [ImageEntry("a.png", 0)],
            ["x"],
            name="t",
            extra_label_names=("texture_label",),
        )
    with pytest.raises(ValueError, match="crop"):
        FileListDataset(tmp_path, [ImageEntry("a.png", 0)], ["x"], name="t", crop="random")


def test_dataset_pickles_for_worker_processes(tree: Path) -> None:
    ds = ImageFolderDataset(tree, size=8)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.fingerprint() == ds.fingerprint()
    assert np.array_equal(clone.load(2).image, ds.load(2).image)


# ----------------------------------------------------------------------------- safe scans
def _classes_with_images(root: Path, n: int = 3) -> Path:
    for c in ("class_0", "class_1", "class_2"):
        for i in range(n):
            save(root / c / f"{i}.png", (40 * i, 0, 0), size=(8, 8))
    return root


def test_a_symlink_loop_is_not_followed_and_every_file_counts_once(tmp_path: Path) -> None:
    root = _classes_with_images(tmp_path / "set")
    (root / "class_0" / "loop").symlink_to("..")  # the loop of issue 21
    (root / "class_1" / "other").symlink_to("../class_2")
    (root / "class_0" / "dup.png").symlink_to("../class_1/0.png")
    ds = ImageFolderDataset(root, size=8)
    assert len(ds) == 9 and ds.labels().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    reasons = dict(ds.skipped)
    assert reasons["class_0/loop/"].startswith("symlinked directory not followed")
    assert reasons["class_1/other/"].startswith("symlinked directory not followed")
    assert reasons["class_0/dup.png"] == "same file as class_1/0.png (counted once)"
    # followed: each directory is scanned once, by resolved path (no loop, no double count)
    followed = ImageFolderDataset(root, size=8, follow_symlinks=True)
    assert len(followed) == 9 and followed.labels().tolist() == ds.labels().tolist()
    reasons = dict(followed.skipped)
    assert "already scanned" in reasons["class_0/loop/"]
    assert "class_2/, already scanned" in reasons["class_1/other/"]


def test_followed_symlinks_add_the_files_found_only_through_them(tmp_path: Path) -> None:
    root = _classes_with_images(tmp_path / "set")
    extra = _classes_with_images(tmp_path / "elsewhere", n=2)
    (root / "class_2" / "more").symlink_to(extra / "class_2")
    (root / "class_3").symlink_to(extra / "class_0")  # a symlinked class folder
    ds = ImageFolderDataset(root, size=8)
    assert ds.classes == ["class_0", "class_1", "class_2"] and len(ds) == 9
    assert {"class_3/", "class_2/more/"} <= {p for p, _ in ds.skipped}
    followed = ImageFolderDataset(root, size=8, follow_symlinks=True)
    assert followed.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert len(followed) == 9 + 2 + 2 and followed.skipped == []
    assert "class_2/more/0.png" in [e.path for e in followed.entries]
    assert followed.fingerprint() != ds.fingerprint()


def test_an_image_above_the_pixel_limit_is_refused_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    root = _classes_with_images(tmp_path / "set")
    save(root / "class_1" / "big.png", size=(64, 64))  # 4096 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # PIL would warn, not refuse
    ds = ImageFolderDataset(root, size=8)
    big = [e.path for e in ds.entries].index("class_1/big.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would fail here
        with pytest.raises(imagefolder.DecompressionBombRefused, match="64x64 = 4,096 pixels"):
            ds.load(big)
        assert dict(ds.skipped)["class_1/big.png"].startswith("decompression-bomb refusal")
        assert Image.MAX_IMAGE_PIXELS == 3000  # PIL's own setting is restored
        # the limit is an option (0: none)
        allowed = ImageFolderDataset(root, size=8, max_pixels=5000)
        assert allowed.load(big).image.shape == (8, 8, 3)
        assert ImageFolderDataset(root, size=8, max_pixels=0).load(big).label == 1
        assert allowed.fingerprint() != ds.fingerprint()  # other files refused: other results
    with pytest.raises(RobustlensError, match="max_pixels"):
        ImageFolderDataset(root, size=8, max_pixels=-1)


def test_an_image_above_pils_hard_limit_is_refused_by_robustlens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(tmp_path / "big.png", size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL alone would raise its error
    with pytest.raises(imagefolder.DecompressionBombRefused, match="above the limit of 1,000"):
        decode_rgb(path)
    assert decode_rgb(path, max_pixels=0).size == (64, 64)
