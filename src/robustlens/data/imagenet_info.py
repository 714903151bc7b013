"""ImageNet-1k class metadata, read from the files timm ships (``timm/data/_info``).

Nothing is copied into robustlens: the 1000 WordNet ids in the standard index order, their
names, and the ImageNet-R / ImageNet-A 200-class index lists are read from the installed
timm package (the same files ``timm.data.ImageNetInfo`` reads), without importing timm (and
so torch). Category mappings that no package ships (the 16 cue-conflict categories, the
ObjectNet folders) are accepted as JSON files, see :func:`load_category_mapping`.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pkgutil
from functools import cache
from pathlib import Path

from robustlens._validation import check_mapping
from robustlens.errors import ConfigError, RobustlensError

__all__ = [
    "N_IMAGENET_CLASSES",
    "SUBSETS",
    "imagenet_a_indices",
    "imagenet_a_wnids",
    "imagenet_names",
    "imagenet_r_indices",
    "imagenet_r_wnids",
    "imagenet_wnids",
    "load_category_mapping",
    "subset_indices",
    "subset_wnids",
    "wnid_to_index",
]

N_IMAGENET_CLASSES = 1000


@cache
def _read_timm_info(filename: str) -> str:
    """Text of ``timm/data/_info/<filename>``, read without importing timm."""
    spec = importlib.util.find_spec("timm")
    if spec is None:
        raise RobustlensError(
            "timm is not installed; robustlens reads the ImageNet class metadata from timm's "
            "packaged files (pip install timm)"
        )
    for location in spec.submodule_search_locations or ():
        path = Path(location) / "data" / "_info" / filename
        if path.is_file():
            return path.read_text(encoding="utf-8")
    data = pkgutil.get_data("timm.data", f"_info/{filename}")  # zipped installs
    if data is None:
        raise RobustlensError(f"timm does not ship data/_info/{filename}; upgrade timm")
    return data.decode("utf-8")


@cache
def _wnids() -> tuple[str, ...]:
    wnids = tuple(line.strip() for line in _read_timm_info("imagenet_synsets.txt").splitlines())
    wnids = tuple(w for w in wnids if w)
    if len(wnids) != N_IMAGENET_CLASSES or len(set(wnids)) != N_IMAGENET_CLASSES:
        raise RobustlensError(
            f"timm's imagenet_synsets.txt should list {N_IMAGENET_CLASSES} distinct wnids, "
            f"found {len(wnids)} ({len(set(wnids))} distinct)"
        )
    return wnids


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids in the standard class-index order.

    Returns:
        A new list of 1000 strings (ImageNet models use these as their class names).

    Example:
        >>> wnids = imagenet_wnids()
        >>> len(wnids), wnids[0], wnids[999]
        (1000, 'n01440764', 'n15075141')
    """
    return list(_wnids())


@cache
def _wnid_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(_wnids())}


def wnid_to_index() -> dict[str, int]:
    """ImageNet-1k wnid -> class index.

    Returns:
        A new dict with 1000 entries.
    """
    return dict(_wnid_index())


@cache
def _names() -> tuple[str, ...]:
    lemmas = dict(
        row[:2]
        for row in csv.reader(
            _read_timm_info("imagenet_synset_to_lemma.txt").splitlines(), delimiter="\t"
        )
        if len(row) >= 2
    )
    missing = [w for w in _wnids() if w not in lemmas]
    if missing:
        raise RobustlensError(f"timm's lemma file has no name for wnids {missing[:5]}")
    return tuple(lemmas[w] for w in _wnids())


def imagenet_names() -> list[str]:
    """Human-readable names of the 1000 classes, in index order (WordNet lemmas).

    Returns:
        A new list of 1000 strings such as ``"tench, Tinca tinca"``.

    Example:
        >>> imagenet_names()[0]
        'tench, Tinca tinca'
    """
    return list(_names())


@cache
def _subset_indices(filename: str) -> tuple[int, ...]:
    text = _read_timm_info(filename)
    try:
        idx = tuple(int(tok) for tok in text.split())
    except ValueError as exc:
        raise RobustlensError(f"timm's {filename} is not a list of integers: {exc}") from exc
    if len(idx) != 200 or len(set(idx)) != 200 or not all(0 <= i < 1000 for i in idx):
        raise RobustlensError(
            f"timm's {filename} should hold 200 distinct indices in [0, 999], found {len(idx)}"
        )
    return tuple(sorted(idx))


#: the 200-class subsets of ImageNet-1k timm ships: name -> index file
SUBSETS = {"imagenet_r": "imagenet_r_indices.txt", "imagenet_a": "imagenet_a_indices.txt"}


def subset_indices(subset: str) -> list[int]:
    """ImageNet indices of a 200-class subset, ascending.

    Args:
        subset: ``"imagenet_r"`` (Renditions) or ``"imagenet_a"`` (natural adversarial
            examples), see :data:`SUBSETS`.

    Returns:
        A new list of 200 ints in [0, 999].

    Example:
        >>> r, a = subset_indices("imagenet_r"), subset_indices("imagenet_a")
        >>> len(r), r[:3], len(a), a[:3]
        (200, [1, 2, 4], 200, [6, 11, 13])
    """
    if subset not in SUBSETS:
        raise RobustlensError(f"unknown ImageNet subset {subset!r}; known: {sorted(SUBSETS)}")
    return list(_subset_indices(SUBSETS[subset]))


def subset_wnids(subset: str) -> list[str]:
    """The wnids of a 200-class subset, in ImageNet index order (its folder names).

    Returns:
        A new list of 200 wnids.
    """
    w = _wnids()
    return [w[i] for i in subset_indices(subset)]


def imagenet_r_indices() -> list[int]:
    """ImageNet indices of the 200 ImageNet-R (Renditions) classes, ascending."""
    return subset_indices("imagenet_r")


def imagenet_a_indices() -> list[int]:
    """ImageNet indices of the 200 ImageNet-A (natural adversarial) classes, ascending."""
    return subset_indices("imagenet_a")


def imagenet_real_labels() -> dict[str, list[int]]:
    """ImageNet ReaL labels (Beyer et al. 2020) of the 50,000 validation images, from timm.

    Keys are the validation file names ``ILSVRC2012_val_00000001.JPEG`` ..; values the
    ImageNet indices the ReaL raters accepted (3,163 images have none and are left out of
    ReaL accuracy). Use with :meth:`FileListDataset.set_acceptable_labels
    <robustlens.data.imagefolder.FileListDataset.set_acceptable_labels>`, or
    ``acceptable_labels: real`` on an ``imagenet_val`` study dataset.

    Example:
        >>> real = imagenet_real_labels()
        >>> len(real), real["ILSVRC2012_val_00000002.JPEG"]
        (50000, [970, 795])
    """
    rows = json.loads(_read_timm_info("imagenet_real_labels.json"))
    if len(rows) != 50000:
        raise RobustlensError(f"timm's ReaL labels hold {len(rows)} rows; expected 50000")
    return {f"ILSVRC2012_val_{i + 1:08d}.JPEG": [int(c) for c in r] for i, r in enumerate(rows)}


def imagenet_r_wnids() -> list[str]:
    """The 200 ImageNet-R class wnids, in ImageNet index order (its folder names)."""
    return subset_wnids("imagenet_r")


def imagenet_a_wnids() -> list[str]:
    """The 200 ImageNet-A class wnids, in ImageNet index order (its folder names)."""
    return subset_wnids("imagenet_a")


def load_category_mapping(
    path: str | os.PathLike[str], n_classes: int = N_IMAGENET_CLASSES
) -> dict[str, list[int]]:
    """Read a category mapping: a JSON object of category (or folder) name -> class indices.

    The format (used for the 16 cue-conflict categories and the 113 ObjectNet folders)::

        {"airplane": [404], "bear": [294, 295, 296, 297], ...}

    Every key must be a non-empty name; every value a non-empty list of distinct integers in
    ``[0, n_classes)``.

    Args:
        path: the JSON file.
        n_classes: size of the model class space the indices point into (1000 for ImageNet).

    Returns:
        The mapping, in file order, with plain ``int`` lists.

    Raises:
        ConfigError: missing file, invalid JSON, or a bad entry (the error names the key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read category mapping {path}: {exc}; expected a JSON object of "
            'name -> list of class indices, e.g. {"airplane": [404]}'
        ) from exc
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for k, v in items:
            if k in seen:
                duplicates.append(k)
            seen[k] = v
        return seen

    try:
        raw = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"category mapping {path} is not valid JSON: {exc}") from exc
    if duplicates:
        raise ConfigError(f"category mapping {path}: key {duplicates[0]!r} appears twice")
    check_mapping(
        raw,
        f"category mapping {path}",
        "a JSON object of name -> list of class indices",
        "category",
        error=ConfigError,
    )
    out: dict[str, list[int]] = {}
    for key, value in raw.items():
        where = f"category mapping {path}, key {key!r}"
        if not key.strip():
            raise ConfigError(f"{where}: category names must not be empty")
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: expected a non-empty list of class indices, got {value!r}")
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
        if bad:
            raise ConfigError(f"{where}: indices must be integers, got {bad[:5]}")
        out_of_range = [v for v in value if not 0 <= v < n_classes]
        if out_of_range:
            raise ConfigError(
                f"{where}: indices must lie in [0, {n_classes - 1}], got {out_of_range[:5]}"
            )
        if len(set(value)) != len(value):
            dup = sorted({v for v in value if value.count(v) > 1})
            raise ConfigError(f"{where}: duplicate indices {dup[:5]}")
        out[key] = [int(v) for v in value]
    return out
