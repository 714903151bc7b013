"""``load_published``: a shipped published table by name, or a newer copy from a path.

The three tables ship with robustlens as package data (``robustlens/published/data``), each
next to its licence and citation, so nothing is downloaded:

* ``"testbed"``: the imagenet-testbed (Taori et al., NeurIPS 2020; MIT),
* ``"bvg"``: seed 002's benchmark (Gavrikov and Keuper, CVPR 2024; CC BY-SA 4.0),
* ``"robustbench"``: RobustBench's ImageNet leaderboards (Croce et al., 2021; MIT).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from robustlens.errors import ValidationError
from robustlens.published._common import as_resource, read_csv_text, wrong_format
from robustlens.published.bvg import BVG_REQUIRED, read_bvg
from robustlens.published.robustbench import read_robustbench
from robustlens.published.testbed import TESTBED_REQUIRED, read_testbed

__all__ = ["FORMATS", "SOURCES", "detect_format", "load_published", "shipped_data"]

#: names of the shipped tables; each is also the name of its format
SOURCES = ("testbed", "bvg", "robustbench")
FORMATS = SOURCES
_TESTBED_CSV = ("robustness_top1s.csv", "robustness_top1s.csv.gz")
_TESTBED_TYPES = ("plotting/model_types.py", "model_types.py", "model_types.py.txt")
_BVG_CSV = (
    "raw-data/benchmark.csv",
    "benchmark.csv",
    "raw-data/benchmark.csv.gz",
    "benchmark.csv.gz",
)
_BVG_CATEGORIES = ("raw-data/r50_categories.json", "r50_categories.json")


def shipped_data(name: str) -> Any:
    """The folder (an ``importlib.resources`` ``Traversable``) of a shipped table.

    Example:
        >>> sorted(p.name for p in shipped_data("bvg").iterdir())
        ['LICENSE', 'README.md', 'benchmark.csv.gz', 'r50_categories.json']
    """
    if name not in SOURCES:
        raise ValidationError(f"unknown published table {name!r}; shipped: {', '.join(SOURCES)}")
    return files("robustlens.published").joinpath("data", name)


def _first(folder: Any, names: tuple[str, ...]) -> Any | None:
    for n in names:
        f = folder.joinpath(*n.split("/"))
        if f.is_file():
            return f
    return None


#: the formats read from a CSV and a side file (the testbed's model types, seed 002's
#: categories): format -> (CSV names in a folder, side-file names, the shipped side file,
#: the ``attrs`` key naming the side file read, the reader)
_SIDE_FILES = {
    "testbed": (_TESTBED_CSV, _TESTBED_TYPES, "model_types.py.txt", "model_types", read_testbed),
    "bvg": (_BVG_CSV, _BVG_CATEGORIES, "r50_categories.json", "categories", read_bvg),
}
#: what a folder of each format lacks when it has no CSV
_NO_CSV = {
    "testbed": f"no {' or '.join(_TESTBED_CSV)} in this folder (the imagenet-testbed format: a "
    "checkout of github.com/modestyachts/imagenet-testbed, or the CSV)",
    "bvg": "no raw-data/benchmark.csv in this folder (seed 002's format: a checkout of "
    "github.com/paulgavrikov/biases_vs_generalization, or the CSV)",
}


def _read_with_side_file(fmt: str, path: Any) -> pd.DataFrame:
    """A table of a :data:`_SIDE_FILES` format from a folder (its first CSV, the side file
    next to it) or from the CSV itself (the side file looked for in its folder); without a side
    file, the shipped one. ``frame.attrs`` names the side file read (or ``"shipped"``)."""
    csvs, side_files, shipped_name, attr, read = _SIDE_FILES[fmt]
    shipped_side = shipped_data(fmt).joinpath(shipped_name)
    if path.is_dir():
        csv = _first(path, csvs)
        if csv is None:
            raise ValidationError(f"{path}: {_NO_CSV[fmt]}")
        side = _first(path, side_files)
    else:
        csv, side = path, _first(path.parent, side_files)
    frame = read(csv, side if side is not None else shipped_side)
    frame.attrs[attr] = str(side) if side is not None else "shipped"
    return frame


_READERS: dict[str, Callable[[Any], pd.DataFrame]] = {
    "testbed": functools.partial(_read_with_side_file, "testbed"),
    "bvg": functools.partial(_read_with_side_file, "bvg"),
    "robustbench": read_robustbench,
}


def detect_format(path: Any) -> str:
    """The published format of a file or folder: ``testbed``, ``bvg`` or ``robustbench``.

    A folder holding ``robustness_top1s.csv`` is the testbed's, one holding
    ``raw-data/benchmark.csv`` seed 002's, one holding ``model_info/imagenet/<threat>/*.json``
    RobustBench's; a CSV file is told by its columns (``val``: testbed,
    ``top1_acc/imagenet``: seed 002).

    Raises:
        ValidationError: the path does not exist or is in none of the formats (the message
            names the columns each format has).
    """
    p = as_resource(path)
    if isinstance(p, Path) and not p.exists():
        raise ValidationError(f"{path}: no such file or folder")
    if p.is_dir():
        if _first(p, _TESTBED_CSV) is not None:
            return "testbed"
        if _first(p, _BVG_CSV) is not None:
            return "bvg"
        try:
            read_robustbench(p)
        except ValidationError as exc:
            raise ValidationError(
                f"{path}: a folder in none of the published formats: expected "
                "robustness_top1s.csv (testbed), raw-data/benchmark.csv (bvg) or "
                f"RobustBench's model_info ({exc})"
            ) from exc
        return "robustbench"
    header = read_csv_text(p).split("\n", 1)[0]
    columns = [c.strip().strip('"') for c in header.split(",")]
    if all(c in columns for c in TESTBED_REQUIRED):
        return "testbed"
    if all(c in columns for c in BVG_REQUIRED):
        return "bvg"
    raise ValidationError(
        wrong_format(
            "a published table (testbed: robustness_top1s.csv; bvg: benchmark.csv)",
            path,
            [*TESTBED_REQUIRED, "(testbed) or", *BVG_REQUIRED, "(bvg)"],
            columns,
        )
    )


@functools.cache
def _shipped(name: str) -> pd.DataFrame:
    frame = _READERS[name](shipped_data(name))
    frame.attrs["path"] = f"shipped:{name}"
    return frame


def load_published(source: Any, format: str | None = None) -> pd.DataFrame:
    """A published per-model table in robustlens's canonical form.

    One row per model (RobustBench: per leaderboard entry), a ``model`` column, ``source``
    (the format's name), ``type`` (the model's published type or category), metadata, then
    accuracies as fractions in [0, 1] in columns named as robustlens names datasets
    (``imagenet_val``, ``imagenet_v2``, ``imagenet_sketch``, ``imagenet_r``, ``imagenet_a``,
    ``objectnet``, ``stylized_imagenet``, ``imagenet_c/<corruption>/<severity>``,
    ``imagenet_cbar/<corruption>/<severity>``; ``dataset@other``: ``dataset`` restricted to
    the classes of ``other``; ``dataset|measure.value``: another value than top-1, e.g.
    ``imagenet_val|accuracy.accuracy_real`` for ReaL), and biases in columns named as the
    ``biases`` measure names its values (``biases.shape_bias``, ``biases.low_freq_bias``,
    ...). Each reader's module (:mod:`robustlens.published.testbed`, ``.bvg``,
    ``.robustbench``) lists its columns.

    Args:
        source: ``"testbed"``, ``"bvg"`` or ``"robustbench"`` for a shipped table (a name
            always means the shipped table: write ``./testbed`` for a folder of that name), or
            a path: a CSV file, a repository checkout, or for RobustBench its ``model_info``
            folder. A CSV read without its model types (``model_types.py``) or categories
            (``r50_categories.json``) next to it takes the shipped ones.
        format: the format of a path (``testbed``, ``bvg``, ``robustbench``); detected from
            the file when None.

    Returns:
        the canonical table (a new DataFrame on each call); ``attrs`` holds ``format``,
        ``path`` and ``unmapped`` (published columns without a robustlens name).

    Raises:
        ValidationError: an unknown name or format, a missing path, or a file that is not in
            the format (the message names the columns expected).

    Example:
        >>> r = load_published("testbed").set_index("model").loc["resnet50"]
        >>> r["type"], [round(float(r[c]), 4) for c in ("imagenet_val", "imagenet_val@imagenet_r")]
        ('Standard training', [0.7613, 0.9212])
    """
    if format is not None and format not in FORMATS:
        raise ValidationError(
            f"format: expected one of {', '.join(FORMATS)} (or None to detect it), got {format!r}"
        )
    if isinstance(source, str) and source in SOURCES:
        if format is not None and format != source:
            raise ValidationError(
                f"{source!r} is the shipped {source} table; format={format!r} disagrees (pass a "
                "path to read a file in another format)"
            )
        return _shipped(source).copy()
    if not isinstance(source, str | Path):
        raise ValidationError(
            f"source: expected a shipped table's name ({', '.join(SOURCES)}) or a path, got "
            f"{type(source).__name__}"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise ValidationError(
            f"source: {str(source)!r} is neither a shipped table ({', '.join(SOURCES)}) nor an "
            "existing path"
        )
    fmt = format or detect_format(path)
    return _READERS[fmt](path)
