"""Top-1 predictions, accuracy and expected calibration error.

Class subsets are explicit: ``class_mask`` lists the model's class indices that make up the
dataset's class space (e.g. the 200 ImageNet classes of ImageNet-R/-A). With a mask, scores are
restricted to those columns and predictions and labels are indices *into the mask*
(dataset-space labels), never model-space indices. Map a dataset-space prediction back to the
model's class space with ``np.asarray(class_mask)[pred]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_consistent_length, check_labels, check_probs
from robustlens.errors import ValidationError

__all__ = ["accuracy", "ece", "multi_label_accuracy", "predictions"]


def _check_class_mask(class_mask: Sequence[int] | Any | None, n_classes: int) -> np.ndarray | None:
    """Validate a class mask: unique integer indices into the model's ``n_classes`` columns."""
    if class_mask is None:
        return None
    mask = check_array(class_mask, "class_mask", ndim=1)
    if mask.dtype.kind == "b":
        raise ValidationError(
            "class_mask: expected a sequence of class indices, got a boolean array; "
            "pass np.flatnonzero(mask)"
        )
    mask = check_labels(mask, "class_mask", n_classes=n_classes)
    if np.unique(mask).size != mask.size:
        raise ValidationError(
            f"class_mask: class indices must be unique, got {mask.size} indices "
            f"of which {np.unique(mask).size} are distinct"
        )
    return mask


def _masked_scores(scores: Any, class_mask: Sequence[int] | Any | None, name: str) -> np.ndarray:
    """A (N, K) float score array, restricted to the columns in ``class_mask`` when given."""
    s = check_array(scores, name, ndim=2, dtype=np.float64)
    mask = _check_class_mask(class_mask, s.shape[1])
    return s if mask is None else s[:, mask]


def predictions(logits: Any, class_mask: Sequence[int] | Any | None = None) -> np.ndarray:
    """Top-1 predicted class of every sample: ``argmax_k s[n, k]`` over the (masked) columns.

    Works on logits or probabilities alike (softmax does not change the argmax). Ties go to the
    lowest index, as in ``numpy.argmax``.

    Args:
        logits: (N, K) logits or probabilities, numpy array or torch tensor.
        class_mask: optional sequence of model class indices forming the dataset's class space.
            Scores are restricted to these columns and the returned predictions are indices
            into ``class_mask`` (dataset-space), in ``[0, len(class_mask))``.

    Returns:
        (N,) int64 array of predicted classes (model-space without a mask, dataset-space with).

    Example:
        >>> logits = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]]
        >>> predictions(logits).tolist()
        [0, 2]
        >>> predictions(logits, class_mask=[1, 0]).tolist()  # columns 1 and 0 only
        [1, 0]
    """
    s = _masked_scores(logits, class_mask, "logits")
    return np.argmax(s, axis=1).astype(np.int64)


def accuracy(
    logits_or_probs: Any, labels: Any, class_mask: Sequence[int] | Any | None = None
) -> float:
    """Top-1 accuracy: ``mean_n [argmax_k s[n, k] == y_n]``.

    Args:
        logits_or_probs: (N, K) logits or probabilities, numpy array or torch tensor.
        labels: (N,) integer labels. Without a mask they are model class indices in
            ``[0, K)``; with ``class_mask`` they are dataset-space labels, i.e. indices into
            ``class_mask`` in ``[0, len(class_mask))``.
        class_mask: optional sequence of model class indices forming the dataset's class space
            (e.g. ImageNet-R's 200 classes); scores are restricted to these columns before the
            argmax, so the model can only predict classes of the dataset.

    Returns:
        Accuracy in [0, 1] as a python float.

    Example:
        >>> logits = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 2.0, 1.0]]
        >>> round(accuracy(logits, [0, 2, 2]), 4)
        0.6667
        >>> round(accuracy(logits, [0, 1, 1], class_mask=[1, 2]), 4)  # labels index the mask
        0.6667
    """
    s = _masked_scores(logits_or_probs, class_mask, "logits_or_probs")
    y = check_labels(labels, "labels", n_classes=s.shape[1])
    check_consistent_length(("logits_or_probs", s), ("labels", y))
    return float(np.mean(np.argmax(s, axis=1) == y))


def ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins (Guo et al., ICML 2017).

    With confidence ``c_n = max_k p[n, k]`` and bins ``B_m = ((m-1)/M, m/M]``, m = 1..M
    (a confidence of exactly 0 goes to the first bin)::

        ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|

    where ``acc(B_m)`` is the top-1 accuracy and ``conf(B_m)`` the mean confidence of the
    samples in ``B_m``; empty bins contribute 0.

    Reference: C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On Calibration of Modern Neural
    Networks", ICML 2017.

    Args:
        probs: (N, K) probabilities (rows sum to 1), numpy array or torch tensor.
        labels: (N,) integer labels in ``[0, K)``.
        n_bins: number M of equal-width bins on [0, 1].

    Returns:
        ECE in [0, 1] as a python float.

    Example:
        >>> probs = [[0.75, 0.25], [0.75, 0.25], [0.75, 0.25], [0.75, 0.25]]
        >>> round(ece(probs, [0, 0, 0, 1]), 4)  # 75% confident, 75% right: calibrated
        0.0
        >>> round(ece(probs, [0, 0, 0, 0]), 4)  # 75% confident, always right
        0.25
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValidationError(f"n_bins: expected a positive integer, got {n_bins!r}")
    p = check_probs(probs, "probs")
    y = check_labels(labels, "labels", n_classes=p.shape[1])
    n = check_consistent_length(("probs", p), ("labels", y))
    conf = np.clip(p.max(axis=1), 0.0, 1.0)
    correct = (np.argmax(p, axis=1) == y).astype(np.float64)
    # m / M is correctly rounded, so an edge equals the literal (3 / 5 == 0.6), as in Guo et al.
    edges = np.arange(int(n_bins) + 1) / int(n_bins)
    # searchsorted(side="left") gives i with edges[i-1] < c <= edges[i]: bin (i-1) is right-closed.
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    sum_conf = np.bincount(bins, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(bins, weights=correct, minlength=n_bins)
    # sum_m |B_m|/N * |acc_m - conf_m| = sum_m |sum_acc_m - sum_conf_m| / N
    return float(np.abs(sum_acc - sum_conf).sum() / n)


def multi_label_accuracy(predictions: Any, acceptable: Any) -> tuple[float, np.ndarray]:
    """Top-1 accuracy when a sample may have several correct labels (ImageNet ReaL).

    ``acc = mean_{i : A_i != {}} 1[pred_i in A_i]`` where ``A_i`` is sample i's set of
    acceptable labels (Beyer et al., "Are we done with ImageNet?", 2020); samples with an
    empty set are left out, as in that protocol.

    Args:
        predictions: (N,) int predicted labels.
        acceptable: (N, L) int acceptable labels per sample, padded with -1.

    Returns:
        ``(accuracy, hits)``: the accuracy (``nan`` when no sample has a label) and the (N,)
        bool hits (``False`` for samples without a label).

    Example:
        >>> acc, hits = multi_label_accuracy([3, 1, 2], [[3, 5], [0, -1], [-1, -1]])
        >>> float(acc), hits.tolist()
        (0.5, [True, False, False])
    """
    pred = np.asarray(predictions)
    sets = np.asarray(acceptable)
    if pred.ndim != 1 or sets.ndim != 2 or len(pred) != len(sets):
        raise ValidationError(
            f"predictions must be (N,) and acceptable (N, L); got {pred.shape} and {sets.shape}"
        )
    hits = (sets == pred[:, None]).any(axis=1) & (pred >= 0)
    labelled = (sets >= 0).any(axis=1)
    return (float(hits[labelled].mean()) if labelled.any() else float("nan")), hits
