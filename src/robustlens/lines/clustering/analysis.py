"""Do clustering indicators of clean features predict robustness? Correlations across models.

Reference: K. Ho, F.-J. Pfreundt, J. Keuper, M. Keuper, "Estimating the Robustness of
Classification Models by the Structure of the Learned Feature-Space", AAAI-22 Workshop on
Adversarial Machine Learning and Beyond (arXiv:2106.12303): indicators computed by k-means on
the clean validation features correlate with accuracy on corrupted data.

Reads the long results table (``store.results()``); dataset roles come from a ``roles``
mapping or, for names it lacks, from the names (:func:`robustlens.roles.dataset_roles`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import correlation_table
from robustlens.errors import ValidationError
from robustlens.roles import dataset_roles

__all__ = [
    "CORRUPT_MEAN",
    "HIGHER_IS_BETTER",
    "INDICATORS",
    "INDICATOR_LABELS",
    "LABEL_FREE_INDICATORS",
    "SAMPLE_COLUMNS",
    "TARGET",
    "indicator_correlations",
    "indicator_table",
    "strongest_label_free_indicator",
]

#: ``"measure.name"`` of the accuracy the indicators are correlated with
TARGET = "accuracy.accuracy"
#: the target column of the mean accuracy over every corrupt dataset
CORRUPT_MEAN = "corrupt (mean)"
#: label-free internal indices of the k-means partition
LABEL_FREE_INDICATORS = ("silhouette", "davies_bouldin", "calinski_harabasz")
#: every indicator the clustering measure reports (label-free first, then label-based)
INDICATORS = (*LABEL_FREE_INDICATORS, "nmi", "ari", "purity", "cluster_accuracy")
#: the clustered sample, shown next to the indicators (rows clustered, k)
SAMPLE_COLUMNS = ("n_samples", "n_clusters")
#: the direction in which an indicator means "better clustered"
HIGHER_IS_BETTER = {i: i != "davies_bouldin" for i in INDICATORS}
#: short column headers of the indicator table, for tables
INDICATOR_LABELS = {
    "silhouette": "silhouette ↑",
    "davies_bouldin": "Davies-Bouldin ↓",
    "calinski_harabasz": "Calinski-H. ↑",
    "nmi": "NMI",
    "ari": "ARI",
    "purity": "purity",
    "cluster_accuracy": "cluster acc",
    "n_samples": "n",
    "n_clusters": "k",
    "id": "acc id",
    CORRUPT_MEAN: "acc corrupt",
    "sketch": "acc sketch",
    "rendition": "acc rendition",
}
#: accuracy targets: column name -> roles averaged into it
_TARGETS = {CORRUPT_MEAN: ("corrupt",), "sketch": ("sketch",), "rendition": ("rendition",)}


def indicator_table(
    results: pd.DataFrame,
    source_dataset: str | None = None,
    roles: Mapping[str, Any] | None = None,
    target: str = TARGET,
) -> pd.DataFrame:
    """One row per model: its clustering indicators on the clean source set and its accuracies.

    Columns: the indicators of :data:`INDICATORS` that are present (values on
    ``source_dataset``, by default the dataset with role ``id``), ``n_samples`` and
    ``n_clusters`` (the clustered sample: rows and k) where present, then
    ``id`` (accuracy on the source set), ``corrupt (mean)`` (mean accuracy over every corrupt
    dataset, types x severities), ``sketch`` and ``rendition`` (mean over the datasets of that
    role), where present.

    Args:
        results: long results table (model, dataset, measure, name, value).
        source_dataset: dataset the indicators were computed on (default: the ``id`` one).
        roles: ``{dataset: role}`` (or a study's ``{dataset: {"role": ...}}``) overriding the
            inference from names.
        target: ``"measure.name"`` of the accuracy.

    Returns:
        DataFrame indexed by model.
    """
    if not isinstance(results, pd.DataFrame) or "measure" not in results:
        raise ValidationError("results: expected the long DataFrame of store.results()")
    r = dataset_roles(results["dataset"].unique(), roles)
    if source_dataset is None:
        ids = [d for d in r if r[d] == "id"]
        if not ids:
            raise ValidationError(
                "no dataset with role 'id' in the results; pass source_dataset (the dataset "
                "the clustering indicators were computed on) or roles"
            )
        source_dataset = ids[0]
    cl = results[(results["measure"] == "clustering") & (results["dataset"] == source_dataset)]
    if cl.empty:
        raise ValidationError(
            f"no clustering results on {source_dataset!r}; run the study with the 'clustering' "
            "measure"
        )
    table = cl.pivot_table(index="model", columns="name", values="value", aggfunc="first")
    cols = [c for c in (*INDICATORS, *SAMPLE_COLUMNS) if c in table.columns]
    table = table[cols]
    measure, name = target.split(".", 1)
    acc = results[(results["measure"] == measure) & (results["name"] == name)]
    acc = acc.pivot_table(index="model", columns="dataset", values="value", aggfunc="first")
    if source_dataset in acc.columns:
        table["id"] = acc[source_dataset].reindex(table.index)
    for col, target_roles in _TARGETS.items():
        members = [d for d in acc.columns if r.get(d) in target_roles]
        if members:
            table[col] = acc[members].mean(axis=1).reindex(table.index)
    table.index.name = "model"
    return table


def indicator_correlations(
    results: pd.DataFrame,
    indicators: Sequence[str] = INDICATORS,
    targets: Sequence[str] = tuple(_TARGETS),
    source_dataset: str | None = None,
    roles: Mapping[str, Any] | None = None,
    method: str = "spearman",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Across models: correlation of each clean-data indicator with robustness targets.

    Targets: mean accuracy over the corrupted sets (``corrupt (mean)``), and accuracy on the
    ``sketch`` and ``rendition`` sets (where present), from :func:`indicator_table`; each pair
    is computed with :func:`~robustlens.analysis.correlation.correlation_table` (coefficient,
    two-sided p-value, bootstrap CI at level ``1 - alpha``).

    Args:
        results: long results table.
        indicators: indicator names (``silhouette``, ``nmi`` ...); absent ones are left out.
        targets: target columns of :func:`indicator_table` to correlate with.
        source_dataset, roles: as in :func:`indicator_table`.
        method: ``"spearman"`` (default), ``"pearson"`` or ``"kendall"``.
        alpha, n_boot, seed: significance level, bootstrap resamples, bootstrap seed.

    Returns:
        Long DataFrame with columns indicator, target, label_free (bool), higher_is_better
        (bool), coefficient, p_value, ci_low, ci_high, n, significant, shown, method.

    Example:
        >>> rows = [(m, "world/val", "clustering", "silhouette", v)
        ...         for m, v in zip("abcd", [0.1, 0.2, 0.3, 0.4])]
        >>> rows += [(m, "world/corrupt/x/1", "accuracy", "accuracy", v)
        ...          for m, v in zip("abcd", [0.5, 0.7, 0.6, 0.9])]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> t = indicator_correlations(df, n_boot=0)
        >>> t["indicator"].tolist(), t["target"].tolist(), t["coefficient"].round(4).tolist()
        (['silhouette'], ['corrupt (mean)'], [0.8])
    """
    table = indicator_table(results, source_dataset, roles)
    xs = [i for i in indicators if i in table.columns and table[i].notna().any()]
    ys = [t for t in targets if t in table.columns]
    if not xs:
        raise ValidationError(f"results hold none of the indicators {list(indicators)}")
    if not ys:
        raise ValidationError(
            f"results hold no accuracy on any of the targets {list(targets)} (corrupt, sketch "
            "or rendition datasets); run the accuracy measure on them"
        )
    t = correlation_table(
        table.reset_index(), xs, ys, method=method, alpha=alpha, n_boot=n_boot, seed=seed
    )
    t = t.rename(columns={"x": "indicator", "y": "target"})
    t.insert(2, "label_free", t["indicator"].isin(LABEL_FREE_INDICATORS))
    t.insert(3, "higher_is_better", t["indicator"].map(HIGHER_IS_BETTER).fillna(True))
    return t


def strongest_label_free_indicator(
    correlations: pd.DataFrame, target: str = CORRUPT_MEAN, **kwargs: Any
) -> dict[str, Any]:
    """The label-free indicator whose correlation with ``target`` is largest in magnitude.

    Magnitude decides (Davies-Bouldin, where lower is better, is expected to correlate
    negatively); ``expected_sign`` says whether the sign agrees with the indicator's direction
    (positive for "higher is better"). Label-based indicators (NMI, ARI ...) are never chosen.

    Args:
        correlations: the output of :func:`indicator_correlations`, or a long results table
            (then ``indicator_correlations(correlations, **kwargs)`` is computed first).
        target: the target column, ``"corrupt (mean)"`` by default.
        **kwargs: passed to :func:`indicator_correlations` when given a results table.

    Returns:
        Dict with indicator, target, coefficient, p_value, ci_low, ci_high, n, significant,
        expected_sign.

    Example:
        >>> t = pd.DataFrame({"indicator": ["silhouette", "davies_bouldin", "nmi"],
        ...                   "target": "corrupt (mean)", "label_free": [True, True, False],
        ...                   "higher_is_better": [True, False, True],
        ...                   "coefficient": [0.5, -0.8, 0.95], "p_value": [0.2, 0.01, 0.0],
        ...                   "ci_low": 0.0, "ci_high": 0.0, "n": 6,
        ...                   "significant": [False, True, True]})
        >>> best = strongest_label_free_indicator(t)
        >>> best["indicator"], best["coefficient"], best["expected_sign"]
        ('davies_bouldin', -0.8, True)
    """
    if "indicator" not in correlations.columns:
        correlations = indicator_correlations(correlations, **kwargs)
    t = correlations[(correlations["target"] == target) & correlations["label_free"]]
    t = t[np.isfinite(t["coefficient"].astype(float))]
    if t.empty:
        raise ValidationError(
            f"no finite correlation of a label-free indicator with {target!r}; targets present: "
            f"{sorted(correlations['target'].unique())}"
        )
    row = t.loc[t["coefficient"].abs().idxmax()]
    sign = 1.0 if bool(row["higher_is_better"]) else -1.0
    return {
        "indicator": str(row["indicator"]),
        "target": target,
        "coefficient": float(row["coefficient"]),
        "p_value": float(row["p_value"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "n": int(row["n"]),
        "significant": bool(row["significant"]),
        "expected_sign": bool(sign * float(row["coefficient"]) > 0),
    }
