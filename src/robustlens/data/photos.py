"""Real photos with ImageNet labels, offline: the scikit-image sample photos.

``skimage.data`` ships a few natural photos. ``resources/skimage_imagenet_labels.csv``
labels, by hand, those whose ImageNet-1k class is defensible, with every acceptable class
index (and its wnid) per photo; the first one is the folder label. Photos left out on
purpose: ``astronaut`` (a person: ImageNet-1k has no person class), ``stereo_motorcycle``
(no motorcycle class; moped / motor scooter would be wrong), ``cat`` (the same photo as
``chelsea``), and the textures, microscopy, astronomy and scanned-text images. ``clock`` is
kept although motion blur makes it hard: it is the second photo among the 16 cue-conflict
categories (with the cat), which :func:`build_cue_conflict_folder` needs.

:func:`build_photo_folder` writes them as an ImageNet-format tree ``root/{wnid}/{photo}.png``
so that every real-data code path (folder datasets, ImageNet class mapping, real
pretrained models) can be exercised end to end without a download.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import skimage.data
from PIL import Image
from scipy.ndimage import gaussian_filter

__all__ = [
    "LABELS_RESOURCE",
    "build_cue_conflict_folder",
    "build_photo_folder",
    "cue_conflict_image",
    "load_photo",
    "photo_acceptable_labels",
    "photo_categories",
    "photo_labels",
]

#: The shipped label file, relative to the ``robustlens`` package.
LABELS_RESOURCE = "resources/skimage_imagenet_labels.csv"


def photo_labels() -> pd.DataFrame:
    """The hand-made ImageNet labels of the scikit-image photos.

    Returns:
        One row per photo with columns ``photo`` (``skimage.data`` function name),
        ``label`` (first acceptable ImageNet index), ``wnid`` (its WordNet id),
        ``indices`` and ``wnids`` (tuples of every acceptable index / wnid),
        ``names`` (tuple of short class names) and ``note`` (why these labels).

    Example:
        >>> df = photo_labels()
        >>> row = df.set_index("photo").loc["coffee"]
        >>> int(row.label), row.wnid, row.indices
        (967, 'n07920052', (967, 968))
    """
    text = resources.files("robustlens").joinpath(LABELS_RESOURCE).read_text(encoding="utf-8")
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    indices = [tuple(int(i) for i in s.split(";")) for s in raw["indices"]]
    wnids = [tuple(s.split(";")) for s in raw["wnids"]]
    names = [tuple(s.split(";")) for s in raw["names"]]
    for photo, idx, wn, nm in zip(raw["photo"], indices, wnids, names, strict=True):
        if not (len(idx) == len(wn) == len(nm)):
            raise ValueError(
                f"{LABELS_RESOURCE}: row {photo!r} lists {len(idx)} indices, {len(wn)} wnids "
                f"and {len(nm)} names; expected the same number of each"
            )
    return pd.DataFrame(
        {
            "photo": raw["photo"],
            "label": [i[0] for i in indices],
            "wnid": [w[0] for w in wnids],
            "indices": indices,
            "wnids": wnids,
            "names": names,
            "note": raw["note"],
        }
    )


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bicubic, antialiased) and centre-crop a square."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(image).resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(pil.crop((left, top, left + size, top + size)))


def load_photo(photo: str, size: int | None = None) -> np.ndarray:
    """A scikit-image sample photo as ``uint8`` RGB of shape (H, W, 3).

    Grayscale photos are copied to three channels; an alpha channel is dropped.

    Args:
        photo: name of the ``skimage.data`` function, e.g. ``"chelsea"``.
        size: if given, resize the shorter side to ``size`` and centre-crop to
            ``size x size``.

    Example:
        >>> load_photo("camera", size=64).shape
        (64, 64, 3)
    """
    loader = getattr(skimage.data, photo, None)
    if loader is None or not callable(loader):
        raise ValueError(f"skimage.data has no photo named {photo!r}")
    img = np.asarray(loader())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        raise ValueError(f"skimage.data.{photo}() is {img.dtype}, expected a uint8 photo")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"skimage.data.{photo}() has shape {img.shape}, expected (H, W[, 3|4])")
    img = np.ascontiguousarray(img)
    return _square_resize(img, size) if size is not None else img


def build_photo_folder(
    root: str | os.PathLike[str],
    size: int | None = None,
    photos: list[str] | None = None,
) -> Path:
    """Write the labelled photos as an ImageNet-format tree ``root/{wnid}/{photo}.png``.

    The folder is the photo's first acceptable class (see :func:`photo_labels`). Images are
    RGB PNGs (grayscale photos converted). Existing files are overwritten.

    Args:
        root: output directory (created if missing).
        size: if given, resize the shorter side to ``size`` and centre-crop a square.
        photos: subset of photo names (default: every labelled photo).

    Returns:
        ``Path(root)``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     out = build_photo_folder(d, size=32, photos=["coffee"])
        ...     sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
        ['n07920052/coffee.png']
    """
    labels = photo_labels()
    if photos is not None:
        unknown = sorted(set(photos) - set(labels["photo"]))
        if unknown:
            raise ValueError(
                f"no ImageNet label for photos {unknown}; labelled photos: {list(labels['photo'])}"
            )
        labels = labels[labels["photo"].isin(photos)]
    out = Path(root)
    for row in labels.itertuples(index=False):
        folder = out / row.wnid
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(load_photo(row.photo, size=size)).save(folder / f"{row.photo}.png")
    return out


def photo_acceptable_labels() -> dict[str, list[int]]:
    """Every acceptable ImageNet index per file of :func:`build_photo_folder`'s tree.

    The folder holds one label per photo (its first acceptable class); this mapping, in the
    format of a study dataset's ``acceptable_labels`` file, lets the accuracy measure count
    any of them as correct (ReaL-style), e.g. Egyptian cat for the tabby photo.

    Example:
        >>> photo_acceptable_labels()["n02123045/chelsea.png"]
        [281, 282, 285]
    """
    return {
        f"{row.wnid}/{row.photo}.png": list(row.indices)
        for row in photo_labels().itertuples(index=False)
    }


def photo_categories(mapping: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """Photo -> category of ``mapping`` (e.g. the 16 cue-conflict ones) containing its labels.

    A photo belongs to a category when its first acceptable ImageNet index is among the
    category's indices; photos in no category are left out.

    Example:
        >>> photo_categories({"cat": [281, 282, 285], "cup": [968]})
        {'chelsea': 'cat'}
    """
    out = {}
    for row in photo_labels().itertuples(index=False):
        hits = [c for c, idx in mapping.items() if row.label in set(idx)]
        if len(hits) > 1:
            raise ValueError(
                f"photo {row.photo!r} (ImageNet {row.label}) falls into several categories "
                f"{hits}; a category mapping must not share indices"
            )
        if hits:
            out[row.photo] = hits[0]
    return out


def cue_conflict_image(
    shape: np.ndarray, texture: np.ndarray, seed: int, patch: int | None = None
) -> np.ndarray:
    """A shape-vs-texture cue-conflict image: one photo's form, another photo's texture.

    ``out = lowpass(shape) + shuffle(highpass(texture))``, per channel. ``lowpass`` is a
    Gaussian blur with sigma = side / 48: it keeps the global form and contours of the shape
    photo. ``highpass`` is the texture photo minus its own blur: its texture. ``shuffle``
    cuts that into ``patch``-sized tiles (default side / 16) and reassembles them in a random
    order, which keeps local statistics and destroys the texture photo's own form (patch
    shuffling, as in the texture controls of Geirhos et al., ICLR 2019). A cheap, offline
    stand-in for the style-transferred stimuli of that paper, not a copy of them.

    Args:
        shape: uint8 (S, S, 3) photo giving the shape.
        texture: uint8 (S, S, 3) photo giving the texture.
        seed: seed of the tile order.
        patch: tile side in pixels; must divide S.

    Returns:
        uint8 (S, S, 3).
    """
    if shape.shape != texture.shape or shape.ndim != 3 or shape.shape[0] != shape.shape[1]:
        raise ValueError(
            f"shape and texture must be square RGB images of one size, got {shape.shape} and "
            f"{texture.shape}"
        )
    side = shape.shape[0]
    patch = patch or side // 16
    if side % patch:
        raise ValueError(f"patch {patch} must divide the image side {side}")
    n = side // patch
    sigma = (side / 48, side / 48, 0)
    low = gaussian_filter(shape.astype(np.float32), sigma)
    # high-pass before shuffling: tiles of a zero-mean signal meet without visible seams
    tex = texture.astype(np.float32)
    high = tex - gaussian_filter(tex, sigma)
    tiles = (
        high.reshape(n, patch, n, patch, 3).transpose(0, 2, 1, 3, 4).reshape(-1, patch, patch, 3)
    )
    tiles = tiles[np.random.default_rng(seed).permutation(len(tiles))]
    high = tiles.reshape(n, n, patch, patch, 3).transpose(0, 2, 1, 3, 4).reshape(side, side, 3)
    return np.clip(np.round(low + high), 0, 255).astype(np.uint8)


def build_cue_conflict_folder(
    root: str | os.PathLike[str],
    mapping: Mapping[str, Sequence[int]],
    size: int = 224,
    variants: int = 4,
) -> Path:
    """Write cue-conflict images of the photos in the cue-conflict layout.

    For every ordered pair of labelled photos in two different categories of ``mapping``
    (see :func:`photo_categories`), ``variants`` images (tile orders ``0 .. variants-1``) of
    :func:`cue_conflict_image` go to ``root/<shape category>/<shape><i>-<texture><i>.png``
    (``i`` counts the images of that category pair), which
    :func:`robustlens.data.imagenet.cue_conflict` reads with the same mapping file.

    Args:
        root: output directory (created if missing; existing files are overwritten).
        mapping: category -> ImageNet indices, e.g. the 16 categories of Geirhos et al.
        size: image side.
        variants: images per (shape, texture) pair.

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: fewer than two categories hold a labelled photo (no conflict possible).
    """
    cats = photo_categories(mapping)
    if len(set(cats.values())) < 2:
        raise ValueError(
            f"cue-conflict images need labelled photos in two categories of the mapping; "
            f"found {cats or 'none'}"
        )
    images = {p: load_photo(p, size=size) for p in cats}
    out = Path(root)
    counts: dict[tuple[str, str], int] = {}
    for shape_photo, shape_cat in cats.items():
        for tex_photo, tex_cat in cats.items():
            if shape_cat == tex_cat:
                continue
            folder = out / shape_cat
            folder.mkdir(parents=True, exist_ok=True)
            for v in range(variants):
                img = cue_conflict_image(images[shape_photo], images[tex_photo], seed=v)
                i = counts[shape_cat, tex_cat] = counts.get((shape_cat, tex_cat), -1) + 1
                Image.fromarray(img).save(folder / f"{shape_cat}{i}-{tex_cat}{i}.png")
    return out
