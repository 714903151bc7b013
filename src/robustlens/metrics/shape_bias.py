"""Shape bias on cue-conflict images (shape of one category, texture of another).

Reference: R. Geirhos, P. Rubisch, C. Michaelis, M. Bethge, F. A. Wichmann, W. Brendel,
"ImageNet-trained CNNs are biased towards texture; increasing shape bias improves accuracy and
robustness", ICLR 2019; the 16-category aggregation of the model-vs-human toolbox (Geirhos et
al., NeurIPS 2021).

A model's class probabilities are aggregated into category scores
``s_c = mean_{k in classes(c)} p_k`` (``category_map``: category -> the model's class indices;
the identity when the model's classes are the categories). The decision is
``argmax_c s_c`` (ties go to the first category). Images whose shape and texture labels are
equal are excluded. Over the remaining ``n_used`` images::

    shape_bias       = shape hits / (shape hits + texture hits)
    shape_fraction   = shape hits / n_used
    texture_fraction = texture hits / n_used
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_consistent_length
from robustlens.errors import ValidationError

__all__ = ["shape_bias", "shape_bias_per_category"]

CategoryMap = Mapping[Hashable, Sequence[int]] | Sequence[Sequence[int]]


def _resolve_categories(
    category_map: CategoryMap | None, n_classes: int
) -> tuple[list[Hashable], list[np.ndarray], bool]:
    """(category keys, class indices per category, labels are looked up by key)."""
    if category_map is None:
        return list(range(n_classes)), [np.array([k]) for k in range(n_classes)], False
    if isinstance(category_map, Mapping):
        keys = list(category_map.keys())
        lists = list(category_map.values())
        by_key = True
    elif isinstance(category_map, Sequence) and not isinstance(category_map, str | bytes):
        keys = list(range(len(category_map)))
        lists = list(category_map)
        by_key = False
    else:
        raise ValidationError(
            "category_map: expected a mapping category -> class indices or a sequence of "
            f"class-index lists, got {type(category_map).__name__}"
        )
    if not keys:
        raise ValidationError("category_map: expected at least one category, got none")
    out = []
    for key, idx in zip(keys, lists, strict=True):
        arr = np.asarray(idx)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
            raise ValidationError(
                f"category_map[{key!r}]: expected a non-empty list of integer class indices, "
                f"got {idx!r}"
            )
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValidationError(
                f"category_map[{key!r}]: class indices must lie in [0, {n_classes - 1}] "
                f"(the probs have {n_classes} columns), got range [{arr.min()}, {arr.max()}]"
            )
        out.append(arr.astype(np.int64))
    return keys, out, by_key


def _resolve_labels(labels: Any, name: str, keys: list[Hashable], by_key: bool) -> np.ndarray:
    """Labels -> category positions. Keys are used for a mapping whose keys are all integers
    or when the labels are not integers (e.g. category names); positions otherwise."""
    arr = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    if arr.ndim != 1:
        raise ValidationError(f"{name}: expected a 1-D array of labels, got shape {arr.shape}")
    int_keys = all(isinstance(k, int | np.integer) and not isinstance(k, bool) for k in keys)
    if arr.dtype.kind in "iu" and not (by_key and int_keys):
        if arr.size and (arr.min() < 0 or arr.max() >= len(keys)):
            raise ValidationError(
                f"{name}: category indices must lie in [0, {len(keys) - 1}], "
                f"got range [{arr.min()}, {arr.max()}]"
            )
        return arr.astype(np.int64)
    if not by_key and arr.dtype.kind not in "iu":
        raise ValidationError(
            f"{name}: expected integer category indices, got dtype {arr.dtype}; pass a "
            "category_map mapping names to class indices to use category names"
        )
    pos = {k: i for i, k in enumerate(keys)}
    unknown = sorted({str(v) for v in arr.tolist() if v not in pos})
    if unknown:
        raise ValidationError(
            f"{name}: unknown categories {unknown[:5]}; expected one of {[str(k) for k in keys]}"
        )
    return np.array([pos[v] for v in arr.tolist()], dtype=np.int64)


def _shape_bias_update(
    probs: Any,
    shape_labels: Any,
    texture_labels: Any,
    category_map: CategoryMap | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Hashable]]:
    """Validate; return (decision, shape, texture) over used images and the category keys."""
    p = check_array(probs, "probs", ndim=2, dtype=np.float64)
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):
        raise ValidationError(
            f"probs: expected probabilities in [0, 1], got range [{p.min():.4g}, {p.max():.4g}]; "
            "pass softmax(logits), not logits"
        )
    keys, lists, by_key = _resolve_categories(category_map, p.shape[1])
    s = _resolve_labels(shape_labels, "shape_labels", keys, by_key)
    t = _resolve_labels(texture_labels, "texture_labels", keys, by_key)
    check_consistent_length(("probs", p), ("shape_labels", s), ("texture_labels", t))
    scores = np.stack([p[:, idx].mean(axis=1) for idx in lists], axis=1)
    decision = np.argmax(scores, axis=1)
    used = s != t
    return decision[used], s[used], t[used], keys


def _shape_bias_compute(n_shape: int, n_texture: int, n_used: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "shape_bias": float("nan"),
        "shape_fraction": n_shape / n_used if n_used else float("nan"),
        "texture_fraction": n_texture / n_used if n_used else float("nan"),
        "n_used": n_used,
        "n_shape": n_shape,
        "n_texture": n_texture,
    }
    if n_used == 0:
        out["reason"] = "no cue-conflict image has different shape and texture labels"
    elif n_shape + n_texture == 0:
        out["reason"] = (
            f"none of the {n_used} used images was classified as its shape or its texture "
            "category (0 shape and 0 texture hits)"
        )
    else:
        out["shape_bias"] = n_shape / (n_shape + n_texture)
    return out


def shape_bias(
    probs: Any,
    shape_labels: Any,
    texture_labels: Any,
    category_map: CategoryMap | None = None,
) -> dict[str, Any]:
    """Shape bias of a model on cue-conflict images.

    ``shape_bias = shape hits / (shape hits + texture hits)`` over images whose shape and texture
    categories differ; a hit is a category decision ``argmax_c mean_{k in c} p_k`` equal to the
    image's shape (resp. texture) category.

    Reference: Geirhos et al., ICLR 2019.

    Args:
        probs: (N, K) model probabilities (softmax over the model's classes).
        shape_labels: (N,) shape categories; integer positions in the category order, or
            category keys (e.g. names) when ``category_map`` is a mapping. With a mapping whose
            keys are all integers, integer labels are keys.
        texture_labels: (N,) texture categories, same convention.
        category_map: category -> the model's class indices (a mapping, or a sequence indexed by
            category position); ``None`` when the model's classes are the categories.

    Returns:
        dict with ``shape_bias``, ``shape_fraction``, ``texture_fraction`` (floats) and
        ``n_used``, ``n_shape``, ``n_texture`` (ints). When ``shape_bias`` is NaN (no usable
        image, or no shape and no texture hit) a ``reason`` string says why.

    Example:
        >>> cats = {"cat": [0, 1], "dog": [2, 3]}
        >>> p = [[0.1, 0.5, 0.2, 0.2],  # cat (shape hit)
        ...      [0.0, 0.1, 0.6, 0.3],  # dog (texture hit)
        ...      [0.3, 0.3, 0.2, 0.2],  # cat (texture hit)
        ...      [0.9, 0.1, 0.0, 0.0]]  # excluded: shape == texture
        >>> r = shape_bias(p, ["cat", "cat", "dog", "dog"], ["dog", "dog", "cat", "dog"], cats)
        >>> round(r["shape_bias"], 4), round(r["texture_fraction"], 4), r["n_used"]
        (0.3333, 0.6667, 3)
    """
    decision, s, t, _ = _shape_bias_update(probs, shape_labels, texture_labels, category_map)
    return _shape_bias_compute(int((decision == s).sum()), int((decision == t).sum()), len(s))


def shape_bias_per_category(
    probs: Any,
    shape_labels: Any,
    texture_labels: Any,
    category_map: CategoryMap | None = None,
) -> dict[Hashable, float]:
    """Shape bias computed separately over the images of each *shape* category.

    For category c: ``shape hits / (shape hits + texture hits)`` over the used images whose
    shape label is c (as in the per-category plots of model-vs-human). NaN for a category with
    no used image or no hit.

    Reference: Geirhos et al., ICLR 2019.

    Args:
        probs: (N, K) model probabilities.
        shape_labels: (N,) shape categories (see :func:`shape_bias`).
        texture_labels: (N,) texture categories.
        category_map: as in :func:`shape_bias`.

    Returns:
        dict category key -> shape bias, for every category in the category order.

    Example:
        >>> p = [[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]]
        >>> shape_bias_per_category(p, [0, 0, 1], [1, 1, 0])
        {0: 0.5, 1: 1.0}
    """
    decision, s, t, keys = _shape_bias_update(probs, shape_labels, texture_labels, category_map)
    out: dict[Hashable, float] = {}
    for i, key in enumerate(keys):
        sel = s == i
        n_s = int((decision[sel] == s[sel]).sum())
        n_t = int((decision[sel] == t[sel]).sum())
        out[key] = n_s / (n_s + n_t) if n_s + n_t else float("nan")
    return out
