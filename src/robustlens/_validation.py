"""Input validation shared by every metric (in the spirit of scikit-learn's ``check_array``).

Validation is kept apart from arithmetic: metrics call these helpers first, then compute.
Every error names the argument, the expected and the actual value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError


def to_numpy(x: Any, name: str = "array", dtype: Any = None) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{name}: cannot convert {type(x).__name__} to an array ({exc})"
        ) from exc
    return arr


def check_array(
    x: Any,
    name: str,
    ndim: int | None = None,
    dtype: Any = None,
    finite: bool = True,
    min_rows: int = 1,
) -> np.ndarray:
    """Convert to numpy and check dimensionality, finiteness and a minimum number of rows."""
    arr = to_numpy(x, name, dtype)
    if ndim is not None and arr.ndim != ndim:
        raise ValidationError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if arr.ndim >= 1 and arr.shape[0] < min_rows:
        raise ValidationError(f"{name}: expected at least {min_rows} row(s), got {arr.shape[0]}")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name}: contains NaN or infinite values")
    return arr


def check_probs(probs: Any, name: str = "probs", atol: float = 1e-3) -> np.ndarray:
    """A (N, K) array of probabilities: values in [0, 1], rows summing to 1."""
    p = check_array(probs, name, ndim=2, dtype=np.float64)
    if p.min() < -atol or p.max() > 1 + atol:
        raise ValidationError(
            f"{name}: expected probabilities in [0, 1], got range [{p.min():.4g}, {p.max():.4g}]; "
            "pass softmax(logits), not logits"
        )
    sums = p.sum(axis=1)
    # np.allclose(sums, 1, atol=atol) without its temporaries (called on every prediction)
    if not bool((np.abs(sums - 1.0) <= atol + 1e-5).all()):
        worst = float(sums[np.argmax(np.abs(sums - 1))])
        raise ValidationError(
            f"{name}: rows must sum to 1 (got a row summing to {worst:.4g}); pass softmax(logits)"
        )
    return p


def check_labels(labels: Any, name: str = "labels", n_classes: int | None = None) -> np.ndarray:
    """A 1-D integer label array, optionally checked against a class count."""
    y = check_array(labels, name, ndim=1)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.equal(np.mod(y, 1), 0)):
            y = y.astype(np.int64)
        else:
            raise ValidationError(f"{name}: expected integer class indices, got dtype {y.dtype}")
    if n_classes is not None and y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValidationError(
            f"{name}: class indices must lie in [0, {n_classes - 1}], "
            f"got range [{y.min()}, {y.max()}]"
        )
    return y.astype(np.int64)


def check_number(
    value: Any, name: str, *, integer: bool = False, error: type[Exception] = ValidationError
) -> float:
    """A finite, non-negative number (a whole one with ``integer``), as a float.

    ``error`` is raised naming ``name`` (a :class:`ValidationError` by default; a config
    reader passes ``ConfigError``).

    Example:
        >>> check_number("0.5", "eps"), check_number(40, "steps", integer=True)
        (0.5, 40.0)
    """
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise error(f"{name}: expected a non-negative number, got {value!r}") from exc
    if not math.isfinite(v) or v < 0 or (integer and v != int(v)):
        kind = "integer" if integer else "number"
        raise error(f"{name}: expected a non-negative {kind}, got {value!r}")
    return v


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer (not a bool, not a float) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValidationError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(value: Any, name: str) -> float:
    """One accuracy (or other fraction) in [0, 1], as a float: a percentage is an error."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected an accuracy in [0, 1], got {value!r}") from exc
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValidationError(
            f"{name}: expected an accuracy in [0, 1] (a fraction, not a percentage), got {v}"
        )
    return v


def check_frame(
    df: Any,
    name: str,
    columns: Sequence[str] = (),
    what: str = "a pandas DataFrame",
    hint: str = "",
) -> pd.DataFrame:
    """A DataFrame holding ``columns``; errors name ``name``, the columns missing and ``hint``.

    Example:
        >>> try:
        ...     check_frame(pd.DataFrame({"a": [1]}), "df", ["a", "b"])
        ... except ValidationError as e:
        ...     print(e)
        df: columns ['b'] missing from the DataFrame; available: ['a']
    """
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"{name}: expected {what}, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{name}: columns {missing} missing from the DataFrame; available: "
            f"{list(df.columns)}{hint}"
        )
    return df


def check_mapping(
    value: Any, name: str, expected: str, item: str, *, error: type[Exception] = ValidationError
) -> Mapping[Any, Any]:
    """A non-empty mapping; else ``error`` naming ``name``, what was ``expected`` and the ``item``.

    Example:
        >>> try:
        ...     check_mapping({}, "errors", "a mapping", "corruption")
        ... except ValidationError as e:
        ...     print(e)
        errors: expected at least one corruption, got an empty mapping
    """
    if not isinstance(value, Mapping):
        raise error(f"{name}: expected {expected}, got {type(value).__name__}")
    if not value:
        raise error(f"{name}: expected at least one {item}, got an empty mapping")
    return value


def check_consistent_length(*arrays: tuple[str, Sequence[Any] | np.ndarray]) -> int:
    """All named arrays have the same first dimension; returns it."""
    lengths = {name: len(a) for name, a in arrays}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValidationError(f"inconsistent numbers of samples: {desc}")
    return next(iter(lengths.values())) if lengths else 0


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax of a numpy array (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
