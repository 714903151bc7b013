"""Robustness indicators from k-means clustering of penultimate-layer features.

Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
Adversarial Machine Learning and Beyond (arXiv:2106.12303). Their observation: the better the
(clean) latent features of a classifier cluster into its classes, the higher its accuracy on
corrupted data (ImageNet-C), so clustering scores are label-free robustness indicators.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.metrics.cluster import contingency_matrix

from robustlens._validation import check_array, check_consistent_length, check_int, check_labels
from robustlens.errors import ValidationError

__all__ = ["cluster_indicators"]


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(np.float64).tiny)


def _purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """``(1/N) sum_c max_k |cluster c ∩ class k|``."""
    c = contingency_matrix(labels, clusters)  # rows: classes, columns: clusters
    return float(c.max(axis=0).sum() / c.sum())


def _cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one cluster-to-class assignment (Hungarian matching)."""
    c = contingency_matrix(labels, clusters)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


def cluster_indicators(
    features: Any,
    labels: Any = None,
    n_clusters: int | None = None,
    seed: int = 0,
    max_samples: int = 10000,
    n_init: int = 3,
) -> dict[str, float | int]:
    """Clustering-based robustness indicators of a model's (penultimate) features.

    Steps: (1) draw at most ``max_samples`` rows uniformly without replacement with
    ``numpy.random.default_rng(seed)`` (all rows when there are fewer); (2) L2-normalize each
    feature vector; (3) k-means (scikit-learn ``KMeans``, k-means++ init, ``n_init`` restarts,
    ``random_state=seed``) with k = number of distinct classes in ``labels`` unless
    ``n_clusters`` is given; (4) score the partition.

    Label-free scores (on the normalized features and the k-means partition):

    - ``silhouette``: mean of ``(b - a) / max(a, b)`` (a: mean distance to the own cluster,
      b: to the nearest other cluster), in [-1, 1], higher is better;
    - ``davies_bouldin``: mean over clusters of the worst ``(s_i + s_j) / d(c_i, c_j)``,
      >= 0, lower is better;
    - ``calinski_harabasz``: between- over within-cluster dispersion, scaled by
      ``(N - k) / (k - 1)``, higher is better.

    With labels: ``nmi`` (normalized mutual information, arithmetic mean), ``ari`` (adjusted
    Rand index), ``purity`` = ``(1/N) sum_c max_k |c ∩ k|`` and ``cluster_accuracy``, the
    accuracy under the best one-to-one matching of clusters to classes (Hungarian algorithm).
    The label scores are unchanged by renaming the classes.

    Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
    Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
    Adversarial Machine Learning and Beyond (arXiv:2106.12303).

    Args:
        features: (N, D) features, numpy array or torch tensor.
        labels: optional (N,) integer class labels; they set k and enable the label scores.
        n_clusters: number of clusters k; required when ``labels`` is None.
        seed: seed of the subsampling and of k-means; the same seed gives the same dict.
        max_samples: at most this many rows are clustered and scored (the silhouette is
            quadratic in the number of rows).
        n_init: number of k-means restarts (the best inertia is kept); more is slower.

    Returns:
        Dict with ``n_samples`` (rows used), ``n_clusters`` (k), ``silhouette``,
        ``davies_bouldin``, ``calinski_harabasz`` and, with labels, ``nmi``, ``ari``,
        ``purity``, ``cluster_accuracy`` (python floats). Scores are NaN when k-means finds a
        single cluster.

    Example:
        >>> feats = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
        >>> out = cluster_indicators(feats, labels=[1, 1, 0, 0])
        >>> out["n_clusters"], round(out["nmi"], 4), round(out["cluster_accuracy"], 4)
        (2, 1.0, 1.0)
    """
    x = check_array(features, "features", ndim=2, dtype=np.float64)
    n_total = x.shape[0]
    y = None
    if labels is not None:
        y = check_labels(labels, "labels")
        check_consistent_length(("features", x), ("labels", y))
    if n_clusters is None:
        if y is None:
            raise ValidationError(
                "n_clusters is required when labels is None (k-means needs a number of clusters)"
            )
        k = int(np.unique(y).size)
    else:
        k = check_int(n_clusters, "n_clusters")
    seed = check_int(seed, "seed", minimum=0)
    max_samples = check_int(max_samples, "max_samples", minimum=2)
    n_init = check_int(n_init, "n_init")

    if n_total > max_samples:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n_total, size=max_samples, replace=False))
        x = x[idx]
        y = None if y is None else y[idx]
    n = x.shape[0]
    if k < 2 or k >= n:
        raise ValidationError(
            f"n_clusters: expected 2 <= k <= n_samples - 1 = {n - 1}, got k={k} "
            f"({'given' if n_clusters is not None else 'distinct classes in labels'})"
        )

    x = _l2_normalize(x)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    pred = km.fit_predict(x)

    out: dict[str, float | int] = {"n_samples": n, "n_clusters": k}
    if np.unique(pred).size >= 2:
        out["silhouette"] = float(silhouette_score(x, pred, metric="euclidean"))
        out["davies_bouldin"] = float(davies_bouldin_score(x, pred))
        out["calinski_harabasz"] = float(calinski_harabasz_score(x, pred))
    else:  # all features identical: the partition has a single cluster
        out["silhouette"] = out["davies_bouldin"] = out["calinski_harabasz"] = float("nan")
    if y is not None:
        out["nmi"] = float(normalized_mutual_info_score(y, pred))
        out["ari"] = float(adjusted_rand_score(y, pred))
        out["purity"] = _purity(y, pred)
        out["cluster_accuracy"] = _cluster_accuracy(y, pred)
    return out
