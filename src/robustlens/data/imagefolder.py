"""Image files on disk as a :class:`~robustlens.data.base.Dataset`.

Two classes live here:

- :class:`FileListDataset` decodes an explicit, ordered list of image files under a root
  (each with a label and optional extra labels). Every on-disk layout (ImageNet val, -C, -R,
  ObjectNet, cue-conflict, ...) ends up as one of these.
- :class:`ImageFolderDataset` indexes the generic ``root/<class>/<image>.jpg`` layout into a
  :class:`FileListDataset`.
- :class:`UnlabeledFolderDataset` indexes any folder tree of images, without labels (layout
  ``unlabeled``): every sample's label is :data:`NO_LABEL` and the class list is empty.

Decoding (:func:`decode_rgb`) turns every PIL mode into 8-bit RGB: grayscale is copied to
three channels, alpha is composited onto white, palette images are expanded, and 16-bit
images (``I;16*`` and ``I``) are *scaled* by 255/65535 (PIL's own ``convert`` clips them,
which turns every value above 255 white). Truncated files raise :class:`CorruptImageError`
even when ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is set by someone else. An image with more
pixels than ``max_pixels`` (default: PIL's ``Image.MAX_IMAGE_PIXELS``, about 89 megapixels) is
refused as a decompression bomb (:class:`DecompressionBombRefused`) before it is decoded, and
PIL's own ``DecompressionBombWarning`` is not printed.

Indexing (:func:`index_image_folders`) does not follow symlinked directories unless asked
(``follow_symlinks=True``, then a directory reached twice, e.g. through a link to a parent, is
scanned once), and counts every file once: a second path to a file already indexed (a
symlink) is skipped with the reason. Files left out are listed in ``skipped`` with a reason
(zero bytes, symlinked directory not followed, duplicate), next to those that fail to decode.

Preprocessing (:func:`resize_and_crop`) is the standard ImageNet evaluation transform: the
shorter side is resized to ``round(size / 0.875)`` (256 for 224) with PIL bilinear
(antialiased) resampling, then a ``size x size`` centre crop is taken, exactly as
``torchvision.transforms.Resize(256)`` + ``CenterCrop(224)`` do on PIL images. EXIF
orientation is not applied (neither does the standard pipeline).

A model's own evaluation transform (:class:`EvalTransform`: timm's ``resolve_data_config`` +
``create_transform``, or a torchvision preset: resize, crop percentage, crop mode,
interpolation) replaces that decode for a ``crop: center`` dataset:
:meth:`FileListDataset.with_transform` gives the same files decoded at the model's
transform. Datasets whose protocol fixes the decode (``crop: crop`` for ImageNet-C's
pre-cropped images, ``crop: none``) keep it for every model.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile

from robustlens.data.base import ClassMapping, Dataset, Sample, stable_id
from robustlens.errors import ConfigError, DatasetLayoutError, RobustlensError, ValidationError

__all__ = [
    "BOMB",
    "CROP_MODES",
    "DEFAULT_CROP_PCT",
    "DEFAULT_LAYOUT",
    "EVAL_CROP_MODES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "NO_LABEL",
    "PIL_FILTERS",
    "UNLABELED_LAYOUT",
    "CorruptImageError",
    "DecompressionBombRefused",
    "EvalTransform",
    "FileListDataset",
    "FolderIndex",
    "ImageEntry",
    "ImageFolderDataset",
    "TargetMapping",
    "UnlabeledFolderDataset",
    "decode_rgb",
    "index_image_folders",
    "index_unlabeled_folder",
    "is_image_file",
    "require_dir",
    "resize_and_crop",
    "skip_reason",
]

#: file extensions (lower case) treated as images; everything else is listed in ``ignored``
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
)
#: ``center``: resize the shorter side to round(size / 0.875), centre-crop size x size (ImageNet
#: eval); ``none``: resize straight to size x size; ``crop``: centre-crop size x size without
#: resizing (images already stored at the model's size, e.g. ImageNet-C), upscaling the shorter
#: side to ``size`` first only when it is smaller.
CROP_MODES: tuple[str, ...] = ("center", "none", "crop")
#: the layout :class:`ImageFolderDataset` expects, named in its errors
DEFAULT_LAYOUT = "root/<class>/<image>.jpg"
#: the ratio of crop to resize in the standard ImageNet evaluation transform (224 / 256)
CROP_RATIO = 0.875
_FINGERPRINT_VERSION = "robustlens.filelist.v1"
_EDGE_BYTES = 4096
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


class CorruptImageError(RobustlensError, OSError):
    """An image file cannot be decoded (truncated, corrupt, not an image, missing).

    Attributes:
        path: the file that failed.
        reason: the decoder's message.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode image {self.path}: {reason}")


#: how the reason of a decompression-bomb refusal starts
BOMB = "decompression-bomb refusal"


class DecompressionBombRefused(CorruptImageError):
    """An image has more pixels than the limit (``max_pixels``); it was not decoded."""

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, limit: int) -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            path,
            f"{BOMB}: {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{limit:,} (max_pixels)",
        )


# --------------------------------------------------------------------------------------------
# decoding


_TRUNCATION_LOCK = threading.Lock()
_TRUNCATION_DEPTH = 0
_TRUNCATION_SAVED = False
_PIXELS_SAVED: int | None = None


@contextmanager
def _strict_truncation() -> Iterator[int | None]:
    """Force ``ImageFile.LOAD_TRUNCATED_IMAGES = False`` while decoding, restore it afterwards.

    PIL reads that module-level flag inside ``Image.load``; if any other library set it, a
    truncated file would decode silently with a grey bottom. The flag is saved by the first
    decoder to enter and restored by the last to leave, so concurrent decoder threads neither
    see ``True`` nor lose the caller's setting.

    PIL's own decompression-bomb check (``Image.MAX_IMAGE_PIXELS``) is switched off the same
    way: :func:`decode_rgb` checks the size itself, with the limit it is given, and says why
    it refused instead of PIL's warning. Yields PIL's limit as the caller had set it.
    """
    global _TRUNCATION_DEPTH, _TRUNCATION_SAVED, _PIXELS_SAVED
    with _TRUNCATION_LOCK:
        if _TRUNCATION_DEPTH == 0:
            _TRUNCATION_SAVED = ImageFile.LOAD_TRUNCATED_IMAGES
            _PIXELS_SAVED = Image.MAX_IMAGE_PIXELS
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        Image.MAX_IMAGE_PIXELS = None
        _TRUNCATION_DEPTH += 1
        limit = _PIXELS_SAVED
    try:
        yield limit
    finally:
        with _TRUNCATION_LOCK:
            _TRUNCATION_DEPTH -= 1
            if _TRUNCATION_DEPTH == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _TRUNCATION_SAVED
                Image.MAX_IMAGE_PIXELS = _PIXELS_SAVED


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit ``RGB`` (16-bit scaled, alpha composited onto white)."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey (PNG/TIFF): scale 0..65535 -> 0..255; "I" is 32-bit signed holding the
        # same 16-bit range, so clip before scaling.
        arr = np.asarray(img).astype(np.float64)
        arr = np.clip(arr, 0, 65535) * (255.0 / 65535.0)
        return Image.fromarray(np.rint(arr).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        return Image.fromarray(np.rint(np.clip(arr, 0, 255)).astype(np.uint8), "L").convert("RGB")
    # alpha channels, and palette / grey / RGB images with a transparent colour key
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        img = img.convert("L")
    return img.convert("RGB")


def decode_rgb(path: str | os.PathLike[str], max_pixels: int | None = None) -> Image.Image:
    """Decode an image file to an 8-bit RGB PIL image, strictly.

    Grayscale is copied to three channels; palette images are expanded; transparent pixels
    are composited onto white; 16-bit images (``I;16``, ``I``) are scaled, not clipped.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this, before decoding them (a
            decompression bomb); ``None``: PIL's ``Image.MAX_IMAGE_PIXELS``; ``0``: no limit.

    Returns:
        A loaded PIL image in mode ``RGB``.

    Raises:
        DecompressionBombRefused: the image has more than ``max_pixels`` pixels.
        CorruptImageError: the file is missing, truncated, corrupt or not an image (PIL's
            ``LOAD_TRUNCATED_IMAGES`` is ignored).
    """
    try:
        with _strict_truncation() as pil_limit, Image.open(path) as img:
            limit = pil_limit if max_pixels is None else max_pixels
            w, h = img.size
            if limit and w * h > limit:
                raise DecompressionBombRefused(path, w, h, int(limit))
            img.load()
            rgb = _to_rgb(img)
            rgb.load()
            return rgb
    except (MemoryError, CorruptImageError):
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise CorruptImageError(path, f"{type(exc).__name__}: {exc}") from exc


def resize_and_crop(
    img: Image.Image, size: int, crop: str = "center", interpolation: str = "bilinear"
) -> np.ndarray:
    """Resize and crop an RGB image to ``size x size`` and return it as uint8 (H, W, 3).

    Args:
        img: an RGB PIL image.
        size: output side length.
        crop: one of :data:`CROP_MODES` (``center``: ImageNet eval transform, shorter side to
            ``round(size / 0.875)`` then centre crop; ``none``: direct resize; ``crop``:
            centre crop without resizing).
        interpolation: ``bilinear`` (torchvision's default) or ``bicubic``.

    Returns:
        A new uint8 array of shape (size, size, 3).
    """
    resample = _RESAMPLE[interpolation]
    if crop == "none":
        if img.size != (size, size):
            img = img.resize((size, size), resample)
        return np.array(img, dtype=np.uint8)
    short = round(size / CROP_RATIO) if crop == "center" else size
    w, h = img.size
    if crop == "center" or min(w, h) < size:
        # torchvision.transforms.Resize(short): shorter side -> short, longer side truncated
        new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        if new != (w, h):
            img = img.resize(new, resample)
        w, h = img.size
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    img = img.crop((left, top, left + size, top + size))
    return np.array(img, dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# a model's evaluation transform

#: the ImageNet mean and std of [0, 1] pixels (torchvision's and timm's defaults)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: PIL resampling filters under the names timm's and torchvision's configs use
PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
#: crop modes of timm's ``transforms_imagenet_eval`` (torchvision's presets are ``center``)
EVAL_CROP_MODES = ("center", "squash", "border")
#: timm's default crop percentage (``timm.data.DEFAULT_CROP_PCT``), 224 / 256
DEFAULT_CROP_PCT = 0.875


@dataclass(frozen=True)
class EvalTransform:
    """How a model's evaluation input is made from an image file, as timm and torchvision do.

    Decode to RGB, resize with PIL (``interpolation``), crop to ``size x size``, scale to
    [0, 1]; the model adapter then normalises with ``mean`` and ``std``. The crop modes are
    timm's (``timm.data.transforms_factory.transforms_imagenet_eval``):

    * ``center``: keep the aspect ratio, resize the shorter side to ``resize`` (the longer
      to ``int(resize * long / short)``) and take the centre ``size x size`` crop,
      zero-padded where the image is smaller: ``transforms.Resize(resize)`` +
      ``transforms.CenterCrop(size)``, torchvision's presets and timm's default.
    * ``squash``: resize to ``resize x resize``, then the centre crop.
    * ``border``: resize the longer side to ``resize`` (``ResizeKeepRatio(longest=1)``),
      then centre-crop or pad with the mean colour (``CenterCropOrPad``).

    A :class:`FileListDataset` decodes at a model's transform with
    :meth:`FileListDataset.with_transform`; two transforms with the same :meth:`decode_key`
    give the same pixels, so the engine decodes a dataset once for both.

    Attributes:
        size: side of the square model input.
        resize: the resize target (see the crop modes).
        crop_mode: one of :data:`EVAL_CROP_MODES`.
        interpolation: PIL filter name: nearest, bilinear, bicubic, box, hamming, lanczos.
        crop_pct: ``size / resize`` as the library gives it (timm's ``crop_pct``); used to
            recompute ``resize`` at another size (:meth:`with_size`).
        mean, std: per-channel normalisation of [0, 1] pixels.

    Example:
        >>> t = EvalTransform.from_timm_config(
        ...     {"input_size": (3, 224, 224), "crop_pct": 0.95, "interpolation": "bicubic",
        ...      "crop_mode": "center", "mean": (0.5,) * 3, "std": (0.5,) * 3})
        >>> t.size, t.resize, t.interpolation
        (224, 235, 'bicubic')
        >>> t.resize_and_crop(Image.new("RGB", (300, 200))).shape
        (224, 224, 3)
        >>> EvalTransform.imagenet(224).decode_key() == EvalTransform(224, 256).decode_key()
        True
    """

    size: int
    resize: int
    crop_mode: str = "center"
    interpolation: str = "bilinear"
    crop_pct: float = DEFAULT_CROP_PCT
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.size < 1 or self.resize < 1:
            raise ConfigError(f"eval transform: size and resize must be >= 1, got {self}")
        if self.crop_mode not in EVAL_CROP_MODES:
            raise ConfigError(
                f"eval transform: crop_mode {self.crop_mode!r} is not one of {EVAL_CROP_MODES}"
            )
        if self.interpolation not in PIL_FILTERS:
            raise ConfigError(
                f"eval transform: interpolation {self.interpolation!r} is not one of "
                f"{list(PIL_FILTERS)}"
            )

    @classmethod
    def from_timm_config(cls, cfg: Mapping[str, Any], name: str = "model") -> EvalTransform:
        """What ``timm.data.create_transform(**cfg)`` does at evaluation, for a data config
        from ``timm.data.resolve_data_config``: ``resize = floor(size / crop_pct)``.

        Raises:
            ConfigError: a non-square input size (name it with ``input_size``).
        """
        input_size = cfg["input_size"]
        if isinstance(input_size, int):
            size = input_size
        else:
            h, w = int(input_size[-2]), int(input_size[-1])
            if h != w:
                raise ConfigError(
                    f"model {name!r}: non-square input size {h}x{w}; pass input_size=<side> "
                    "explicitly"
                )
            size = h
        crop_pct = float(cfg.get("crop_pct") or DEFAULT_CROP_PCT)
        return cls(
            size=size,
            resize=math.floor(size / crop_pct),
            crop_mode=cfg.get("crop_mode") or "center",
            interpolation=str(cfg.get("interpolation") or "bilinear"),
            crop_pct=crop_pct,
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
        )

    @classmethod
    def imagenet(cls, size: int, interpolation: str = "bilinear") -> EvalTransform:
        """A dataset's own ``crop: center`` decode (:func:`resize_and_crop`) as a transform:
        the shorter side to ``round(size / 0.875)``, the centre crop."""
        return cls(size, round(size / CROP_RATIO), "center", interpolation, CROP_RATIO)

    def with_size(self, size: int) -> EvalTransform:
        """The same recipe at another input size (``resize = floor(size / crop_pct)``)."""
        if size == self.size:
            return self
        return replace(self, size=size, resize=math.floor(size / self.crop_pct))

    def describe(self) -> dict[str, Any]:
        """The resize and crop as JSON values (mean and std are the adapter's own)."""
        return {
            "size": self.size,
            "resize": self.resize,
            "crop_mode": self.crop_mode,
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }

    def fill(self) -> tuple[int, int, int] | None:
        """The colour padding takes in ``border`` mode (the mean), else ``None`` (zeros)."""
        if self.crop_mode != "border":
            return None
        r, g, b = (round(255 * v) for v in self.mean)
        return (r, g, b)

    def decode_key(self) -> tuple:
        """What decides the pixels (not ``crop_pct`` or ``std``): equal keys, equal arrays."""
        return (self.size, self.resize, self.crop_mode, self.interpolation, self.fill())

    def resized_shape(self, w: int, h: int) -> tuple[int, int]:
        """``(width, height)`` an image of ``w x h`` is resized to before the crop."""
        if self.crop_mode == "squash":
            return (self.resize, self.resize)
        if self.crop_mode == "border":  # at least 1 px: a sliver of an image stays decodable
            ratio = max(h / self.resize, w / self.resize)
            return (max(1, round(w / ratio)), max(1, round(h / ratio)))
        # torchvision Resize(int): shorter side -> resize, longer side truncated
        short = self.resize
        return (short, int(short * h / w)) if w <= h else (int(short * w / h), short)

    def _resized(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        new = self.resized_shape(w, h)
        return img if new == (w, h) else img.resize(new, PIL_FILTERS[self.interpolation])

    def resize_and_crop(self, img: Image.Image) -> np.ndarray:
        """An RGB PIL image as the model's uint8 input, shape (size, size, 3)."""
        arr = np.asarray(self._resized(img.convert("RGB")), dtype=np.uint8)
        h, w = arr.shape[:2]
        s = self.size
        if s > h or s > w:  # torchvision's CenterCrop / timm's CenterCropOrPad padding
            top, left = max(s - h, 0) // 2, max(s - w, 0) // 2
            padded = np.empty((max(h, s), max(w, s), 3), np.uint8)
            padded[...] = np.asarray(self.fill() or 0, np.uint8)
            padded[top : top + h, left : left + w] = arr
            arr, (h, w) = padded, padded.shape[:2]
        top, left = round((h - s) / 2.0), round((w - s) / 2.0)
        return np.ascontiguousarray(arr[top : top + s, left : left + s])

    def load(self, path: str | os.PathLike[str]) -> np.ndarray:
        """An image file as the model's uint8 input (robustlens's strict RGB decode)."""
        return self.resize_and_crop(decode_rgb(path))

    def pixels(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        """Image files as a (B, 3, size, size) float batch in [0, 1]: the adapter's input."""
        batch = np.stack([self.load(p) for p in paths])
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255)


# --------------------------------------------------------------------------------------------
# indexing


@dataclass(frozen=True)
class ImageEntry:
    """One image file of a dataset.

    Attributes:
        path: path relative to the dataset root, with ``/`` separators (also the sample id
            source).
        label: index into the dataset's class list.
        extras: extra integer labels (``texture_label``, ``spurious_label``, ...).
    """

    path: str
    label: int
    extras: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetMapping:
    """A mapping of a dataset's classes onto one fixed model class space.

    :meth:`FileListDataset.class_mapping` returns ``mapping`` when the model's classes are
    exactly ``model_classes`` (e.g. the 1000 ImageNet wnids in index order).
    """

    model_classes: tuple[str, ...]
    mapping: ClassMapping


@dataclass
class FolderIndex:
    """The result of :func:`index_image_folders`."""

    classes: list[str]
    entries: list[ImageEntry]
    ignored: list[str]
    skipped: list[tuple[str, str]]


#: why a symlinked directory was not scanned
NOT_FOLLOWED = "symlinked directory not followed (follow_symlinks: true follows it)"


class _Scanner:
    """Walks class folders: real directories first, then (if asked) symlinked ones.

    Every directory is scanned at most once (by resolved path), so a link to a parent or to
    another class folder cannot loop or count a file twice; a file reached through a second
    path is counted once, and a real path wins over a path through a symlink.
    """

    def __init__(self, root: Path, follow_symlinks: bool) -> None:
        self.root = root
        self.follow = follow_symlinks
        self.visited: set[str] = set()
        self.hidden: list[Path] = []
        self.passed: list[tuple[Path, str]] = []  # directories not scanned, and why
        self.links: list[tuple[int, Path]] = []  # (folder number, symlinked dir) for later

    def _dirs(self, folder_no: int, base: Path, dirnames: list[str], via_link: bool) -> list[str]:
        keep = []
        for d in sorted(dirnames):
            path = base / d
            if d.startswith("."):
                self.hidden.append(path)
                continue
            if path.is_symlink() and not via_link:
                if self.follow:
                    self.links.append((folder_no, path))
                else:
                    self.passed.append((path, NOT_FOLLOWED))
                continue
            if not self._enter(path):
                continue
            keep.append(d)
        return keep

    def _enter(self, path: Path) -> bool:
        real = os.path.realpath(path)
        if real in self.visited:
            base = os.path.realpath(self.root)
            inside = real == base or real.startswith(base + os.sep)
            where = os.path.relpath(real, base) + "/" if inside else real
            self.passed.append(
                (path, f"leads to {where}, already scanned (a symlink loop or a second path)")
            )
            return False
        self.visited.add(real)
        return True

    def walk(self, folder_no: int, folder: Path, via_link: bool = False) -> list[Path]:
        """Files under ``folder`` in sorted order (symlinked dirs kept for :meth:`walk_links`
        unless ``via_link``: then they are followed at once)."""
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=via_link):
            base = Path(dirpath)
            dirnames[:] = self._dirs(folder_no, base, dirnames, via_link)
            found.extend(base / f for f in filenames)
        return sorted(found, key=lambda p: p.as_posix())


def _walk_files(folder: Path, follow_symlinks: bool = False) -> tuple[list[Path], list[Path]]:
    """Files under ``folder`` (recursively, sorted by path) and the hidden folders skipped."""
    scan = _Scanner(folder, follow_symlinks)
    scan.visited.add(os.path.realpath(folder))
    found = scan.walk(0, folder)
    for _, link in scan.links:
        if scan._enter(link):
            found += scan.walk(0, link, via_link=True)
    return sorted(found, key=lambda p: p.as_posix()), sorted(scan.hidden)


def _through_link(root: Path, path: Path) -> bool:
    """Whether a directory between ``root`` and ``path`` is a symlink."""
    parent = path.parent
    while parent != root and root in parent.parents:
        if parent.is_symlink():
            return True
        parent = parent.parent
    return False


def _preview(names: Sequence[str], n: int = 10) -> str:
    shown = list(names[:n])
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return f"{shown}{more}"


def require_dir(root: str | os.PathLike[str], what: str, layout: str) -> Path:
    """``root`` as a :class:`Path` if it is a directory, else a :class:`DatasetLayoutError`.

    The error names ``what`` the root should hold and the expected ``layout``.
    """
    path = Path(root)
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "does not exist"
        raise DatasetLayoutError(f"{what} root {path} {state}; expected the layout {layout}")
    return path


def is_image_file(path: Path, extensions: Sequence[str]) -> bool:
    """An image by its (lower-cased) extension, and not a hidden file."""
    return path.suffix.lower() in extensions and not path.name.startswith(".")


ZERO_BYTE = "zero-byte file"


def skip_reason(path: Path) -> str | None:
    """Why an image file cannot be indexed (a dangling link, zero bytes), or ``None``."""
    try:
        size = path.stat().st_size
    except OSError as exc:  # dangling link
        return f"cannot stat: {exc}"
    return ZERO_BYTE if size == 0 else None


def _check_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if not exts:
        raise ValidationError("extensions: expected at least one image extension, got none")
    return exts


def index_image_folders(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    folder_labels: Mapping[str, int] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    allow_empty: bool = False,
    unknown_folders: str = "error",
    layout: str = DEFAULT_LAYOUT,
    expected: str | None = None,
    follow_symlinks: bool = False,
) -> FolderIndex:
    """Index a ``root/<folder>/<image>`` tree without decoding anything.

    Folders are visited in sorted order and files in sorted order (recursively), so the
    index is deterministic. Non-image files (by extension) and hidden folders go to
    ``ignored``; zero-byte image files go to ``skipped`` with a reason, and so do symlinked
    directories that are not followed, directories reached a second time and second paths to
    a file already indexed.

    Args:
        root: dataset root.
        classes: the class list. Default: the sorted folder names.
        folder_labels: folder name -> class index (e.g. ImageNet-V2's ``"7" -> 7``).
            Default: a folder's label is the position of its name in ``classes``.
        extensions: image file extensions (case-insensitive).
        allow_empty: keep a class folder that holds no image instead of raising.
        unknown_folders: ``"error"`` (default) or ``"ignore"`` (listed in ``ignored`` as
            ``"<folder>/"``) for folders that are not classes.
        layout: the expected layout, named in errors.
        expected: what the folders should be, named in errors (e.g. ``"200 ImageNet-R wnid
            folders like n01443537/"``).
        follow_symlinks: follow symlinked directories (class folders included); each
            directory is scanned once, by resolved path, so a link to a parent cannot loop.

    Returns:
        A :class:`FolderIndex` with the class list, entries, ignored and skipped files.

    Raises:
        DatasetLayoutError: missing root, no class folders, unknown folders, empty class folder.
    """
    exts = _check_extensions(extensions)
    if unknown_folders not in ("error", "ignore"):
        raise ValidationError(
            f"unknown_folders: expected 'error' or 'ignore', got {unknown_folders!r}"
        )
    root = require_dir(root, "dataset", layout)
    ignored: list[str] = []
    folders: list[Path] = []
    skipped: list[tuple[str, str]] = []
    scan = _Scanner(root, follow_symlinks)
    scan.visited.add(os.path.realpath(root))
    linked: set[Path] = set()  # symlinked class folders (followed)
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.is_dir():
            if child.name.startswith("."):
                ignored.append(child.name + "/")
            elif child.is_symlink() and not follow_symlinks:
                skipped.append((child.name + "/", NOT_FOLLOWED))
            else:
                folders.append(child)
                if child.is_symlink():
                    linked.add(child)
        else:
            ignored.append(child.name)
    if not folders:
        raise DatasetLayoutError(
            f"no class folders in {root}; expected the layout {layout}, found "
            f"{len(ignored)} file(s) and no folders: {_preview(ignored)}"
        )
    names = [f.name for f in folders]
    if classes is None and folder_labels is None:
        classes = names
    class_list = list(classes) if classes is not None else None
    if folder_labels is None:
        assert class_list is not None
        folder_labels = {c: i for i, c in enumerate(class_list)}
    elif class_list is None:
        raise ValidationError("folder_labels needs an explicit class list (classes=...)")
    assert class_list is not None
    n_classes = len(class_list)
    for key, lab in folder_labels.items():
        if not 0 <= int(lab) < n_classes:
            raise ValidationError(
                f"folder_labels[{key!r}] = {lab} is outside the {n_classes} classes"
            )
    unknown = [n for n in names if n not in folder_labels]
    if unknown and unknown_folders == "error":
        want = expected or f"{n_classes} class folders such as {_preview(class_list, 3)}"
        raise DatasetLayoutError(
            f"unexpected folders in {root}: expected {want} (layout {layout}); found "
            f"{len(unknown)} folder(s) that are not: {_preview(unknown)}"
        )
    # real class folders first, then symlinked ones and the links inside (when followed):
    # a file reached by a real path is indexed there, a second path to it is a skip
    class_folders = [(k, f) for k, f in enumerate(folders) if f.name in folder_labels]
    for f in folders:
        if f.name not in folder_labels:
            ignored.append(f.name + "/")
    files: dict[int, list[Path]] = {k: [] for k, _ in class_folders}
    for k, folder in class_folders:
        if folder not in linked and scan._enter(folder):
            files[k] += scan.walk(k, folder)
    pending = [(k, f) for k, f in class_folders if f in linked] + scan.links
    scan.links = []
    while pending:
        for k, link in pending:
            if scan._enter(link):
                files[k] += scan.walk(k, link, via_link=True)
        pending, scan.links = scan.links, []
    ignored.extend(h.relative_to(root).as_posix() + "/" for h in sorted(scan.hidden))
    skipped.extend((p.relative_to(root).as_posix() + "/", why) for p, why in scan.passed)
    claimed: dict[str, str] = {}  # resolved file -> the entry's relative path
    order = sorted(
        ((k, path) for k, paths in files.items() for path in paths),
        key=lambda kp: (kp[1].is_symlink() or _through_link(root, kp[1]), kp[0]),
    )
    duplicate: dict[Path, str] = {}
    for _, path in order:
        if not is_image_file(path, exts):
            continue
        real = os.path.realpath(path)
        rel = path.relative_to(root).as_posix()
        if real in claimed:
            duplicate[path] = claimed[real]
        else:
            claimed[real] = rel
    entries: list[ImageEntry] = []
    for k, folder in class_folders:
        label = int(folder_labels[folder.name])
        n_images = 0
        n_zero = 0
        for path in sorted(files[k], key=lambda p: p.as_posix()):
            rel = path.relative_to(root).as_posix()
            if not is_image_file(path, exts):
                ignored.append(rel)
                continue
            if path in duplicate:
                skipped.append((rel, f"same file as {duplicate[path]} (counted once)"))
                continue
            reason = skip_reason(path)
            if reason is not None:
                skipped.append((rel, reason))
                if reason == ZERO_BYTE:
                    n_zero += 1
                continue
            entries.append(ImageEntry(rel, label))
            n_images += 1
        if n_images == 0 and not allow_empty:
            why = f" (only {n_zero} zero-byte file(s))" if n_zero else ""
            inside = folder.as_posix() + "/"
            n_links = sum(
                1 for p, r in scan.passed if r == NOT_FOLLOWED and p.as_posix().startswith(inside)
            )
            if n_links:
                why += f" ({n_links} symlinked director(ies) in it are not followed)"
            why += "".join(f" ({r})" for p, r in scan.passed if p == folder)
            raise DatasetLayoutError(
                f"class folder {folder} contains no images{why}; expected at least one "
                f"{'/'.join(exts)} file per class folder (layout {layout}). Remove the folder "
                "or pass allow_empty=True to keep the class without samples."
            )
    if not entries:
        raise DatasetLayoutError(
            f"no images found under {root}; expected the layout {layout} "
            f"(found folders {_preview(names)})"
        )
    return FolderIndex(class_list, entries, ignored, skipped)


# --------------------------------------------------------------------------------------------
# datasets


class FileListDataset(Dataset):
    """A dataset over an explicit, ordered list of image files under ``root``.

    Samples are decoded with :func:`decode_rgb`, optionally stripped of a ``border`` of pixels
    on every side, then resized and cropped with :func:`resize_and_crop`. Labels, sample ids
    and extra labels come from the index and never decode an image. A sample's id is
    ``stable_id(relative path)``.

    Args:
        root: directory the entry paths are relative to.
        entries: the files, in dataset order.
        classes: the class names; ``entry.label`` indexes this list.
        name: dataset name.
        size: output side length.
        crop: one of :data:`CROP_MODES`.
        border: pixels removed from every side before resizing (ObjectNet's 1-pixel frame).
        interpolation: ``bilinear`` or ``bicubic``.
        extra_label_names: names of the extra labels every entry carries.
        ignored: files left out because they are not images (or not part of the set).
        skipped: ``(path, reason)`` of files that cannot be decoded.
        target_mapping: a known mapping onto one model class space (see
            :class:`TargetMapping`).
        layout: the expected layout, for messages.
        max_pixels: images with more pixels are refused as decompression bombs (recorded in
            ``skipped``); ``None``: PIL's ``Image.MAX_IMAGE_PIXELS``; ``0``: no limit.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        entries: Sequence[ImageEntry],
        classes: Sequence[str],
        *,
        name: str,
        size: int = 224,
        crop: str = "center",
        border: int = 0,
        interpolation: str = "bilinear",
        extra_label_names: Sequence[str] = (),
        ignored: Sequence[str] = (),
        skipped: Sequence[tuple[str, str]] = (),
        target_mapping: TargetMapping | None = None,
        layout: str = DEFAULT_LAYOUT,
        max_pixels: int | None = None,
    ) -> None:
        if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
            raise ValidationError(f"size: expected a positive integer, got {size!r}")
        if crop not in CROP_MODES:
            raise ValidationError(f"crop: expected one of {list(CROP_MODES)}, got {crop!r}")
        if interpolation not in _RESAMPLE:
            raise ValidationError(
                f"interpolation: expected one of {list(_RESAMPLE)}, got {interpolation!r}"
            )
        if not isinstance(border, int | np.integer) or border < 0:
            raise ValidationError(f"border: expected a non-negative integer, got {border!r}")
        if max_pixels is not None and (
            not isinstance(max_pixels, int | np.integer) or max_pixels < 0
        ):
            raise ValidationError(
                f"max_pixels: expected a non-negative integer (0: no limit), got {max_pixels!r}"
            )
        self.max_pixels = None if max_pixels is None else int(max_pixels)
        self.root = Path(root)
        self.name = name
        self.classes = list(classes)
        self.size = int(size)
        self.crop = crop
        self.border = int(border)
        self.interpolation = interpolation
        self.layout = layout
        self.extra_label_names = tuple(extra_label_names)
        self.target_mapping = target_mapping
        self.ignored: list[str] = list(ignored)
        self.skipped = list(skipped)
        self._index_skipped = tuple((str(i), str(r)) for i, r in skipped)
        n = len(self.classes)
        for e in entries:
            if not 0 <= e.label < n:
                raise ValidationError(
                    f"entry {e.path}: label {e.label} is outside the {n} classes of {name!r}"
                )
            missing = [k for k in self.extra_label_names if k not in e.extras]
            if missing:
                raise ValidationError(f"entry {e.path}: missing extra labels {missing}")
        if target_mapping is not None and target_mapping.mapping.n_classes != n:
            raise ValidationError(
                f"target_mapping maps {target_mapping.mapping.n_classes} classes but "
                f"{name!r} has {n}"
            )
        self._entries: list[ImageEntry] = list(entries)
        self._ids = [stable_id(e.path) for e in self._entries]
        self._fp_cache: tuple[str, str] | None = None
        self._acceptable: dict[str, tuple[int, ...]] | None = None
        #: a model's evaluation transform this copy decodes at (:meth:`with_transform`)
        self.transform: EvalTransform | None = None

    # -- acceptable labels -------------------------------------------------------------------

    def set_acceptable_labels(self, labels: Mapping[str, Sequence[int]]) -> None:
        """Give every sample the set of labels that count as correct (ReaL-style).

        Args:
            labels: file -> class indices of this dataset; a key is a path relative to
                ``root`` or a bare file name (as in ImageNet ReaL, ``ILSVRC2012_val_...``).
                Files without a key get an empty set (left out of the ReaL-style accuracy).

        Raises:
            ValidationError: an index outside the classes, or no key matches any file.
        """
        n = len(self.classes)
        clean: dict[str, tuple[int, ...]] = {}
        for key, idx in labels.items():
            t = tuple(int(i) for i in idx)
            bad = [i for i in t if not 0 <= i < n]
            if bad:
                raise ValidationError(
                    f"acceptable labels of {key!r}: {bad} outside the {n} classes of {self.name!r}"
                )
            clean[str(key)] = t
        hits = sum(1 for e in self._entries if self._acceptable_of(e.path, clean) is not None)
        if self._entries and hits == 0:
            raise ValidationError(
                f"acceptable labels: none of the {len(clean)} keys names a file of "
                f"{self.name!r} (keys are paths relative to {self.root} or bare file names, "
                f"e.g. {self._entries[0].path!r})"
            )
        self._acceptable = clean
        self._fp_cache = None

    @staticmethod
    def _acceptable_of(path: str, labels: Mapping[str, tuple[int, ...]]) -> tuple[int, ...] | None:
        found = labels.get(path)
        return found if found is not None else labels.get(path.rsplit("/", 1)[-1])

    def acceptable_labels(self) -> np.ndarray | None:
        if self._acceptable is None:
            return None
        rows = [self._acceptable_of(e.path, self._acceptable) or () for e in self._entries]
        out = np.full((len(rows), max([1, *map(len, rows)])), -1, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    # -- index -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> list[ImageEntry]:
        """The indexed files, in dataset order (a copy)."""
        return list(self._entries)

    def path(self, index: int) -> Path:
        """Absolute path of sample ``index``."""
        return self.root / self._entries[index].path

    def labels(self) -> np.ndarray:
        """All labels (int64), read from the index: no image is decoded."""
        return np.fromiter((e.label for e in self._entries), dtype=np.int64, count=len(self))

    def sample_ids(self) -> np.ndarray:
        """``stable_id`` of every relative path (int64), without decoding."""
        return np.asarray(self._ids, dtype=np.int64).reshape(-1)

    def extra_labels(self) -> dict[str, np.ndarray]:
        """Extra labels by name (int64 arrays), without decoding."""
        return {
            k: np.fromiter((e.extras[k] for e in self._entries), dtype=np.int64, count=len(self))
            for k in self.extra_label_names
        }

    def class_mapping(self, model_classes: Sequence[str]) -> ClassMapping:
        """Map the dataset's classes onto a model's classes.

        Identity when the class lists agree; the dataset's :class:`TargetMapping` when the
        model's classes are exactly its ``model_classes``; otherwise matching by name
        (:meth:`Dataset.class_mapping`, which raises ``ClassMismatchError`` naming both
        class counts).

        Args:
            model_classes: the model's class names in output order.

        Returns:
            The :class:`ClassMapping` to apply to the model's logits.
        """
        model_classes = list(model_classes)
        if model_classes == self.classes:
            return ClassMapping.identity(len(self.classes))
        tm = self.target_mapping
        if tm is not None and tuple(model_classes) == tm.model_classes:
            return tm.mapping
        return super().class_mapping(model_classes)

    # -- decoding ----------------------------------------------------------------------------

    def _record_skip(self, rel: str, reason: str) -> None:
        if all(p != rel for p, _ in self.skipped):
            self.skipped.append((rel, reason))

    def with_transform(self, transform: EvalTransform | None) -> FileListDataset:
        """The same files decoded at a model's evaluation transform.

        Only a ``crop: center`` dataset (the generic evaluation decode) takes a model's
        transform; a dataset whose protocol fixes the decode (``crop`` or ``none``), and
        ``transform=None``, give ``self``. The copy shares the index and the list of
        skipped files; its fingerprint covers the transform.

        Example:
            >>> import tempfile, pathlib
            >>> root = pathlib.Path(tempfile.mkdtemp())
            >>> (root / "cat").mkdir()
            >>> Image.new("RGB", (300, 200), "red").save(root / "cat" / "a.png")
            >>> ds = ImageFolderDataset(root, size=224)
            >>> small = ds.with_transform(EvalTransform(160, 182, interpolation="bicubic"))
            >>> small.load(0).image.shape, ds.load(0).image.shape
            ((160, 160, 3), (224, 224, 3))
            >>> small.fingerprint() != ds.fingerprint()
            True
        """
        if transform is None or self.crop != "center" or transform == self.transform:
            return self
        other = copy.copy(self)
        other.transform = transform
        other._fp_cache = None
        return other

    def decoding(self, transform: EvalTransform | None = None) -> tuple:
        """What decides the pixels of ``with_transform(transform)``: two transforms with the
        same value decode to the same arrays (the dataset's own ``crop: center`` decode is
        :meth:`EvalTransform.imagenet` at its size)."""
        if self.crop != "center":
            return ("protocol", self.size, self.crop, self.interpolation, self.border)
        t = transform or self.transform or EvalTransform.imagenet(self.size, self.interpolation)
        return ("transform", self.border, *t.decode_key())

    def _decode(self, entry: ImageEntry) -> np.ndarray:
        path = self.root / entry.path
        img = decode_rgb(path) if self.max_pixels is None else decode_rgb(path, self.max_pixels)
        if self.border:
            w, h = img.size
            b = self.border
            if w <= 2 * b or h <= 2 * b:
                raise CorruptImageError(
                    path,
                    f"image of {w}x{h} px is too small to remove a {b}-pixel border",
                )
            img = img.crop((b, b, w - b, h - b))
        if self.transform is not None:
            return self.transform.resize_and_crop(img)
        return resize_and_crop(img, self.size, self.crop, self.interpolation)

    def load(self, index: int) -> Sample:
        """Decode sample ``index`` to a uint8 (size, size, 3) image with its labels.

        Args:
            index: position in the dataset (negative indices count from the end).

        Returns:
            The decoded :class:`Sample`.

        Raises:
            CorruptImageError: the file cannot be decoded (it is also recorded in ``skipped``);
                its ``item`` is the path relative to ``root``.
        """
        entry = self._entries[index]
        sid = self._ids[index]
        try:
            image = self._decode(entry)
        except CorruptImageError as exc:
            self._record_skip(entry.path, exc.reason)
            exc.item = entry.path  # type: ignore[attr-defined]
            raise
        return Sample(image, entry.label, sid, dict(entry.extras))

    def verify(self, workers: int = 1) -> list[tuple[str, str]]:
        """Decode every image; move the ones that fail from the index into ``skipped``.

        Args:
            workers: decoding threads (PIL releases the GIL while decoding).

        Returns:
            The ``(relative path, reason)`` pairs removed by this call.
        """

        def check(entry: ImageEntry) -> str | None:
            try:
                self._decode(entry)
            except CorruptImageError as exc:
                return exc.reason
            return None

        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                reasons = list(pool.map(check, self._entries))
        else:
            reasons = [check(e) for e in self._entries]
        failed = [(e.path, r) for e, r in zip(self._entries, reasons, strict=True) if r is not None]
        if failed:
            keep = [i for i, r in enumerate(reasons) if r is None]
            self._entries = [self._entries[i] for i in keep]
            self._ids = [self._ids[i] for i in keep]
            for rel, reason in failed:
                self._record_skip(rel, reason)
            self._fp_cache = None
        return failed

    # -- fingerprint -------------------------------------------------------------------------

    def _stat_signature(self) -> str:
        h = hashlib.sha256()
        for e in self._entries:
            try:
                st = (self.root / e.path).stat()
                h.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
            except OSError:
                h.update(f"{e.path}\0missing\n".encode())
        return h.hexdigest()

    def fingerprint(self) -> str:
        """SHA-256 of the content and the preprocessing.

        Covers, per file: relative path, label, extra labels, size in bytes and the first and
        last 4 KiB of its bytes (so the fingerprint survives copying, unlike mtimes); plus
        the class list, ``size``, ``crop``, ``border``, ``interpolation`` and the model
        transform of :meth:`with_transform` (when set). A change in
        the middle of a file larger than 8 KiB that keeps its size is not seen. The digest is
        cached and recomputed when any file's size or mtime changes.

        Returns:
            A 64-character hex digest.
        """
        signature = self._stat_signature()
        if self._fp_cache is not None and self._fp_cache[0] == signature:
            return self._fp_cache[1]
        h = hashlib.sha256()
        header = {
            "format": _FINGERPRINT_VERSION,
            "classes": self.classes,
            "size": self.size,
            "crop": self.crop,
            "border": self.border,
            "interpolation": self.interpolation,
            "extras": list(self.extra_label_names),
        }
        if self.transform is not None:  # decoded at a model's transform (with_transform)
            header["transform"] = [*self.transform.decode_key()]
        if self.max_pixels is not None:  # which files are refused (old digests still hold)
            header["max_pixels"] = self.max_pixels
        if self._index_skipped:  # what indexing left out is listed with the dataset's results
            header["skipped"] = sorted(self._index_skipped)
        acceptable = self.acceptable_labels()
        if acceptable is not None:  # absent from the header otherwise: old digests still hold
            header["acceptable"] = hashlib.sha256(acceptable.tobytes()).hexdigest()
        h.update(json.dumps(header, sort_keys=True).encode())
        for e in self._entries:
            extras = ",".join(f"{k}={e.extras[k]}" for k in self.extra_label_names)
            path = self.root / e.path
            try:
                size = path.stat().st_size
                with open(path, "rb") as f:
                    head = f.read(_EDGE_BYTES)
                    tail = b""
                    if size > _EDGE_BYTES:
                        f.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
                        tail = f.read(_EDGE_BYTES)
                digest = hashlib.sha256(head + b"\0" + tail).hexdigest()
            except OSError:
                size, digest = -1, "missing"
            h.update(f"\n{e.path}\0{e.label}\0{extras}\0{size}\0{digest}".encode())
        value = h.hexdigest()
        self._fp_cache = (signature, value)
        return value


class ImageFolderDataset(FileListDataset):
    """The generic ``root/<class>/<image>.jpg`` layout.

    The index is built at construction (see :func:`index_image_folders`): class folders in
    sorted order, files in sorted order; non-image files go to ``ignored``, zero-byte files to
    ``skipped``. Call :meth:`verify` to decode everything up front and drop undecodable files.

    Args:
        root: dataset root.
        size: output side length.
        name: dataset name (default: the root folder's name).
        classes: the class list (default: the sorted folder names). With a list, folders must
            be among it; classes without a folder simply have no samples.
        crop: one of :data:`CROP_MODES` (``center`` = ImageNet eval transform).
        extensions: image file extensions (case-insensitive).
        allow_empty: keep class folders without images instead of raising.
        folder_labels: folder name -> class index, for folders not named like their class.
        unknown_folders: ``"error"`` or ``"ignore"`` for folders that are not classes.
        border: pixels removed from every side before resizing.
        interpolation: ``bilinear`` or ``bicubic``.
        layout: the expected layout, named in errors.
        expected: what the class folders should be, named in errors.
        target_mapping: a known mapping onto one model class space.
        follow_symlinks: follow symlinked directories (each directory is scanned once, by
            resolved path; by default they are listed in ``skipped`` and not scanned).
        max_pixels: refuse images with more pixels (decompression bombs; ``None``: PIL's
            limit, ``0``: none).

    Raises:
        DatasetLayoutError: missing root, no class folders, an empty class folder, or
            (with ``classes``) a folder that is not a class. Errors name the expected layout.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c in ("cat", "dog"):
        ...     (root / c).mkdir()
        ...     Image.new("RGB", (20, 10), "red").save(root / c / "a.png")
        >>> ds = ImageFolderDataset(root, size=8)
        >>> ds.classes, len(ds), ds.load(1).image.shape, ds.load(1).label
        (['cat', 'dog'], 2, (8, 8, 3), 1)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 224,
        name: str | None = None,
        classes: Sequence[str] | None = None,
        crop: str = "center",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        *,
        allow_empty: bool = False,
        folder_labels: Mapping[str, int] | None = None,
        unknown_folders: str = "error",
        border: int = 0,
        interpolation: str = "bilinear",
        layout: str = DEFAULT_LAYOUT,
        expected: str | None = None,
        target_mapping: TargetMapping | None = None,
        follow_symlinks: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        index = index_image_folders(
            root,
            classes=classes,
            folder_labels=folder_labels,
            extensions=extensions,
            allow_empty=allow_empty,
            unknown_folders=unknown_folders,
            layout=layout,
            expected=expected,
            follow_symlinks=follow_symlinks,
        )
        super().__init__(
            root,
            index.entries,
            index.classes,
            name=name or Path(root).resolve().name,
            size=size,
            crop=crop,
            border=border,
            interpolation=interpolation,
            ignored=index.ignored,
            skipped=index.skipped,
            target_mapping=target_mapping,
            layout=layout,
            max_pixels=max_pixels,
        )


# --------------------------------------------------------------------------------------------
# unlabelled images

#: the layout :class:`UnlabeledFolderDataset` reads, named in its errors
UNLABELED_LAYOUT = "root/**/<image>.jpg (any folder tree of images; no labels)"
#: the label of every sample of an unlabelled dataset: no class (it equals no prediction)
NO_LABEL = -1


def index_unlabeled_folder(
    root: str | os.PathLike[str],
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    follow_symlinks: bool = False,
) -> FolderIndex:
    """Index every image under ``root`` (recursively, sorted by path), without labels.

    Folder names mean nothing here. As in :func:`index_image_folders`: non-image files and
    hidden folders go to ``ignored``; zero-byte files, symlinked directories not followed,
    directories reached a second time and second paths to a file already indexed go to
    ``skipped`` with the reason. Every entry has the label :data:`NO_LABEL`; the class list
    is empty.

    Raises:
        DatasetLayoutError: the root is missing or holds no image.
    """
    exts = _check_extensions(extensions)
    root = require_dir(root, "unlabelled dataset", UNLABELED_LAYOUT)
    scan = _Scanner(root, follow_symlinks)
    scan.visited.add(os.path.realpath(root))
    files = scan.walk(0, root)
    pending, scan.links = scan.links, []
    while pending:
        for _, link in pending:
            if scan._enter(link):
                files += scan.walk(0, link, via_link=True)
        pending, scan.links = scan.links, []
    ignored = [h.relative_to(root).as_posix() + "/" for h in sorted(scan.hidden)]
    skipped = [(p.relative_to(root).as_posix() + "/", why) for p, why in scan.passed]
    claimed: dict[str, str] = {}  # resolved file -> the entry's relative path
    kept: list[str] = []
    # a file reached by a real path is indexed there, a second path to it is a skip
    for path in sorted(files, key=lambda p: (p.is_symlink() or _through_link(root, p), p)):
        rel = path.relative_to(root).as_posix()
        if not is_image_file(path, exts):
            ignored.append(rel)
            continue
        real = os.path.realpath(path)
        if real in claimed:
            skipped.append((rel, f"same file as {claimed[real]} (counted once)"))
            continue
        reason = skip_reason(path)
        if reason is not None:
            skipped.append((rel, reason))
            continue
        claimed[real] = rel
        kept.append(rel)
    if not kept:
        raise DatasetLayoutError(
            f"no images found under {root}; expected the layout {UNLABELED_LAYOUT} "
            f"({'/'.join(exts)} files); found {len(ignored)} other file(s): {_preview(ignored)}"
        )
    entries = [ImageEntry(rel, NO_LABEL) for rel in sorted(kept)]
    return FolderIndex([], entries, sorted(ignored), skipped)


class UnlabeledFolderDataset(FileListDataset):
    """Any folder tree of images, without labels: the ``unlabeled`` layout.

    The images a model will meet in deployment, whose accuracy robustlens estimates from
    label-free measures (``robustlens estimate``). Every sample's label is :data:`NO_LABEL`
    and the class list is empty; its study role is ``unlabeled``, which no measure that needs
    labels reads. Predictions are in the model's own class space
    (:meth:`class_mapping` is the identity over the model's classes).

    Args:
        root: the folder; every image under it (recursively) is a sample, in path order.
        size, name, crop, extensions, interpolation, follow_symlinks, max_pixels: as for
            :class:`ImageFolderDataset`.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "day1").mkdir()
        >>> Image.new("RGB", (20, 10), "red").save(root / "day1" / "a.png")
        >>> Image.new("RGB", (20, 10), "blue").save(root / "b.png")
        >>> ds = UnlabeledFolderDataset(root, size=8)
        >>> ds.classes, len(ds), ds.labels().tolist(), [e.path for e in ds.entries]
        ([], 2, [-1, -1], ['b.png', 'day1/a.png'])
        >>> ds.class_mapping(["cat", "dog", "fox"]).n_classes
        3
    """

    #: the samples carry no labels (:data:`NO_LABEL`)
    labelled = False

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 224,
        name: str | None = None,
        crop: str = "center",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        *,
        interpolation: str = "bilinear",
        follow_symlinks: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        index = index_unlabeled_folder(root, extensions=extensions, follow_symlinks=follow_symlinks)
        super().__init__(
            root,
            [],
            [],
            name=name or Path(root).resolve().name,
            size=size,
            crop=crop,
            interpolation=interpolation,
            ignored=index.ignored,
            skipped=index.skipped,
            layout=UNLABELED_LAYOUT,
            max_pixels=max_pixels,
        )
        # set after the base class, whose check wants every label among the classes
        self._entries = list(index.entries)
        self._ids = [stable_id(e.path) for e in self._entries]

    def published_mapping(self) -> bool:
        """True: the class space is fixed here (the model's own, :meth:`class_mapping`); with
        no labels, there is nothing to relabel into the model's classes."""
        return True

    def class_mapping(self, model_classes: Sequence[str], *args: object, **kwargs: object):
        """The identity over the model's classes: predictions stay the model's own."""
        n = len(list(model_classes))
        return dataclasses.replace(
            ClassMapping.identity(n), description=f"the model's {n} classes (no labels)"
        )
