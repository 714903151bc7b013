"""Sensitivity of the clustering indicators to the number of rows clustered (issue 16, item 5).

Computes silhouette, Davies-Bouldin and Calinski-Harabasz of one feature set at sample sizes
200, 500, 1000, 2000, 5000 under two sampling protocols:

- old: rows drawn uniformly, k = number of classes of the full label set (the protocol before
  issue 16: 100 clusters on 200 points);
- new: :func:`robustlens.metrics.clustering.sample_rows`, stratified by class with at least
  ``min_per_class`` rows per class kept (a random subset of classes when they do not all fit),
  k = number of classes present in the sample.

The features are a synthetic Gaussian mixture (100 classes x 60 rows in 64 dimensions, class
means on the unit sphere, within-class noise 0.12 per dimension, so that classes overlap like
a mid-accuracy model's), or ``--features file.npz`` with arrays ``features`` and ``labels``
(e.g. the stored penultimate features of a real model). Each cell is the mean over ``--seeds``
seeds of the sample and of k-means.

Usage: python bench/clustering_sample_size.py [--features f.npz] [--seeds 3]
       python bench/clustering_sample_size.py --classes 1000 --per-class 50  (ImageNet-like)
Old cells are n/a where k >= n (the old code refused them). Prints the table, then the headline
last: ``ratio: X.XX`` = spread (max - min over the sizes the old protocol could run)
of Davies-Bouldin with the new sampling / the same spread with the old one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robustlens.metrics.clustering import cluster_indicators

SIZES = (200, 500, 1000, 2000, 5000)
SCORES = ("silhouette", "davies_bouldin", "calinski_harabasz")
SHORT = {
    "silhouette": "silhouette",
    "davies_bouldin": "Davies-B.",
    "calinski_harabasz": "Calinski-H.",
}


def gaussian_mixture(
    n_classes: int = 100, per_class: int = 60, dim: int = 64, noise: float = 0.12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Class means on the unit sphere plus isotropic Gaussian noise."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, dim))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_classes), per_class)
    feats = means[labels] + rng.normal(scale=noise, size=(labels.size, dim))
    return feats, labels


def old_protocol(feats: np.ndarray, labels: np.ndarray, n: int, seed: int) -> dict:
    """Before issue 16: a uniform draw, k = classes of the full label set (NaN when k >= n:
    the old code refused those sizes)."""
    k = int(np.unique(labels).size)
    if k >= n:
        return {"n_clusters": float(k), **dict.fromkeys(SCORES, float("nan"))}
    idx = np.sort(np.random.default_rng(seed).choice(len(labels), size=n, replace=False))
    return cluster_indicators(feats[idx], labels[idx], n_clusters=k, seed=seed, max_samples=n)


def new_protocol(feats: np.ndarray, labels: np.ndarray, n: int, seed: int, mpc: int) -> dict:
    return cluster_indicators(feats, labels, seed=seed, max_samples=n, min_per_class=mpc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", help="npz with 'features' (N, D) and 'labels' (N,)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--min-per-class", type=int, default=5)
    ap.add_argument("--classes", type=int, default=100, help="classes of the mixture")
    ap.add_argument("--per-class", type=int, default=60, help="rows per class of the mixture")
    args = ap.parse_args()
    if args.features:
        data = np.load(args.features)
        feats, labels = np.asarray(data["features"], float), np.asarray(data["labels"])
        source = args.features
    else:
        feats, labels = gaussian_mixture(args.classes, args.per_class)
        source = f"Gaussian mixture, {args.classes} classes x {args.per_class} rows, 64-D"
    sizes = [n for n in SIZES if n < len(labels)]
    print(
        f"features: {source}; {len(labels)} rows, {np.unique(labels).size} classes; "
        f"mean of {args.seeds} seeds; min_per_class = {args.min_per_class}"
    )
    t0 = time.perf_counter()
    table: dict[str, dict[int, dict[str, float]]] = {"old": {}, "new": {}}
    for n in sizes:
        for proto in ("old", "new"):
            runs = [
                old_protocol(feats, labels, n, s)
                if proto == "old"
                else new_protocol(feats, labels, n, s, args.min_per_class)
                for s in range(args.seeds)
            ]
            table[proto][n] = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
    header = f"{'n':>5} | {'k old':>5} {'k new':>5} | " + " | ".join(
        f"{SHORT[s] + ' old':>16} {SHORT[s] + ' new':>16}" for s in SCORES
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        o, w = table["old"][n], table["new"][n]
        cells = " | ".join(f"{o[s]:>16.3f} {w[s]:>16.3f}" for s in SCORES)
        print(f"{n:>5} | {o['n_clusters']:>5.0f} {w['n_clusters']:>5.0f} | {cells}")
    # spreads over the sizes both protocols ran (the old one refuses k >= n)
    both = [n for n in sizes if np.isfinite(table["old"][n]["davies_bouldin"])]
    spreads = {}
    for s in SCORES:
        for proto in ("old", "new"):
            vals = [table[proto][n][s] for n in both]
            spreads[(s, proto)] = max(vals) - min(vals)
        print(
            f"spread (max - min over n = {', '.join(map(str, both))}) of {s}: "
            f"old {spreads[(s, 'old')]:.3f}, new {spreads[(s, 'new')]:.3f}"
        )
    print(f"time: {time.perf_counter() - t0:.1f} s")
    ratio = spreads[("davies_bouldin", "new")] / spreads[("davies_bouldin", "old")]
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
