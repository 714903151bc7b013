"""Effective invariance (EI): label-free agreement of predictions under a transformation.

Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model Invariance
and Generalization", NeurIPS 2022.

The transformed view (rotation, grayscale, ...) is produced by ``robustlens.views`` before the
model runs; these functions only compare the stored probabilities of the two views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_consistent_length, check_probs
from robustlens.errors import ValidationError

__all__ = [
    "effective_invariance",
    "invariance_per_view",
    "prediction_agreement_per_sample",
    "rotation_invariance",
]


def _check_pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Two (N, K) arrays with the same number of samples and of classes."""
    check_consistent_length((name_a, a), (name_b, b))
    if a.shape[1] != b.shape[1]:
        raise ValidationError(
            f"inconsistent numbers of classes: {name_a} has {a.shape[1]}, {name_b} has {b.shape[1]}"
        )


def _ei_and_agreement(p: np.ndarray, p_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EI and top-1 agreement of validated probabilities: ``p`` (N, K) against ``p_t`` (N, K)
    or a stack of views (V, N, K); results of shape ``p_t.shape[:-1]``."""
    y = np.argmax(p, axis=1)
    y_t = np.argmax(p_t, axis=-1)
    a = np.clip(np.take_along_axis(p, y[:, None], axis=1)[:, 0], 0.0, 1.0)
    a_t = np.clip(np.take_along_axis(p_t, y_t[..., None], axis=-1)[..., 0], 0.0, 1.0)
    agree = y == y_t
    return np.where(agree, np.sqrt(a * a_t), 0.0), agree


def effective_invariance(probs: Any, probs_t: Any) -> np.ndarray:
    """Per-sample effective invariance between an image and its transformed version.

    With ``y = argmax p``, ``y_t = argmax p_t``, ``a = p[y]`` and ``a_t = p_t[y_t]``::

        EI = sqrt(a * a_t)  if y == y_t  else 0

    EI is high only when both views get the same prediction *and* both are confident; it needs
    no labels. Average it over samples for a model-level score.

    Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model
    Invariance and Generalization", NeurIPS 2022 (Eq. 1).

    Args:
        probs: (N, K) probabilities on the original images.
        probs_t: (N, K) probabilities on the transformed images, same sample order.

    Returns:
        (N,) float64 array of EI values in [0, 1].

    Example:
        >>> p = [[0.8, 0.2], [0.6, 0.4], [0.9, 0.1]]
        >>> p_t = [[0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]
        >>> effective_invariance(p, p_t).round(4).tolist()  # sqrt(.6*.9), sqrt(.9*.9)
        [0.0, 0.7348, 0.9]
    """
    p = check_probs(probs, "probs")
    p_t = check_probs(probs_t, "probs_t")
    _check_pair(p, p_t, "probs", "probs_t")
    return _ei_and_agreement(p, p_t)[0]


def rotation_invariance(probs: Any, probs_rotated: Sequence[Any]) -> np.ndarray:
    """Per-sample rotation EI: the mean EI over the rotated views.

    ``EI_rot(x) = (1 / R) * sum_r EI(p(x), p(rot_r(x)))``; Deng et al. use R = 3 views rotated
    by 90, 180 and 270 degrees. Any non-empty set of views is accepted (e.g. only 180 degrees).

    Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model
    Invariance and Generalization", NeurIPS 2022.

    Args:
        probs: (N, K) probabilities on the upright images.
        probs_rotated: sequence of (N, K) probability arrays, one per rotated view (90, 180,
            270 degrees), each in the sample order of ``probs``; a (R, N, K) array also works.

    Returns:
        (N,) float64 array of mean EI values in [0, 1].

    Example:
        >>> p = [[0.8, 0.2], [0.6, 0.4]]
        >>> r90 = [[0.8, 0.2], [0.4, 0.6]]
        >>> r180 = [[0.6, 0.4], [0.1, 0.9]]
        >>> r270 = [[0.2, 0.8], [0.6, 0.4]]
        >>> rotation_invariance(p, [r90, r180, r270]).round(4).tolist()
        [0.4976, 0.2]
    """
    ei, _ = invariance_per_view(probs, probs_rotated, "probs_rotated")
    return ei.mean(axis=0)


def invariance_per_view(
    probs: Any, probs_views: Sequence[Any], name: str = "probs_views"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample EI and top-1 agreement of each of V transformed views against the original.

    Row v of the results is ``effective_invariance(probs, probs_views[v])`` and
    ``prediction_agreement_per_sample(probs, probs_views[v])``: with ``y = argmax p``,
    ``y_v = argmax p_v``, ``EI_v = sqrt(p[y] * p_v[y_v])`` if ``y == y_v`` else 0, and the
    agreement ``y == y_v``. Each array is validated once, and the V views are compared in
    one pass (a measure comparing four views with one original needs no more).

    Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model
    Invariance and Generalization", NeurIPS 2022 (Eq. 1).

    Args:
        probs: (N, K) probabilities on the original images.
        probs_views: V >= 1 (N, K) probability arrays, one per transformed view, each in the
            sample order of ``probs``; a (V, N, K) array also works.
        name: what to call ``probs_views`` in error messages.

    Returns:
        ``(ei, agreement)``: (V, N) float64 EI values in [0, 1] and (V, N) booleans.

    Example:
        >>> p = [[0.8, 0.2], [0.6, 0.4]]
        >>> ei, agree = invariance_per_view(p, [[[0.8, 0.2], [0.4, 0.6]], [[0.6, 0.4], [0.6, 0.4]]])
        >>> ei.round(4).tolist(), agree.tolist()
        ([[0.8, 0.0], [0.6928, 0.6]], [[True, False], [True, True]])
    """
    p = check_probs(probs, "probs")
    if isinstance(probs_views, str) or not hasattr(probs_views, "__len__"):
        raise ValidationError(
            f"{name}: expected a sequence of (N, K) probability arrays, "
            f"got {type(probs_views).__name__}"
        )
    if len(probs_views) == 0:
        raise ValidationError(f"{name}: expected at least one transformed view, got none")
    views = []
    for i, view in enumerate(probs_views):
        view_name = f"{name}[{i}]"
        p_v = check_probs(view, view_name)
        _check_pair(p, p_v, "probs", view_name)
        views.append(p_v)
    return _ei_and_agreement(p, np.stack(views))


def prediction_agreement_per_sample(probs: Any, probs_t: Any) -> np.ndarray:
    """Per-sample top-1 agreement between two views: ``argmax p == argmax p_t``.

    The label-free "prediction consistency" that EI refines with confidence. Logits work as
    well as probabilities (softmax does not change the argmax).

    Args:
        probs: (N, K) probabilities or logits on the original images.
        probs_t: (N, K) probabilities or logits on the transformed images.

    Returns:
        (N,) boolean array, True where the two predictions agree.

    Example:
        >>> p = [[0.8, 0.2], [0.6, 0.4], [0.9, 0.1]]
        >>> p_t = [[0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]
        >>> prediction_agreement_per_sample(p, p_t).tolist()
        [False, True, True]
    """
    p = check_array(probs, "probs", ndim=2, dtype=np.float64)
    p_t = check_array(probs_t, "probs_t", ndim=2, dtype=np.float64)
    _check_pair(p, p_t, "probs", "probs_t")
    return np.argmax(p, axis=1) == np.argmax(p_t, axis=1)
