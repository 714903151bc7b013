"""Clustering-based robustness indicators from the stored penultimate features.

Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
Adversarial Machine Learning and Beyond (arXiv:2106.12303).

The measure asks the engine to keep the penultimate features of the clean view; the indicators
are computed by :func:`robustlens.metrics.clustering.cluster_indicators` from those stored
features, so computing them runs no forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from robustlens.errors import ConfigError, RobustlensError
from robustlens.measure import DatasetContext, DatasetInfo, Measure, MeasureOutput
from robustlens.metrics.clustering import _l2_normalize, cluster_indicators

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
    ``purity``, ``cluster_accuracy`` — plus ``n_samples`` (rows clustered after the
    reproducible subsampling) and ``n_clusters`` (k = number of distinct labels).

    Artifact (``id`` dataset only): a 2-D PCA projection of at most 500 of the clustered,
    L2-normalised features with their k-means cluster (the same k-means settings as the
    indicators: subsample, seed, ``n_init``) and their true label, for the report's plot.

    Args:
        datasets: ``"id"`` (default: the clean validation split, as in the paper) or ``"all"``
            (every dataset except the ``train`` and ``adversarial`` roles).
        max_samples: at most this many feature rows are clustered per dataset (drawn with
            ``numpy.random.default_rng(seed)``), so cost stays bounded on 50k-image sets.
        seed: seed of the subsampling and of k-means.
        n_init: k-means restarts (scikit-learn ``KMeans``, k-means++ init; best inertia kept).
    """

    name = "clustering"
    description = "k-means clustering indicators of clean penultimate features"
    paper = (
        "Ho, Pfreundt, Keuper, Keuper, Estimating the Robustness of Classification "
        "Models by the Structure of the Learned Feature-Space, AAAI-22 AdvML workshop"
    )

    def __init__(
        self, datasets: str = "id", max_samples: int = 2000, seed: int = 0, n_init: int = 3
    ) -> None:
        if datasets not in ("id", "all"):
            raise ConfigError(
                f"clustering: option datasets must be 'id' or 'all', got {datasets!r}"
            )
        self.datasets = datasets
        self.max_samples = int(max_samples)
        self.seed = int(seed)
        self.n_init = int(n_init)

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        if self.datasets == "id":
            return {"clean": True} if dataset.role == "id" else {}
        return {} if dataset.role in _ALL_EXCLUDED else {"clean": True}

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        a = data.arrays
        if not a.has("clean", "features"):
            raise RobustlensError(
                f"clustering: no stored penultimate features of model {data.model.name!r} on "
                f"dataset {data.name!r} (the clean logits were cached by a run that did not ask "
                "for features). Run the study with the clustering measure on a fresh store, "
                "or delete that model's cached clean view of this dataset"
            )
        feats, labels = a.features("clean"), a.labels()
        ind = cluster_indicators(
            feats, labels, seed=self.seed, max_samples=self.max_samples, n_init=self.n_init
        )
        for key, value in ind.items():
            out.values[(data.name, key)] = float(value)
        if data.info.role == "id" and "projection" not in out.artifacts:
            out.artifacts["projection"] = self._projection(feats, labels, ind, data.name)

    def _projection(
        self, feats: np.ndarray, labels: np.ndarray, ind: Mapping[str, Any], dataset: str
    ) -> dict[str, Any]:
        """PCA scatter of the clustered rows with the indicators' k-means assignment."""
        x = np.asarray(feats, dtype=np.float64)
        y = np.asarray(labels)
        if len(x) > self.max_samples:  # the subsample cluster_indicators draws
            rng = np.random.default_rng(self.seed)
            idx = np.sort(rng.choice(len(x), size=self.max_samples, replace=False))
            x, y = x[idx], y[idx]
        x = _l2_normalize(x)
        clusters = KMeans(
            n_clusters=int(ind["n_clusters"]), n_init=self.n_init, random_state=self.seed
        ).fit_predict(x)
        xy, ratio = pca_projection(x)
        keep = np.arange(len(x))
        if len(keep) > PROJECTION_POINTS:
            keep = np.sort(
                np.random.default_rng(self.seed + 1).choice(
                    len(x), size=PROJECTION_POINTS, replace=False
                )
            )
        return {
            "dataset": dataset,
            "x": np.round(xy[keep, 0], 4).tolist(),
            "y": np.round(xy[keep, 1], 4).tolist(),
            "cluster": clusters[keep].astype(int).tolist(),
            "label": y[keep].astype(int).tolist(),
            "explained_variance": [float(r) for r in ratio],
            "n_clustered": len(x),
        }
