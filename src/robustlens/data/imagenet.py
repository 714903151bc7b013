"""The on-disk layouts of ImageNet and its distribution shifts, as datasets.

Every function indexes one layout and returns :class:`~robustlens.data.imagefolder.FileListDataset`
objects whose class handling is explicit. ImageNet models name their 1000 outputs by wnid
in index order (:func:`~robustlens.data.imagenet_info.imagenet_wnids`), so:

==================  ==========================  =============================================
layout              dataset classes             mapping onto a 1000-wnid ImageNet model
==================  ==========================  =============================================
val, -C, -C-bar,     the 1000 wnids              identity
-Sketch, -V2,
Stylized-ImageNet
-R, -A              their 200 wnids             200-class mask (logits restricted to the 200)
ObjectNet           113 folders (mapping file)  each class -> its ImageNet indices, ``max``
cue-conflict        16 categories               each category -> mean probability of its set
Spurious ImageNet   the classes in the folders  mask onto those ImageNet indices
==================  ==========================  =============================================

No data is downloaded. A missing or malformed tree raises
:class:`~robustlens.errors.DatasetLayoutError` naming the expected layout and what was found.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from robustlens.data.base import ClassMapping
from robustlens.data.imagefolder import (
    IMAGE_EXTENSIONS,
    FileListDataset,
    ImageEntry,
    ImageFolderDataset,
    TargetMapping,
    _preview,
    index_image_folders,
    is_image_file,
    require_dir,
    skip_reason,
)
from robustlens.data.imagenet_info import (
    imagenet_wnids,
    load_category_mapping,
    subset_indices,
    wnid_to_index,
)
from robustlens.errors import ConfigError, DatasetLayoutError
from robustlens.transforms.cbar import CBAR_CORRUPTIONS, CBAR_LEVELS, cbar_severity_of_level
from robustlens.transforms.corruptions import CORRUPTIONS

__all__ = [
    "A_LAYOUT",
    "CBAR_LAYOUT",
    "CUE_CONFLICT_LAYOUT",
    "C_LAYOUT",
    "OBJECTNET_LAYOUT",
    "R_LAYOUT",
    "SKETCH_LAYOUT",
    "SPURIOUS_LAYOUT",
    "STYLIZED_LAYOUT",
    "V2_LAYOUT",
    "VAL_LAYOUT",
    "cue_conflict",
    "imagenet_a",
    "imagenet_c",
    "imagenet_cbar",
    "imagenet_r",
    "imagenet_sketch",
    "imagenet_v2",
    "imagenet_val",
    "objectnet",
    "spurious_imagenet",
    "stylized_imagenet",
]

VAL_LAYOUT = (
    "root/<wnid>/<image>.JPEG (e.g. root/n01440764/ILSVRC2012_val_00000293.JPEG), or flat "
    "root/<image>.JPEG plus a labels file root/labels.txt with '<filename> <index-or-wnid>' "
    "lines (also accepted: LOC_val_solution.csv, or ILSVRC2012_validation_ground_truth.txt "
    "with the devkit's meta.mat)"
)
C_LAYOUT = (
    "root/<corruption>/<severity 1-5>/<wnid>/<image>.JPEG "
    "(e.g. root/gaussian_noise/3/n01440764/ILSVRC2012_val_00000293.JPEG)"
)
CBAR_LAYOUT = (
    "root/<corruption>/<severity 1-5, or the release's level folder such as 2.35>/<wnid>/"
    "<image>.JPEG with ImageNet-C-bar's corruption folders "
    f"({', '.join(CBAR_CORRUPTIONS)}) "
    "(e.g. root/cocentric_sine_waves/3/n01440764/ILSVRC2012_val_00000293.JPEG)"
)
STYLIZED_LAYOUT = (
    "root/<wnid>/<image> with the 1000 ImageNet wnids, or root/val/<wnid>/<image> "
    "(e.g. root/n01440764/ILSVRC2012_val_00000293.JPEG)"
)
R_LAYOUT = "root/<wnid>/<image>.jpg with the 200 ImageNet-R wnids (e.g. root/n01443537/art_0.jpg)"
A_LAYOUT = (
    "root/<wnid>/<image>.jpg with the 200 ImageNet-A wnids (e.g. root/n01498041/0.000116_x.jpg)"
)
SKETCH_LAYOUT = (
    "root/<wnid>/<image>.JPEG or root/sketch/<wnid>/<image>.JPEG with the 1000 ImageNet wnids "
    "(e.g. root/sketch/n01440764/n01440764_13.JPEG)"
)
V2_LAYOUT = "root/<class index 0..999>/<image>.jpeg (e.g. root/0/7bcd09a1b2.jpeg)"
OBJECTNET_LAYOUT = (
    "root/images/<folder>/<image>.png (or root/<folder>/<image>.png) with folders named as "
    "in the mapping file (e.g. root/images/alarm_clock/0a1b2c.png)"
)
CUE_CONFLICT_LAYOUT = (
    "root/<category>/<shape><i>-<texture><j>.png (e.g. root/airplane/airplane1-bicycle2.png)"
)
SPURIOUS_LAYOUT = (
    "root/<folder naming an ImageNet class index>/<image>.jpg, optionally under root/images/, "
    "folders like spurious_class_<index>_... , class_<index>_... or <index>_..."
)

_WNID_RE = re.compile(r"^n\d{8}$")
_WNID_ANY_RE = re.compile(r"(?<![A-Za-z0-9])n\d{8}(?!\d)")
_CUE_RE = re.compile(r"([A-Za-z]+)(\d+)-([A-Za-z]+)(\d+)\.[A-Za-z0-9]+$")
_SPURIOUS_RES = (
    re.compile(r"(?:^|[^A-Za-z])class_?(\d+)", re.IGNORECASE),
    re.compile(r"^(\d+)(?:\D|$)"),
)
_VAL_LABEL_FILES = (
    "labels.txt",
    "val_labels.txt",
    "LOC_val_solution.csv",
    "ILSVRC2012_validation_ground_truth.txt",
)


def _open_root(root: str | os.PathLike[str], what: str, layout: str, inner: str = "") -> Path:
    """The dataset root (a :class:`DatasetLayoutError` naming ``layout`` if it is missing),
    or its ``inner`` folder (e.g. ``images/``) where the release nests the class folders."""
    path = require_dir(root, what, layout)
    if inner and (path / inner).is_dir():
        return path / inner
    return path


def _subdirs(path: Path) -> list[Path]:
    return sorted(
        (p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _wnid_root(root: str | os.PathLike[str], what: str, layout: str, inner: str) -> Path:
    """The folder of the wnid folders: ``root`` itself, or its ``inner`` folder where ``root``
    holds no wnid folder (a missing root raises :class:`DatasetLayoutError`)."""
    path = _open_root(root, what, layout)
    if not any(_WNID_RE.match(f.name) for f in _subdirs(path)):
        path = _open_root(path, what, layout, inner=inner)
    return path


_WNID_FOLDERS = "ImageNet-1k wnid folders like n01440764/"


def _wnid_dataset(
    root: Path,
    *,
    name: str,
    layout: str,
    size: int,
    crop: str,
    classes: Sequence[str] | None = None,
    expected: str = _WNID_FOLDERS,
    target_mapping: TargetMapping | None = None,
) -> ImageFolderDataset:
    """Wnid class folders (by default the 1000 ImageNet-1k wnids, identity for its models)."""
    return ImageFolderDataset(
        root,
        size=size,
        name=name,
        classes=imagenet_wnids() if classes is None else classes,
        crop=crop,
        layout=layout,
        expected=expected,
        target_mapping=target_mapping,
    )


# --------------------------------------------------------------------------------------------
# ImageNet val


def _parse_label(token: str, where: str, index: dict[str, int]) -> int:
    if token.isdigit():
        value = int(token)
        if not 0 <= value < len(index):
            raise DatasetLayoutError(f"{where}: class index {value} is outside [0, 999]")
        return value
    if token in index:
        return index[token]
    raise DatasetLayoutError(
        f"{where}: expected a class index 0..999 or an ImageNet wnid, got {token!r}"
    )


def _devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012 devkit ID (1..1000, *not* the standard index) -> wnid, from ``meta.mat``."""
    from scipy.io import loadmat  # lazy: scipy costs ~1 s and only the devkit meta.mat needs it

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        ids = [int(x) for x in synsets["ILSVRC2012_ID"]]
        wnids = [str(x) for x in synsets["WNID"]]
    except Exception as exc:
        raise DatasetLayoutError(
            f"cannot read ILSVRC2012 synsets from {meta}: {exc}; expected the devkit's "
            "data/meta.mat"
        ) from exc
    return {i: w for i, w in zip(ids, wnids, strict=True) if 1 <= i <= 1000}


def _read_val_labels(path: Path) -> dict[str, int]:
    """Labels file -> {filename or file stem: ImageNet index}."""
    index = wnid_to_index()
    out: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetLayoutError(f"cannot read labels file {path}: {exc}") from exc
    if path.suffix.lower() == ".csv":  # Kaggle LOC_val_solution.csv: ImageId,PredictionString
        rows = list(csv.reader(text.splitlines()))
        if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
            raise DatasetLayoutError(
                f"{path}: expected a CSV with header 'ImageId,PredictionString' "
                f"(LOC_val_solution.csv), got {rows[0] if rows else 'an empty file'}"
            )
        for n, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            tokens = row[1].split() if len(row) > 1 else []
            if not tokens:
                raise DatasetLayoutError(f"{path}:{n}: no wnid in {row!r}")
            out[row[0].strip()] = _parse_label(tokens[0], f"{path}:{n}", index)
        return out
    if "validation_ground_truth" in path.name:
        candidates = [path.parent / "meta.mat", path.parent / "data" / "meta.mat"]
        meta = next((p for p in candidates if p.is_file()), None)
        if meta is None:
            raise DatasetLayoutError(
                f"{path} holds ILSVRC2012 devkit IDs, which are not the standard class "
                f"indices; put the devkit's meta.mat next to it (looked in "
                f"{[str(c) for c in candidates]}) or use a labels.txt of "
                "'<filename> <index-or-wnid>' lines"
            )
        devkit = _devkit_wnids(meta)
        for n, line in enumerate(text.split(), start=1):
            where = f"{path}:{n}"
            if not line.isdigit() or int(line) not in devkit:
                raise DatasetLayoutError(f"{where}: expected a devkit ID 1..1000, got {line!r}")
            out[f"ILSVRC2012_val_{n:08d}"] = index[devkit[int(line)]]
        return out
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = re.split(r"[\s,]+", line)
        if len(tokens) != 2:
            raise DatasetLayoutError(
                f"{path}:{n}: expected '<filename> <index-or-wnid>', got {line!r}"
            )
        out[tokens[0]] = _parse_label(tokens[1], f"{path}:{n}", index)
    return out


def _flat_val(root: Path, labels_path: Path, *, name: str, size: int, crop: str) -> FileListDataset:
    labels = _read_val_labels(labels_path)
    entries: list[ImageEntry] = []
    ignored: list[str] = []
    skipped: list[tuple[str, str]] = []
    unlabeled: list[str] = []
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.is_dir():
            ignored.append(child.name + "/")
            continue
        if not is_image_file(child, IMAGE_EXTENSIONS):
            ignored.append(child.name)
            continue
        label = labels.get(child.name, labels.get(child.stem))
        if label is None:
            unlabeled.append(child.name)
            continue
        reason = skip_reason(child)
        if reason is not None:
            skipped.append((child.name, reason))
            continue
        entries.append(ImageEntry(child.name, label))
    if unlabeled:
        raise DatasetLayoutError(
            f"{len(unlabeled)} image(s) in {root} have no entry in {labels_path.name}: "
            f"{_preview(unlabeled)}; expected the layout {VAL_LAYOUT}"
        )
    if not entries:
        raise DatasetLayoutError(f"no images in {root}; expected the layout {VAL_LAYOUT}")
    return FileListDataset(
        root,
        entries,
        imagenet_wnids(),
        name=name,
        size=size,
        crop=crop,
        ignored=ignored,
        skipped=skipped,
        layout=VAL_LAYOUT,
    )


def imagenet_val(
    root: str | os.PathLike[str],
    size: int = 224,
    *,
    labels_file: str | os.PathLike[str] | None = None,
    crop: str = "center",
    name: str = "imagenet_val",
) -> FileListDataset:
    """ImageNet-1k validation images, in class folders or flat with a labels file.

    Layouts: ``root/<wnid>/<image>.JPEG``; or flat ``root/<image>.JPEG`` with a labels file
    (``labels_file``, or the first of ``labels.txt``, ``val_labels.txt``,
    ``LOC_val_solution.csv``, ``ILSVRC2012_validation_ground_truth.txt`` in ``root``).
    ``labels.txt`` lines are ``<filename> <index-or-wnid>`` (``#`` comments allowed). The
    devkit's ground-truth file holds devkit IDs, which differ from the standard index, so
    it needs the devkit's ``meta.mat`` next to it.

    The classes are the 1000 wnids (labels are the standard ImageNet indices), so ImageNet
    models map by identity. Folders may be a subset of the 1000.

    Args:
        root: the validation directory.
        size: output side length.
        labels_file: labels file for the flat layout (default: looked up in ``root``).
        crop: preprocessing mode (``center``: resize to size/0.875, centre crop).
        name: dataset name.

    Returns:
        The dataset.

    Raises:
        DatasetLayoutError: wrong layout, a folder that is not an ImageNet wnid, or images
            without a label.
    """
    root = _open_root(root, "ImageNet val", VAL_LAYOUT)
    if labels_file is not None:
        return _flat_val(root, Path(labels_file), name=name, size=size, crop=crop)
    if any(_WNID_RE.match(f.name) for f in _subdirs(root)):
        return _wnid_dataset(root, name=name, layout=VAL_LAYOUT, size=size, crop=crop)
    found = next((root / f for f in _VAL_LABEL_FILES if (root / f).is_file()), None)
    if found is not None:
        return _flat_val(root, found, name=name, size=size, crop=crop)
    contents = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    raise DatasetLayoutError(
        f"ImageNet val at {root}: expected {VAL_LAYOUT}; found no wnid folders and no labels "
        f"file among {len(contents)} entries: {_preview(contents)}"
    )


# --------------------------------------------------------------------------------------------
# ImageNet-C


def _as_list(value: object) -> list | None:
    if value is None:
        return None
    if isinstance(value, str | int):
        return [value]
    return list(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class _CorruptionLayout:
    """What tells ImageNet-C's layout from -C-bar's (both ``root/<corruption>/<severity>/...``).

    Attributes:
        what: the dataset's name in messages.
        prefix: the datasets' names are ``<prefix>/<corruption>/<severity>``.
        layout: the layout's description.
        severity_like: whether a top-level folder name looks like a severity (the caller
            passed one level too deep).
        read_severities: ``(folder, corruption) -> {severity: folder}`` of one corruption.
        known: the only corruption folder names allowed (``None``: any).
    """

    what: str
    prefix: str
    layout: str
    severity_like: Callable[[str], object]
    read_severities: Callable[[Path, str], dict[int, Path]]
    known: Sequence[str] | None = None


def _corruption_folders(
    spec: _CorruptionLayout,
    root: str | os.PathLike[str],
    corruption: str | Sequence[str] | None,
    severity: int | Sequence[int] | None,
    size: int,
    crop: str,
) -> list[ImageFolderDataset]:
    """One dataset ``<prefix>/<corruption>/<severity>`` per folder of a corruption layout,
    sorted by corruption, then severity (see :func:`imagenet_c`)."""
    what, layout, known = spec.what, spec.layout, spec.known
    path = _open_root(root, what, layout)
    folders = {d.name: d for d in _subdirs(path)}
    if not folders:
        raise DatasetLayoutError(
            f"{what} at {path}: expected {layout}; found no corruption folders"
        )
    if all(spec.severity_like(c) for c in folders):
        raise DatasetLayoutError(
            f"{what} at {path}: expected {layout}; found severity-like folders "
            f"{_preview(sorted(folders))} at the top: pass the parent of the corruption folders"
        )
    if known is not None:
        unknown = sorted(c for c in folders if c not in known)
        if unknown:
            hint = ""
            if any(c in CORRUPTIONS for c in unknown):
                hint = " (ImageNet-C corruption names: this looks like layout 'imagenet_c')"
            raise DatasetLayoutError(
                f"{what} at {path}: expected {layout}; found folders that are not "
                f"C-bar corruptions: {_preview(unknown)}{hint}"
            )
    wanted = _as_list(corruption)
    if wanted is not None:
        missing = [c for c in wanted if c not in folders]
        if missing:
            raise DatasetLayoutError(
                f"{what} at {path}: corruption(s) {missing} not found; found "
                f"{_preview(sorted(folders))} (layout {layout})"
            )
    names = sorted(folders) if wanted is None else sorted(set(wanted))
    wanted_sev = _as_list(severity)
    out: list[ImageFolderDataset] = []
    for c in names:
        severities = spec.read_severities(folders[c], c)
        chosen = sorted(severities) if wanted_sev is None else sorted({int(s) for s in wanted_sev})
        absent = [s for s in chosen if s not in severities]
        if absent:
            raise DatasetLayoutError(
                f"{what} corruption {c!r}: severity {absent} not found; found "
                f"{sorted(severities)} (layout {layout})"
            )
        for s in chosen:
            out.append(
                _wnid_dataset(
                    severities[s],
                    name=f"{spec.prefix}/{c}/{s}",
                    layout=layout,
                    size=size,
                    crop=crop,
                )
            )
    return out


def _c_severities(folder: Path, corruption: str) -> dict[int, Path]:
    """Severity -> folder of one ImageNet-C corruption: digit-named folders only."""
    sev_dirs = _subdirs(folder)
    bad = [d.name for d in sev_dirs if not d.name.isdigit()]
    if bad or not sev_dirs:
        found = f"non-severity folders {_preview(bad)}" if bad else "no severity folders"
        raise DatasetLayoutError(
            f"ImageNet-C corruption folder {folder}: expected severity folders "
            f"1..5 (layout {C_LAYOUT}); found {found}"
        )
    return {int(d.name): d for d in sev_dirs}


_C = _CorruptionLayout("ImageNet-C", "imagenet_c", C_LAYOUT, str.isdigit, _c_severities)


def imagenet_c(
    root: str | os.PathLike[str],
    corruption: str | Sequence[str] | None = None,
    severity: int | Sequence[int] | None = None,
    size: int = 224,
    *,
    crop: str = "crop",
) -> list[ImageFolderDataset]:
    """ImageNet-C: one dataset per (corruption, severity) folder.

    Layout ``root/<corruption>/<severity>/<wnid>/<image>.JPEG``; datasets are named
    ``imagenet_c/<corruption>/<severity>`` and sorted by corruption, then severity. Classes
    are the 1000 wnids (identity mapping for ImageNet models).

    ImageNet-C images are stored already resized and centre-cropped to 224 x 224, so the
    default ``crop="crop"`` only centre-crops to ``size`` (as Hendrycks & Dietterich's
    evaluation does) instead of resizing a 224 image to 256 and cropping again.

    Args:
        root: the ImageNet-C directory.
        corruption: a corruption name or list of names (default: every folder).
        severity: a severity or list of severities (default: every severity folder).
        size: output side length.
        crop: preprocessing mode (see ``robustlens.data.imagefolder.CROP_MODES``).

    Returns:
        The datasets, one per (corruption, severity).

    Raises:
        DatasetLayoutError: wrong layout, or a requested corruption/severity is absent.
    """
    return _corruption_folders(_C, root, corruption, severity, size, crop)


# --------------------------------------------------------------------------------------------
# ImageNet-C-bar


def _cbar_severities(folder: Path, corruption: str) -> dict[int, Path]:
    """Severity -> folder of one C-bar corruption: ``1``..``5`` or the release's level names."""
    levels = ", ".join(f"{lv:.2f}" for lv in CBAR_LEVELS[corruption])
    expected = f"severity folders 1..5 or the release's levels {levels} (layout {CBAR_LAYOUT})"
    sev_dirs = _subdirs(folder)
    if not sev_dirs:
        raise DatasetLayoutError(
            f"ImageNet-C-bar corruption folder {folder}: expected {expected}; found none"
        )
    out: dict[int, Path] = {}
    bad: list[str] = []
    for d in sev_dirs:
        if d.name.isdigit():
            sev = int(d.name) if 1 <= int(d.name) <= 5 else None
        else:
            sev = cbar_severity_of_level(corruption, d.name)
        if sev is None:
            bad.append(d.name)
        elif sev in out:
            raise DatasetLayoutError(
                f"ImageNet-C-bar corruption folder {folder}: severity {sev} is there twice, "
                f"as {out[sev].name}/ and {d.name}/; keep one"
            )
        else:
            out[sev] = d
    if bad:
        raise DatasetLayoutError(
            f"ImageNet-C-bar corruption folder {folder}: expected {expected}; found {_preview(bad)}"
        )
    return out


_CBAR = _CorruptionLayout(
    "ImageNet-C-bar",
    "imagenet_cbar",
    CBAR_LAYOUT,
    lambda c: re.fullmatch(r"\d+(\.\d+)?", c),
    _cbar_severities,
    known=CBAR_CORRUPTIONS,
)


def imagenet_cbar(
    root: str | os.PathLike[str],
    corruption: str | Sequence[str] | None = None,
    severity: int | Sequence[int] | None = None,
    size: int = 224,
    *,
    crop: str = "crop",
) -> list[ImageFolderDataset]:
    """ImageNet-C-bar (Mintun et al. 2021): one dataset per (corruption, severity) folder.

    Layout ``root/<corruption>/<severity>/<wnid>/<image>.JPEG``, the -C layout with C-bar's 10
    corruption folders as the release spells them (``cocentric_sine_waves``). Severity folders
    are ``1``..``5`` (as seed 002 evaluates them) or the release's own folder names, its level
    per severity with two decimals (``caustic_refraction/2.35/`` is severity 1; see
    :data:`robustlens.transforms.cbar.CBAR_LEVELS`). Datasets are named
    ``imagenet_cbar/<corruption>/<severity 1-5>``, sorted by corruption, then severity; classes
    are the 1000 wnids (identity mapping for ImageNet models). The images are stored at
    224 x 224 like ImageNet-C's, so the default ``crop="crop"`` only centre-crops to ``size``.

    Arguments and return value as :func:`imagenet_c`, with the ImageNet-C-bar directory as
    ``root`` and severities 1..5.

    Raises:
        DatasetLayoutError: wrong layout (an ImageNet-C tree, a folder that is not a C-bar
            corruption, a severity folder that is neither 1..5 nor the release's level), or a
            requested corruption/severity is absent.
    """
    return _corruption_folders(_CBAR, root, corruption, severity, size, crop)


# --------------------------------------------------------------------------------------------
# ImageNet-R / -A


#: the 200-class subsets: dataset name -> (what it is called in messages, layout)
_SUBSET_LAYOUTS = {"imagenet_r": ("ImageNet-R", R_LAYOUT), "imagenet_a": ("ImageNet-A", A_LAYOUT)}


def _subset_200(
    root: str | os.PathLike[str], name: str, *, size: int, crop: str
) -> ImageFolderDataset:
    label, layout = _SUBSET_LAYOUTS[name]
    path = _open_root(root, label, layout)
    indices = subset_indices(name)
    wnids = imagenet_wnids()
    classes = [wnids[i] for i in indices]
    mapping = ClassMapping.from_indices(
        indices,
        f"{label}: {len(indices)}-class mask onto the 1000 ImageNet classes "
        "(logits restricted to these indices)",
    )
    return _wnid_dataset(
        path,
        name=name,
        classes=classes,
        expected=f"{len(classes)} {label} wnid folders like {classes[0]}/",
        layout=layout,
        size=size,
        crop=crop,
        target_mapping=TargetMapping(tuple(wnids), mapping),
    )


def imagenet_r(
    root: str | os.PathLike[str], size: int = 224, *, crop: str = "center"
) -> ImageFolderDataset:
    """ImageNet-R (renditions): 200 wnid folders, masked onto the 1000 ImageNet classes.

    The dataset's classes are the 200 wnids in ImageNet index order (labels 0..199). For a
    1000-wnid ImageNet model, :meth:`class_mapping` is the 200-class mask: a prediction is the
    argmax over the 200 ImageNet-R logits only.

    Args:
        root: the ``imagenet-r`` directory.
        size: output side length.
        crop: preprocessing mode.

    Returns:
        The dataset.

    Raises:
        DatasetLayoutError: missing root, or a folder that is not one of the 200 wnids.
    """
    return _subset_200(root, "imagenet_r", size=size, crop=crop)


def imagenet_a(
    root: str | os.PathLike[str], size: int = 224, *, crop: str = "center"
) -> ImageFolderDataset:
    """ImageNet-A (natural adversarial examples): 200 wnid folders, masked onto ImageNet-1k.

    Same class handling, arguments and errors as :func:`imagenet_r`, with ImageNet-A's 200
    classes (the ``imagenet-a`` directory as ``root``).
    """
    return _subset_200(root, "imagenet_a", size=size, crop=crop)


# --------------------------------------------------------------------------------------------
# ImageNet-Sketch, ImageNet-V2


def imagenet_sketch(
    root: str | os.PathLike[str], size: int = 224, *, crop: str = "center"
) -> ImageFolderDataset:
    """ImageNet-Sketch: 1000 wnid folders (an extra ``sketch/`` level is accepted).

    Args:
        root: the directory holding the wnid folders, or its parent holding ``sketch/``.
        size: output side length.
        crop: preprocessing mode.

    Returns:
        The dataset (classes: the 1000 wnids, identity mapping for ImageNet models).

    Raises:
        DatasetLayoutError: missing root or a folder that is not an ImageNet wnid.
    """
    path = _wnid_root(root, "ImageNet-Sketch", SKETCH_LAYOUT, "sketch")
    return _wnid_dataset(path, name="imagenet_sketch", layout=SKETCH_LAYOUT, size=size, crop=crop)


def stylized_imagenet(
    root: str | os.PathLike[str],
    size: int = 224,
    *,
    crop: str = "center",
    name: str = "stylized_imagenet",
) -> ImageFolderDataset:
    """Stylized-ImageNet's validation images (Geirhos et al. 2019): 1000 wnid folders.

    The ImageNet val layout ``root/<wnid>/<image>`` (an extra ``val/`` level, as the
    Stylize-Datasets script writes it, is accepted); classes are the 1000 wnids (identity
    mapping for ImageNet models), preprocessed like ImageNet val (``crop="center"``).

    Args:
        root: the directory holding the wnid folders, or its parent holding ``val/``.
        size: output side length.
        crop: preprocessing mode.
        name: dataset name.

    Returns:
        The dataset.

    Raises:
        DatasetLayoutError: missing root or a folder that is not an ImageNet wnid.
    """
    path = _wnid_root(root, "Stylized-ImageNet", STYLIZED_LAYOUT, "val")
    return _wnid_dataset(path, name=name, layout=STYLIZED_LAYOUT, size=size, crop=crop)


def imagenet_v2(
    root: str | os.PathLike[str],
    size: int = 224,
    *,
    crop: str = "center",
    name: str = "imagenet_v2",
) -> ImageFolderDataset:
    """ImageNet-V2: folders named by class index ``0``..``999``.

    The folder index is the standard ImageNet index; the dataset's classes are the 1000
    wnids, so folder ``7`` holds class ``imagenet_wnids()[7]`` and ImageNet models map by
    identity.

    Args:
        root: the directory holding the index folders (e.g.
            ``imagenetv2-matched-frequency-format-val``).
        size: output side length.
        crop: preprocessing mode.
        name: dataset name (e.g. ``imagenet_v2_threshold0.7``).

    Returns:
        The dataset.

    Raises:
        DatasetLayoutError: missing root or a folder that is not an index in 0..999.
    """
    path = _open_root(root, "ImageNet-V2", V2_LAYOUT)
    folder_labels = {
        f.name: int(f.name) for f in _subdirs(path) if f.name.isdigit() and 0 <= int(f.name) < 1000
    }
    return ImageFolderDataset(
        path,
        size=size,
        name=name,
        classes=imagenet_wnids(),
        crop=crop,
        folder_labels=folder_labels,
        layout=V2_LAYOUT,
        expected="class-index folders 0/ .. 999/",
    )


# --------------------------------------------------------------------------------------------
# ObjectNet


def objectnet(
    root: str | os.PathLike[str],
    mapping_file: str | os.PathLike[str],
    size: int = 224,
    *,
    crop: str = "center",
    border: int = 1,
) -> ImageFolderDataset:
    """ObjectNet, restricted to the classes that overlap ImageNet.

    Layout ``root/images/<folder>/<image>.png`` (or ``root/<folder>/<image>.png``). Only the
    folders named in ``mapping_file`` (``{folder: [ImageNet indices]}``, 113 folders and 125
    indices for the standard overlap, see :func:`load_category_mapping`) are used; other
    folders are listed in ``ignored``. The classes are the mapped folder names, sorted.

    ObjectNet images carry a 1-pixel border (a frame added by the dataset's release), which
    is removed before resizing (``border=1``).

    Protocol (restricted to the overlap, as in the imagenet-testbed): for a 1000-wnid ImageNet
    model, :meth:`class_mapping` scores each ObjectNet class by the *max* logit over its
    ImageNet indices; the argmax over classes is then the argmax of the logits restricted to
    the union of mapped indices, and a prediction is correct when that index belongs to the
    image's class. Predictions outside the 125 indices are impossible under this protocol
    (unlike ObjectNet's original all-1000 protocol, which counts them as errors). The
    mapping's index sets must be disjoint so that the argmax is unambiguous.

    Args:
        root: the ObjectNet directory.
        mapping_file: JSON of folder name -> ImageNet indices.
        size: output side length.
        crop: preprocessing mode.
        border: pixels removed from every side before resizing.

    Returns:
        The dataset.

    Raises:
        ConfigError: a bad mapping file or overlapping index sets.
        DatasetLayoutError: no mapped folder found, or an empty class folder.
    """
    path = _open_root(root, "ObjectNet", OBJECTNET_LAYOUT, inner="images")
    mapping = load_category_mapping(mapping_file)
    owner: dict[int, str] = {}
    for folder, idx in mapping.items():
        for i in idx:
            if i in owner:
                raise ConfigError(
                    f"ObjectNet mapping {mapping_file}: ImageNet index {i} belongs to both "
                    f"{owner[i]!r} and {folder!r}; the max-logit protocol needs disjoint sets"
                )
            owner[i] = folder
    classes = sorted(mapping)
    present = [f.name for f in _subdirs(path)]
    if not any(f in mapping for f in present):
        raise DatasetLayoutError(
            f"ObjectNet at {path}: expected {OBJECTNET_LAYOUT}; none of the {len(classes)} "
            f"mapped folders (e.g. {classes[:3]}) was found; found {len(present)} folder(s): "
            f"{_preview(present)}"
        )
    targets = tuple(tuple(mapping[c]) for c in classes)
    n_idx = sum(len(t) for t in targets)
    class_map = ClassMapping(
        targets,
        "max",
        f"ObjectNet: {len(classes)} classes -> {n_idx} ImageNet indices; max logit per "
        "class (argmax restricted to the overlapping indices)",
    )
    return ImageFolderDataset(
        path,
        size=size,
        name="objectnet",
        classes=classes,
        crop=crop,
        unknown_folders="ignore",
        border=border,
        layout=OBJECTNET_LAYOUT,
        target_mapping=TargetMapping(tuple(imagenet_wnids()), class_map),
    )


# --------------------------------------------------------------------------------------------
# cue-conflict


def cue_conflict(
    root: str | os.PathLike[str],
    mapping_file: str | os.PathLike[str] | None = None,
    size: int = 224,
    *,
    crop: str = "center",
) -> FileListDataset:
    """Shape-vs-texture cue-conflict stimuli (Geirhos et al. 2019, model-vs-human layout).

    Layout ``root/<category>/<shape><i>-<texture><j>.png``; a file-name prefix such as
    ``1111_cc_hum_1_`` is tolerated. The label is the shape category (it must equal the
    folder), the extra label ``texture_label`` the texture category. Images whose shape and
    texture agree are kept (the shape-bias metric excludes them).

    Classes: with ``mapping_file`` (``{category: [ImageNet indices]}``, e.g. the 16
    categories), the mapping's categories, sorted; for a 1000-wnid ImageNet model
    :meth:`class_mapping` then averages the softmax probabilities over each category's
    indices (``reduce="mean"``). Without it, the sorted folder names, mapped by name.

    Args:
        root: the cue-conflict directory.
        mapping_file: JSON of category -> ImageNet indices.
        size: output side length.
        crop: preprocessing mode.

    Returns:
        The dataset, with extra label ``texture_label``.

    Raises:
        ConfigError: a bad mapping file.
        DatasetLayoutError: a folder or texture not among the categories, or a file name that
            does not follow ``<shape><i>-<texture><j>.png``.
    """
    path = _open_root(root, "cue-conflict", CUE_CONFLICT_LAYOUT)
    mapping = load_category_mapping(mapping_file) if mapping_file is not None else None
    classes = sorted(mapping) if mapping is not None else None
    index = index_image_folders(
        path,
        classes=classes,
        layout=CUE_CONFLICT_LAYOUT,
        expected=(
            f"the {len(classes)} categories of {mapping_file} ({_preview(classes, 4)})"
            if classes is not None
            else None
        ),
    )
    by_name = {c.lower(): i for i, c in enumerate(index.classes)}
    entries: list[ImageEntry] = []
    for e in index.entries:
        fname = e.path.rsplit("/", 1)[-1]
        m = _CUE_RE.search(fname)
        if m is None:
            raise DatasetLayoutError(
                f"cue-conflict file {path / e.path}: name does not follow "
                f"<shape><i>-<texture><j>.png (layout {CUE_CONFLICT_LAYOUT})"
            )
        shape, texture = m.group(1).lower(), m.group(3).lower()
        folder = index.classes[e.label]
        if shape != folder.lower():
            raise DatasetLayoutError(
                f"cue-conflict file {path / e.path}: shape {shape!r} in the name differs from "
                f"its folder {folder!r} (layout {CUE_CONFLICT_LAYOUT})"
            )
        if texture not in by_name:
            raise DatasetLayoutError(
                f"cue-conflict file {path / e.path}: texture {texture!r} is not one of the "
                f"{len(index.classes)} categories {_preview(index.classes, 16)}"
            )
        entries.append(ImageEntry(e.path, e.label, {"texture_label": by_name[texture]}))
    target = None
    if mapping is not None:
        class_map = ClassMapping(
            tuple(tuple(mapping[c]) for c in index.classes),
            "mean",
            f"cue-conflict: {len(index.classes)} categories, mean probability over each "
            "category's ImageNet classes (Geirhos et al. 2019)",
        )
        target = TargetMapping(tuple(imagenet_wnids()), class_map)
    return FileListDataset(
        path,
        entries,
        index.classes,
        name="cue_conflict",
        size=size,
        crop=crop,
        extra_label_names=("texture_label",),
        ignored=index.ignored,
        skipped=index.skipped,
        target_mapping=target,
        layout=CUE_CONFLICT_LAYOUT,
    )


# --------------------------------------------------------------------------------------------
# Spurious ImageNet


def _spurious_class(folder: str, index: dict[str, int]) -> int | None:
    for pattern in _SPURIOUS_RES:
        m = pattern.search(folder)
        if m is not None:
            return int(m.group(1))
    m = _WNID_ANY_RE.search(folder)
    if m is not None and m.group(0) in index:
        return index[m.group(0)]
    return None


def spurious_imagenet(
    root: str | os.PathLike[str], size: int = 224, *, crop: str = "center"
) -> FileListDataset:
    """Spurious ImageNet (Neuhaus et al., ICCV 2023): images of a class's spurious feature only.

    100 folders x 75 images; each folder name carries the ImageNet class index of the class
    whose spurious feature it shows (the release names folders like
    ``spurious_class_<index>_...``; accepted: ``class_<index>`` anywhere, a leading
    ``<index>_``, or a wnid). An ``images/`` level is accepted.

    The classes are the wnids of the distinct indices, ascending; a sample's label is its
    class's position among them and the extra label ``spurious_label`` is the ImageNet index.
    For a 1000-wnid ImageNet model, :meth:`class_mapping` is the mask onto those indices.

    Args:
        root: the dataset directory.
        size: output side length.
        crop: preprocessing mode.

    Returns:
        The dataset, with extra label ``spurious_label``.

    Raises:
        DatasetLayoutError: a folder without a parsable class index, or an index > 999.
    """
    path = _open_root(root, "Spurious ImageNet", SPURIOUS_LAYOUT, inner="images")
    wnid_index = wnid_to_index()
    folders = [f.name for f in _subdirs(path)]
    if not folders:
        raise DatasetLayoutError(
            f"Spurious ImageNet at {path}: expected {SPURIOUS_LAYOUT}; found no folders"
        )
    parsed = {f: _spurious_class(f, wnid_index) for f in folders}
    bad = [f for f, i in parsed.items() if i is None or not 0 <= i < 1000]
    if bad:
        raise DatasetLayoutError(
            f"Spurious ImageNet at {path}: expected {SPURIOUS_LAYOUT} with an ImageNet index "
            f"0..999; found {len(bad)} folder(s) without one: {_preview(bad)}"
        )
    indices = sorted({i for i in parsed.values() if i is not None})
    position = {idx: k for k, idx in enumerate(indices)}
    wnids = imagenet_wnids()
    classes = [wnids[i] for i in indices]
    folder_labels = {f: position[i] for f, i in parsed.items() if i is not None}
    index = index_image_folders(
        path, classes=classes, folder_labels=folder_labels, layout=SPURIOUS_LAYOUT
    )
    entries = [
        ImageEntry(e.path, e.label, {"spurious_label": indices[e.label]}) for e in index.entries
    ]
    mapping = ClassMapping.from_indices(
        indices, f"Spurious ImageNet: mask onto {len(indices)} ImageNet classes"
    )
    return FileListDataset(
        path,
        entries,
        classes,
        name="spurious_imagenet",
        size=size,
        crop=crop,
        extra_label_names=("spurious_label",),
        ignored=index.ignored,
        skipped=index.skipped,
        target_mapping=TargetMapping(tuple(wnids), mapping),
        layout=SPURIOUS_LAYOUT,
    )
