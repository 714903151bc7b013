"""What the three readers share: the canonical table's fixed columns, units, and reading files.

A published file is read from a filesystem path or from a shipped resource (an
``importlib.resources`` ``Traversable``); both offer ``name``, ``is_file()``, ``is_dir()``,
``iterdir()``, ``joinpath()``, ``open("rb")`` and ``read_text()``, which is all this module uses.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError

__all__ = [
    "FIXED_COLUMNS",
    "as_resource",
    "canonical_frame",
    "column_order",
    "percent_to_fraction",
    "read_csv_text",
    "read_format_csv",
    "wrong_format",
]

#: the columns every canonical table starts with
FIXED_COLUMNS = ("model", "source", "type")


# value columns in this order (longest matching prefix), then by name
_ORDER = (
    "imagenet_val",
    "imagenet_val|",
    "imagenet_v2",
    "imagenet_sketch",
    "imagenet_r",
    "imagenet_a",
    "objectnet",
    "stylized_imagenet",
    "cue_conflict",
    "imagenet_val@",
    "imagenet_greyscale",
    "imagenet_c",
    "imagenet_cbar",
    "imagenet_val/corrupt/",
    "imagenet_3dcc",
    "biases.",
)


def _order_key(name: str) -> tuple[int, int, str, int]:
    prefixes = [i for i, p in enumerate(_ORDER) if name.startswith(p)]
    rank = max(prefixes, key=lambda i: len(_ORDER[i])) if prefixes else len(_ORDER)
    head, _, tail = name.rpartition("/")
    if tail.isdigit():  # corruption severities in numeric order
        return rank, 1, head, int(tail)
    return rank, 0, name, 0


def column_order(names: Iterable[str]) -> list[str]:
    """Value columns in the canonical order: ID, natural shifts, restricted ID, corruptions,
    biases.

    Example:
        >>> column_order(["biases.shape_bias", "imagenet_c/fog/2", "imagenet_r", "imagenet_val"])
        ['imagenet_val', 'imagenet_r', 'imagenet_c/fog/2', 'biases.shape_bias']
    """
    return sorted(names, key=_order_key)


def as_resource(path: Any) -> Any:
    """A ``Traversable`` (shipped resource) as is; anything else as a :class:`Path`."""
    if hasattr(path, "iterdir") and hasattr(path, "joinpath") and not isinstance(path, str):
        return path
    return Path(path).expanduser()


def read_csv_text(resource: Any) -> str:
    """The text of a CSV file, gunzipped when its name ends in ``.gz``."""
    with resource.open("rb") as fh:
        raw = fh.read()
    if str(resource.name).endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def read_csv(resource: Any, **kwargs: Any) -> pd.DataFrame:
    """A CSV file (``.csv`` or ``.csv.gz``) as a DataFrame."""
    return pd.read_csv(io.StringIO(read_csv_text(resource)), **kwargs)


def read_format_csv(
    csv: Any, what: str, required: Sequence[str], also_expected: Sequence[str]
) -> pd.DataFrame:
    """A published CSV file (path or resource) that has the ``required`` columns; otherwise a
    :class:`ValidationError` saying it is not ``what`` and naming the ``required`` columns,
    then the ``also_expected`` ones."""
    raw = read_csv(as_resource(csv))
    if any(c not in raw.columns for c in required):
        raise ValidationError(wrong_format(what, csv, (*required, *also_expected), raw.columns))
    return raw


def wrong_format(what: str, path: Any, expected: Sequence[str], found: Iterable[str]) -> str:
    """The message for a file that is not in the expected published format."""
    found = [str(c) for c in found]
    shown = ", ".join(found[:12]) + (f", ... ({len(found)} in all)" if len(found) > 12 else "")
    return (
        f"{path}: not {what}: expected the columns {', '.join(expected)}; found: {shown or 'none'}"
    )


def percent_to_fraction(values: pd.Series, column: str, path: Any) -> pd.Series:
    """Percentages (0..100) as fractions in [0, 1]; a value outside 0..100 is an error."""
    v = pd.to_numeric(values, errors="coerce").astype(np.float64)
    finite = v[np.isfinite(v)]
    if len(finite) and (finite.min() < 0.0 or finite.max() > 100.0):
        raise ValidationError(
            f"{path}: column {column!r} should hold percentages in [0, 100], got values in "
            f"[{finite.min():.4g}, {finite.max():.4g}]"
        )
    return v / 100.0


def canonical_frame(
    models: Sequence[str],
    source: str,
    types: Sequence[Any],
    meta: dict[str, Sequence[Any]],
    values: dict[str, Sequence[float]],
) -> pd.DataFrame:
    """Assemble a canonical table: ``model, source, type``, metadata, then value columns."""
    data: dict[str, Any] = {
        "model": list(models),
        "source": [source] * len(models),
        "type": pd.Series(list(types), dtype=object),
    }
    data.update({k: list(v) for k, v in meta.items()})
    frame = pd.DataFrame(data)
    if values:
        numbers = pd.DataFrame(
            {k: np.asarray(values[k], dtype=np.float64) for k in column_order(values)},
            index=frame.index,
        )
        frame = pd.concat([frame, numbers], axis=1)
    return frame
