"""Clustering-based robustness indicators from the stored penultimate features.

Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
Adversarial Machine Learning and Beyond (arXiv:2106.12303).

The measure asks the engine to keep the penultimate features of the clean view; the indicators
are computed from those stored features, so computing them runs no forward pass. The rows are
sampled and clustered once (:func:`robustlens.metrics.clustering.kmeans_clusters`): the
indicators (:func:`~robustlens.metrics.clustering.partition_scores`, i.e. what
:func:`~robustlens.metrics.clustering.cluster_indicators` returns) and the report's projection
are computed from the same rows and the same partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustlens.errors import ConfigError, RobustlensError
from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput
from robustlens.metrics.clustering import FeatureClusters, kmeans_clusters, partition_scores
from robustlens.roles import is_labelled

__all__ = ["PROJECTION_POINTS", "ClusteringMeasure", "pca_projection"]

#: at most this many points go into the 2-D projection artifact (the report's scatter)
PROJECTION_POINTS = 500
_ALL_EXCLUDED = frozenset({"train", "adversarial"})


def pca_projection(x: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` on their first principal components (centred SVD).

    Returns the (N, n_components) coordinates and the explained-variance ratio of each
    component. Signs are fixed so that the largest-magnitude loading of a component is
    positive (the SVD sign is otherwise arbitrary).

    Example:
        >>> xy, ratio = pca_projection(np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]), 1)
        >>> (xy.ravel() + 0.0).round(2).tolist(), round(float(ratio[0]), 3)
        ([-2.0, 0.0, 2.0], 1.0)
    """
    xc = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    vt = vt[:n_components]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    var = s**2
    ratio = var[:n_components] / max(float(var.sum()), np.finfo(np.float64).tiny)
    return xc @ vt.T, ratio


class ClusteringMeasure(Measure):
    """k-means clustering indicators of clean penultimate features (Ho et al., 2022).

    Values per evaluated dataset: every key of
    :func:`~robustlens.metrics.clustering.cluster_indicators` — label-free ``silhouette``,
    ``davies_bouldin`` (lower is better), ``calinski_harabasz``, label-based ``nmi``, ``ari``,
    ``purity``, ``cluster_accuracy`` — plus the clustered sample: ``n_samples`` (rows
    clustered), ``n_clusters`` (k) and ``n_classes_sampled`` (classes present in those rows;
    k is that number).

    On an unlabelled dataset (``datasets="all"``) only the label-free indicators are computed:
    the sample is uniform and k = the model's number of classes, at most
    ``min(n, max_samples) // min_per_class`` (and at least 2).

    The sample (:func:`~robustlens.metrics.clustering.sample_rows`): all rows when there are at
    most ``max_samples``; otherwise stratified by class, every class keeping at least
    ``min_per_class`` rows, or, when ``max_samples`` cannot hold ``min_per_class`` rows of
    every class (1000 ImageNet classes, 2000 rows), a seeded random subset of classes with
    ``min_per_class`` rows each, so k <= n_samples / min_per_class.

    Artifacts: ``samples`` (per dataset: n_samples, n_clusters, n_classes_sampled,
    n_classes_total, the classes kept and the sample ids of the rows clustered) and, for the
    ``id`` dataset, ``projection``: a 2-D PCA projection of at most 500 of the clustered,
    L2-normalised rows with their k-means cluster and true label, for the report's plot. The
    projection is drawn from the very rows and partition the indicators were computed on.

    The indicators depend on the number of rows clustered: compare models at equal
    ``max_samples`` (on the same dataset). Measured by ``bench/clustering_sample_size.py``
    (64-D Gaussian mixtures, mean of 3 seeds; old = the protocol before issue 16, a uniform
    draw with k = classes of the full label set; new = this one, ``min_per_class=5``)::

        100 classes x 60 rows
        n     k old/new  silhouette old/new  Davies-B. old/new  Calinski-H. old/new
        200   100/40     0.127 / 0.195       0.950 / 1.442       3.2 / 5.9
        500   100/100    0.169 / 0.182       1.494 / 1.494       6.0 / 6.0
        1000  100/100    0.185 / 0.191       1.673 / 1.674      11.1 / 11.1
        2000  100/100    0.195 / 0.201       1.835 / 1.726      21.6 / 21.9
        5000  100/100    0.200 / 0.203       1.892 / 1.831      52.9 / 53.2
        spread of Davies-Bouldin over the sizes: old 0.94, new 0.39 (ratio 0.41)

        1000 classes x 50 rows (ImageNet-val-like; the old protocol refuses k >= n)
        200   1000/40      n/a / 0.194         n/a / 1.480        n/a / 5.8
        500   1000/100     n/a / 0.178         n/a / 1.498        n/a / 5.9
        1000  1000/200     n/a / 0.176         n/a / 1.509        n/a / 6.1
        2000  1000/400   0.095 / 0.156       1.025 / 1.532       3.2 / 5.9
        5000  1000/1000  0.122 / 0.142       1.632 / 1.577       5.9 / 5.9
        spread of Davies-Bouldin over n = 2000, 5000: old 0.61, new 0.05 (ratio 0.07)

    While k grows with n (rows per class fixed at ``min_per_class``) the indicators barely
    move; once every class is in the sample, more rows mean more rows per cluster, and
    Calinski-Harabasz grows about in proportion to n (its ``(N - k) / (k - 1)`` factor) while
    Davies-Bouldin rises slowly. Hence: equal ``max_samples`` for every model compared.

    Args:
        datasets: ``"id"`` (default: the clean validation split, as in the paper) or ``"all"``
            (every dataset except the ``train`` and ``adversarial`` roles).
        max_samples: at most this many feature rows are clustered per dataset, so cost stays
            bounded on 50k-image sets.
        seed: seed of the sample and of k-means.
        n_init: k-means restarts (scikit-learn ``KMeans``, k-means++ init; best inertia kept).
        min_per_class: rows of every class in the sample at least (when the class has that
            many); at most ``max_samples // min_per_class`` classes are clustered.
    """

    name = "clustering"
    label_free = True  # reads unlabelled datasets
    description = "k-means clustering indicators of clean penultimate features"
    paper = (
        "Ho, Pfreundt, Keuper, Keuper, Estimating the Robustness of Classification "
        "Models by the Structure of the Learned Feature-Space, AAAI-22 AdvML workshop"
    )

    def __init__(
        self,
        datasets: str = "id",
        max_samples: int = 2000,
        seed: int = 0,
        n_init: int = 3,
        min_per_class: int = 5,
    ) -> None:
        if datasets not in ("id", "all"):
            raise ConfigError(
                f"clustering: option datasets must be 'id' or 'all', got {datasets!r}"
            )
        self.datasets = datasets
        self.seed = _option_int("seed", seed, 0)
        self.n_init = _option_int("n_init", n_init, 1)
        self.min_per_class = _option_int("min_per_class", min_per_class, 1)
        self.max_samples = _option_int(
            "max_samples", max_samples, 2 * self.min_per_class, " (2 classes of min_per_class rows)"
        )

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        if self.datasets == "id":
            return {"clean": True} if dataset.role == "id" else {}
        # unlabelled datasets included: only the label-free indicators are computed there
        return {} if dataset.role in _ALL_EXCLUDED else {"clean": True}

    @property
    def unlabeled_reason(self) -> str | None:
        """Why an unlabelled dataset is not clustered (recorded by the study), or ``None``."""
        if self.datasets == "id":
            return (
                "clusters the id set only; measure_options.clustering.datasets: all computes "
                "the label-free indicators on unlabelled datasets too"
            )
        return None

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        a = data.arrays
        if not a.has("clean", "features"):
            raise RobustlensError(
                f"clustering: no stored penultimate features of model {data.model.name!r} on "
                f"dataset {data.name!r} (the clean logits were cached by a run that did not ask "
                "for features). Run the study with the clustering measure on a fresh store, "
                "or delete that model's cached clean view of this dataset"
            )
        labelled = is_labelled(data.info.role)
        fc = kmeans_clusters(
            a.features("clean"),
            a.labels() if labelled else None,
            # without labels, k = the classes a labelled sample of this size would hold
            n_clusters=None if labelled else self._unlabeled_k(data),
            seed=self.seed,
            max_samples=self.max_samples,
            n_init=self.n_init,
            min_per_class=self.min_per_class,
        )
        for key, value in partition_scores(fc).items():
            out.values[(data.name, key)] = float(value)
        ids = np.asarray(a.sample_ids())[fc.sample.indices]
        out.artifacts.setdefault("samples", {})[data.name] = _sample_record(fc, ids, data.info)
        if data.info.role == "id" and "projection" not in out.artifacts:
            out.artifacts["projection"] = self._projection(fc, ids, data.name)

    def _unlabeled_k(self, data: DatasetContext) -> int:
        """k on an unlabelled dataset: the model's classes (in the dataset's class space),
        at most ``min(n, max_samples) // min_per_class`` and at least 2, as on labelled sets."""
        n = min(len(data.arrays.sample_ids()), self.max_samples)
        return max(2, min(data.mapping.n_classes, n // self.min_per_class))

    def _projection(self, fc: FeatureClusters, ids: np.ndarray, dataset: str) -> dict[str, Any]:
        """PCA scatter of the clustered rows with the indicators' own k-means partition."""
        x = fc.features
        xy, ratio = pca_projection(x)
        keep = np.arange(len(x))
        if len(keep) > PROJECTION_POINTS:
            keep = np.sort(
                np.random.default_rng(self.seed + 1).choice(
                    len(x), size=PROJECTION_POINTS, replace=False
                )
            )
        labels = fc.labels if fc.labels is not None else np.full(len(x), -1)
        return {
            "dataset": dataset,
            "x": np.round(xy[keep, 0], 4).tolist(),
            "y": np.round(xy[keep, 1], 4).tolist(),
            "cluster": fc.clusters[keep].astype(int).tolist(),
            "label": labels[keep].astype(int).tolist(),
            "rows": ids[keep].astype(int).tolist(),
            "explained_variance": [float(r) for r in ratio],
            "n_clustered": len(x),
        }


def _option_int(name: str, value: Any, minimum: int, hint: str = "") -> int:
    """An integer option of at least ``minimum``; a ConfigError names the option."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(
            f"clustering: option {name} must be an integer >= {minimum}{hint}, got {value!r}"
        )
    return int(value)


def _sample_record(fc: FeatureClusters, ids: np.ndarray, info: DatasetInfo) -> dict[str, Any]:
    """What was clustered on one dataset: sizes, the classes kept and the sample ids."""
    s = fc.sample
    classes = [] if s.classes is None else [int(c) for c in s.classes]
    return {
        "n_samples": s.n_samples,
        "n_clusters": fc.n_clusters,
        "n_classes_sampled": s.n_classes_sampled,
        "n_classes_total": s.n_classes_total,
        "n_rows_total": s.n_rows_total,
        "classes": classes,
        "class_names": [info.classes[c] if 0 <= c < len(info.classes) else str(c) for c in classes],
        "rows": ids.astype(int).tolist(),
    }
