"""Robustness indicators from k-means clustering of penultimate-layer features.

Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
Adversarial Machine Learning and Beyond (arXiv:2106.12303). Their observation: the better the
(clean) latent features of a classifier cluster into its classes, the higher its accuracy on
corrupted data (ImageNet-C), so clustering scores are label-free robustness indicators.

Protocol (one sampling function, :func:`sample_rows`, decides the rows; everything that is
scored or plotted clusters exactly those rows):

1. the rows: all of them when there are at most ``max_samples``; otherwise a sample stratified
   by class, every class present keeping at least ``min_per_class`` rows (the rest shared in
   proportion to the class sizes), or, when ``max_samples`` cannot hold ``min_per_class`` rows
   of every class, a random subset of classes with ``min_per_class`` rows each;
2. k = the number of classes present in those rows (not of the full label set), so k stays at
   most ``n_samples / min_per_class``;
3. k-means on the L2-normalised rows, then the scores of the partition.

The internal scores depend on the number of rows clustered (Calinski-Harabasz grows with it
by construction): compare models at equal ``max_samples``. ``bench/clustering_sample_size.py``
measures how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_consistent_length, check_int, check_labels
from robustlens.errors import ValidationError

__all__ = [
    "ClusterSample",
    "FeatureClusters",
    "cluster_indicators",
    "kmeans_clusters",
    "l2_normalize",
    "partition_scores",
    "sample_rows",
]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero.

    Example:
        >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class ClusterSample:
    """The rows that are clustered: what :func:`sample_rows` drew.

    Attributes:
        indices: sorted row indices into the input.
        classes: sorted classes present in those rows (``None`` without labels).
        n_classes_total: number of classes in the full label set (``None`` without labels).
        n_rows_total: number of rows of the input.
    """

    indices: np.ndarray
    classes: np.ndarray | None
    n_classes_total: int | None
    n_rows_total: int

    @property
    def n_samples(self) -> int:
        return int(self.indices.size)

    @property
    def n_classes_sampled(self) -> int | None:
        return None if self.classes is None else int(self.classes.size)


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``weights`` (largest remainders; ties: lower index)."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(weights.size, dtype=np.int64)
    share = total * weights / weights.sum()
    quota = np.floor(share).astype(np.int64)
    left = total - int(quota.sum())
    order = np.argsort(-(share - quota), kind="stable")
    quota[order[:left]] += 1
    return quota


def sample_rows(
    n_rows: int,
    labels: Any = None,
    max_samples: int = 10000,
    min_per_class: int = 5,
    seed: int = 0,
) -> ClusterSample:
    """The rows to cluster: all, or a class-stratified sample of at most ``max_samples``.

    - ``n_rows <= max_samples``: every row.
    - No labels: ``max_samples`` rows uniformly without replacement.
    - Labels, and ``max_samples`` holds ``min(count, min_per_class)`` rows of every class:
      each class keeps that minimum and the remaining rows are shared in proportion to the
      rows each class has left (largest remainders), so exactly ``max_samples`` rows.
    - Otherwise a random subset of classes (those with at least ``min_per_class`` rows first)
      keeps ``min_per_class`` rows each, as many classes as ``max_samples`` holds; the classes
      kept are :attr:`ClusterSample.classes`.

    Rows within a class are drawn without replacement. Deterministic for a seed
    (``numpy.random.default_rng(seed)``).

    Args:
        n_rows: number of rows of the input.
        labels: optional (n_rows,) integer class labels.
        max_samples: at most this many rows are kept.
        min_per_class: the least number of rows of every class kept (fewer only when the
            class has fewer rows).
        seed: seed of the draw.

    Returns:
        :class:`ClusterSample`.

    Example:
        >>> y = np.repeat([0, 1, 2, 3], [20, 10, 3, 7])
        >>> s = sample_rows(len(y), y, max_samples=20, min_per_class=5)
        >>> np.bincount(y[s.indices]).tolist(), s.classes.tolist()
        ([6, 6, 3, 5], [0, 1, 2, 3])
    """
    n_rows = check_int(n_rows, "n_rows")
    max_samples = check_int(max_samples, "max_samples", minimum=2)
    min_per_class = check_int(min_per_class, "min_per_class")
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    if labels is None:
        if n_rows <= max_samples:
            idx = np.arange(n_rows)
        else:
            idx = np.sort(rng.choice(n_rows, size=max_samples, replace=False))
        return ClusterSample(idx, None, None, n_rows)
    y = check_labels(labels, "labels")
    if y.size != n_rows:
        raise ValidationError(f"labels: expected {n_rows} labels (one per row), got {y.size}")
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if n_rows <= max_samples:
        return ClusterSample(np.arange(n_rows), classes, int(classes.size), n_rows)
    base = np.minimum(counts, min_per_class)
    if base.sum() <= max_samples:
        quota = base + _allocate(max_samples - int(base.sum()), counts - base)
    else:  # a random subset of classes, full ones (>= min_per_class rows) first
        perm = rng.permutation(classes.size)
        order = perm[np.argsort(counts[perm] < min_per_class, kind="stable")]
        kept = order[np.cumsum(base[order]) <= max_samples]
        if kept.size < 2:
            raise ValidationError(
                f"max_samples={max_samples} holds min_per_class={min_per_class} rows of fewer "
                "than 2 classes; raise max_samples or lower min_per_class"
            )
        quota = np.zeros(classes.size, dtype=np.int64)
        quota[kept] = base[kept]
    parts = [
        rng.choice(np.flatnonzero(inverse == c), size=int(q), replace=False)
        for c, q in enumerate(quota)
        if q > 0
    ]
    idx = np.sort(np.concatenate(parts))
    return ClusterSample(idx, classes[quota > 0], int(classes.size), n_rows)


@dataclass(frozen=True)
class FeatureClusters:
    """The k-means partition of the sampled, L2-normalised features.

    Attributes:
        sample: the rows clustered (:func:`sample_rows`).
        features: (n_samples, D) L2-normalised features of those rows.
        labels: their labels, or ``None``.
        clusters: (n_samples,) k-means cluster of each row.
        n_clusters: k.
    """

    sample: ClusterSample
    features: np.ndarray
    labels: np.ndarray | None
    clusters: np.ndarray
    n_clusters: int


def kmeans_clusters(
    features: Any,
    labels: Any = None,
    n_clusters: int | None = None,
    seed: int = 0,
    max_samples: int = 10000,
    n_init: int = 3,
    min_per_class: int = 5,
) -> FeatureClusters:
    """Sample rows (:func:`sample_rows`), L2-normalise them and run k-means.

    k = number of classes present in the sampled rows unless ``n_clusters`` is given.
    scikit-learn ``KMeans`` (k-means++ init, ``n_init`` restarts, ``random_state=seed``).
    Arguments as in :func:`cluster_indicators`.
    """
    x = check_array(features, "features", ndim=2, dtype=np.float64)
    y = None
    if labels is not None:
        y = check_labels(labels, "labels")
        check_consistent_length(("features", x), ("labels", y))
    elif n_clusters is None:
        raise ValidationError(
            "n_clusters is required when labels is None (k-means needs a number of clusters)"
        )
    k = None if n_clusters is None else check_int(n_clusters, "n_clusters")
    seed = check_int(seed, "seed", minimum=0)
    max_samples = check_int(max_samples, "max_samples", minimum=2)
    n_init = check_int(n_init, "n_init")
    min_per_class = check_int(min_per_class, "min_per_class")

    sample = sample_rows(x.shape[0], y, max_samples, min_per_class, seed)
    x = x[sample.indices]
    y = None if y is None else y[sample.indices]
    if k is None:
        k = sample.n_classes_sampled
        assert k is not None  # labels are given
    n = x.shape[0]
    if k < 2 or k >= n:
        raise ValidationError(
            f"n_clusters: expected 2 <= k <= n_samples - 1 = {n - 1}, got k={k} "
            f"({'given' if n_clusters is not None else 'distinct classes in the sampled labels'})"
        )
    from sklearn.cluster import KMeans  # lazy: scikit-learn costs ~0.5 s to import

    x = l2_normalize(x)
    pred = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(x)
    return FeatureClusters(sample, x, y, pred, k)


def partition_scores(fc: FeatureClusters) -> dict[str, float | int]:
    """The indicators of a k-means partition (see :func:`cluster_indicators`)."""
    # lazy: scikit-learn costs ~0.5 s to import
    from sklearn.metrics import (
        adjusted_rand_score,
        calinski_harabasz_score,
        davies_bouldin_score,
        normalized_mutual_info_score,
        silhouette_score,
    )

    x, pred, y = fc.features, fc.clusters, fc.labels
    out: dict[str, float | int] = {"n_samples": fc.sample.n_samples, "n_clusters": fc.n_clusters}
    if fc.sample.n_classes_sampled is not None:
        out["n_classes_sampled"] = fc.sample.n_classes_sampled
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


def _purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """``(1/N) sum_c max_k |cluster c ∩ class k|``."""
    from sklearn.metrics.cluster import contingency_matrix  # lazy: scikit-learn is slow to import

    c = contingency_matrix(labels, clusters)  # rows: classes, columns: clusters
    return float(c.max(axis=0).sum() / c.sum())


def _cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one cluster-to-class assignment (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment  # lazy: scipy costs ~1 s to import
    from sklearn.metrics.cluster import contingency_matrix  # lazy: scikit-learn is slow to import

    c = contingency_matrix(labels, clusters)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / c.sum())


def cluster_indicators(features: Any, *args: Any, **kwargs: Any) -> dict[str, float | int]:
    """Clustering-based robustness indicators of a model's (penultimate) features.

    Steps: (1) the rows (:func:`sample_rows`): all of them when there are at most
    ``max_samples``, else a sample stratified by class with at least ``min_per_class`` rows of
    every class kept (a random subset of classes when ``max_samples`` cannot hold them all),
    drawn with ``numpy.random.default_rng(seed)``; without labels, a uniform draw;
    (2) L2-normalize each feature vector; (3) k-means (scikit-learn ``KMeans``, k-means++
    init, ``n_init`` restarts, ``random_state=seed``) with k = number of classes present in the
    sampled rows unless ``n_clusters`` is given; (4) score the partition.

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

    The scores depend on the number of rows clustered (see the module docstring): compare
    models at equal ``max_samples``.

    Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
    Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
    Adversarial Machine Learning and Beyond (arXiv:2106.12303).

    The arguments are passed on to :func:`kmeans_clusters` (which samples and clusters the rows).

    Args:
        features: (N, D) features, numpy array or torch tensor.
        labels: optional (N,) integer class labels; they stratify the sample, set k and enable
            the label scores.
        n_clusters: number of clusters k; required when ``labels`` is None.
        seed: seed of the subsampling and of k-means; the same seed gives the same dict.
        max_samples: at most this many rows are clustered and scored (the silhouette is
            quadratic in the number of rows).
        n_init: number of k-means restarts (the best inertia is kept); more is slower.
        min_per_class: rows of every sampled class at least (fewer only when the class has
            fewer rows); k <= n_samples / min_per_class when subsampling.

    Returns:
        Dict with ``n_samples`` (rows used), ``n_clusters`` (k), with labels
        ``n_classes_sampled`` (classes present in the rows used), ``silhouette``,
        ``davies_bouldin``, ``calinski_harabasz`` and, with labels, ``nmi``, ``ari``,
        ``purity``, ``cluster_accuracy`` (python floats). Scores are NaN when k-means finds a
        single cluster.

    Example:
        >>> feats = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]
        >>> out = cluster_indicators(feats, labels=[1, 1, 0, 0])
        >>> out["n_clusters"], round(out["nmi"], 4), round(out["cluster_accuracy"], 4)
        (2, 1.0, 1.0)
    """
    return partition_scores(kmeans_clusters(features, *args, **kwargs))
