"""Real photos with ImageNet labels, offline: the scikit-image sample photos.

``skimage.data`` ships a few natural photos. ``resources/skimage_imagenet_labels.csv``
labels, by hand, those whose ImageNet-1k class is defensible, with every acceptable class
index (and its wnid) per photo; the first one is the folder label. Photos left out on
purpose: ``astronaut`` (a person: ImageNet-1k has no person class), ``stereo_motorcycle``
(no motorcycle class; moped / motor scooter would be wrong), ``clock`` (motion-blurred
beyond recognition), ``cat`` (the same photo as ``chelsea``), and the textures, microscopy,
astronomy and scanned-text images.

:func:`build_photo_folder` writes them as an ImageNet-format tree ``root/{wnid}/{photo}.png``
so that every real-data code path (folder datasets, ImageNet class mapping, real
pretrained models) can be exercised end to end without a download.
"""

from __future__ import annotations

import io
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["LABELS_RESOURCE", "build_photo_folder", "load_photo", "photo_labels"]

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
    from PIL import Image

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
    import skimage.data

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
    from PIL import Image

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
