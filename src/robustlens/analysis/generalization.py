"""Seed 002's four generalization dimensions per model, and their correlation with biases.

Reference: P. Gavrikov et al., "Can Biases in ImageNet Models Explain Generalization?",
CVPR 2024. Each model gets one number per dimension, computed from the study's long results
frame (columns model, dataset, measure, name, value):

* ``in_distribution``: mean clean accuracy over the datasets of role ``id`` and ``v2``
  (ImageNet val and V2; the synthetic world's val and v2);
* ``robustness``: mean clean accuracy over every ``corrupt`` dataset (all corruption types and
  severities, each dataset weighted equally);
* ``concepts``: mean of three components, each first averaged over its datasets: sketch
  accuracy, rendition accuracy and the cue-conflict ``shape_fraction`` (the fraction of
  cue-conflict images classified as their shape);
* ``adversarial``: PGD robust accuracy (``pgd_accuracy`` of the ``biases`` measure).

A dimension is the mean of the components present in the results; a component with no data
is left out, and a dimension with no component at all is NaN. Which datasets and values went
into each dimension is recorded in ``table.attrs["components"]``.

Accuracies are those of the ``accuracy`` measure (name ``accuracy``); biases and
``shape_fraction`` / ``pgd_accuracy`` those of the ``biases`` measure.

Dataset roles are given as a mapping (``{name: role}``, or ``{name: {"role": role, ...}}`` as in
the report context and a study's recorded datasets); a dataset the mapping does not name gets
the role :func:`robustlens.roles.role_from_name` infers from its name (``world/val`` -> id,
``world/corrupt/<type>/<severity>`` -> corrupt, ``imagenet_r`` -> rendition, ...; anything
unknown -> other). See :func:`robustlens.roles.dataset_roles`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import Method, correlation_table
from robustlens.errors import ValidationError
from robustlens.roles import dataset_roles

__all__ = [
    "BIASES",
    "DIMENSIONS",
    "bias_generalization_matrix",
    "bias_table",
    "generalization_table",
]

DIMENSIONS: tuple[str, ...] = ("in_distribution", "robustness", "concepts", "adversarial")
BIASES: tuple[str, ...] = (
    "shape_bias",
    "low_freq_bias",
    "high_freq_bias",
    "cb_bandwidth_octaves",
    "cb_center_cpi",
    "cb_peak_sensitivity",
)
_COLUMNS = ("model", "dataset", "measure", "name", "value")


def _check_results(results: Any) -> pd.DataFrame:
    if not isinstance(results, pd.DataFrame):
        raise ValidationError(
            f"results: expected the long results DataFrame, got {type(results).__name__}"
        )
    missing = [c for c in _COLUMNS if c not in results.columns]
    if missing:
        raise ValidationError(
            f"results: expected columns {list(_COLUMNS)}, missing {missing}; pass "
            "Store.results() or StudyResult.results()"
        )
    return results


def _per_model(results: pd.DataFrame, measure: str, name: str) -> pd.DataFrame:
    """model x dataset table of one value (first value if duplicated)."""
    df = results[(results["measure"] == measure) & (results["name"] == name)]
    if df.empty:
        return pd.DataFrame()
    return df.pivot_table(
        index="model", columns="dataset", values="value", aggfunc="first", dropna=False
    ).astype(np.float64)


def _models(results: pd.DataFrame) -> pd.Index:
    return pd.Index(sorted(results["model"].dropna().unique()), name="model")


def generalization_table(
    results: pd.DataFrame,
    roles: Mapping[str, Any] | None = None,
    *,
    accuracy_measure: str = "accuracy",
    bias_measure: str = "biases",
) -> pd.DataFrame:
    """The four generalization dimensions of seed 002, one row per model.

    ``in_distribution = mean(acc on id and v2 datasets)``; ``robustness = mean(acc on corrupt
    datasets)``; ``concepts = mean(sketch acc, rendition acc, cue-conflict shape_fraction)``
    (each component first averaged over its datasets); ``adversarial = pgd_accuracy``.
    Missing components are left out of a dimension's mean (NaN when none is present); NaN
    values (e.g. a model without a result) are skipped.

    Reference: Gavrikov et al., CVPR 2024 (Sec. 3, generalization dimensions).

    Args:
        results: long results frame (model, dataset, measure, name, value).
        roles: dataset roles (see :func:`robustlens.roles.dataset_roles`); inferred from the
            names by default.
        accuracy_measure: the measure whose ``accuracy`` values are used.
        bias_measure: the measure holding ``shape_fraction`` and ``pgd_accuracy``.

    Returns:
        DataFrame indexed by model with columns :data:`DIMENSIONS`;
        ``attrs["components"]`` maps each dimension to the ``"dataset:name"`` values used.

    Example:
        >>> rows = [("m", "world/val", "accuracy", "accuracy", 0.9),
        ...         ("m", "world/v2", "accuracy", "accuracy", 0.7),
        ...         ("m", "world/corrupt/fog/1", "accuracy", "accuracy", 0.6),
        ...         ("m", "world/sketch", "accuracy", "accuracy", 0.5),
        ...         ("m", "world/cue_conflict", "biases", "shape_fraction", 0.2),
        ...         ("m", "world/adversarial", "biases", "pgd_accuracy", 0.3)]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> generalization_table(df).round(3).to_dict("records")
        [{'in_distribution': 0.8, 'robustness': 0.6, 'concepts': 0.35, 'adversarial': 0.3}]
    """
    results = _check_results(results)
    models = _models(results)
    role_of = dataset_roles(sorted(results["dataset"].dropna().unique()), roles)
    acc = _per_model(results, accuracy_measure, "accuracy").reindex(models)

    def mean_over(table: pd.DataFrame, wanted: set[str], tag: str) -> tuple[pd.Series, list]:
        cols = [c for c in table.columns if role_of.get(c) in wanted]
        if not cols:
            return pd.Series(np.nan, index=models), []
        return table[cols].mean(axis=1, skipna=True), [f"{c}:{tag}" for c in cols]

    out = pd.DataFrame(index=models, columns=list(DIMENSIONS), dtype=np.float64)
    components: dict[str, list[str]] = {}
    out["in_distribution"], components["in_distribution"] = mean_over(acc, {"id", "v2"}, "accuracy")
    out["robustness"], components["robustness"] = mean_over(acc, {"corrupt"}, "accuracy")

    shape_frac = _per_model(results, bias_measure, "shape_fraction").reindex(models)
    parts = [
        mean_over(acc, {"sketch"}, "accuracy"),
        mean_over(acc, {"rendition"}, "accuracy"),
        mean_over(shape_frac, {"cue_conflict"}, "shape_fraction"),
    ]
    present = [s for s, used in parts if used]
    out["concepts"] = (
        pd.concat(present, axis=1).mean(axis=1, skipna=True)
        if present
        else pd.Series(np.nan, index=models)
    )
    components["concepts"] = [c for _, used in parts for c in used]

    pgd = _per_model(results, bias_measure, "pgd_accuracy").reindex(models)
    out["adversarial"] = (
        pgd.mean(axis=1, skipna=True) if pgd.shape[1] else pd.Series(np.nan, index=models)
    )
    components["adversarial"] = [f"{c}:pgd_accuracy" for c in pgd.columns]
    out.attrs["components"] = components
    return out


def bias_table(
    results: pd.DataFrame, biases: Sequence[str] = BIASES, *, measure: str = "biases"
) -> pd.DataFrame:
    """One row per model, one column per bias (mean over the datasets that report it).

    NaN values (a failed critical-band fit) are skipped in the mean; a model whose every value
    of a bias is NaN gets NaN. A bias absent from the results is an all-NaN column.

    Args:
        results: long results frame.
        biases: value names of the ``biases`` measure (default :data:`BIASES`).
        measure: the measure name.

    Returns:
        DataFrame indexed by model with one column per bias.

    Example:
        >>> df = pd.DataFrame([("m", "world/val", "biases", "low_freq_bias", 0.8)],
        ...                   columns=["model", "dataset", "measure", "name", "value"])
        >>> bias_table(df, ["low_freq_bias", "shape_bias"]).to_dict("records")
        [{'low_freq_bias': 0.8, 'shape_bias': nan}]
    """
    results = _check_results(results)
    if isinstance(biases, str):
        raise ValidationError(f"biases: expected a list of names, got the string {biases!r}")
    models = _models(results)
    out = pd.DataFrame(index=models, columns=list(biases), dtype=np.float64)
    for b in biases:
        t = _per_model(results, measure, b)
        if t.shape[1]:
            out[b] = t.reindex(models).mean(axis=1, skipna=True)
    return out


def bias_generalization_matrix(
    results: pd.DataFrame,
    roles: Mapping[str, Any] | None = None,
    biases: Sequence[str] = BIASES,
    dimensions: Sequence[str] = DIMENSIONS,
    method: Method = "spearman",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation across models of every bias with every generalization dimension.

    Rows of the correlated table are models (:func:`bias_table` joined with
    :func:`generalization_table`); each (bias, dimension) pair is computed by
    :func:`robustlens.analysis.correlation.correlate` on the models where both are finite
    (``n`` says how many). ``shown`` is the coefficient where ``p < alpha`` and 0 elsewhere
    (seed 002's heatmap convention); ``coefficient`` keeps the true value.

    Reference: Gavrikov et al., CVPR 2024 (Fig. 1: Spearman correlations, non-significant
    cells shown as 0).

    Args:
        results: long results frame.
        roles: dataset roles (see :func:`robustlens.roles.dataset_roles`).
        biases: bias value names (rows, ``x``).
        dimensions: dimensions (columns, ``y``), a subset of :data:`DIMENSIONS`.
        method: ``"spearman"`` (default, as the paper), ``"pearson"`` or ``"kendall"``.
        alpha: significance level.
        n_boot: bootstrap resamples for the confidence intervals.
        seed: bootstrap seed.

    Returns:
        Long DataFrame: x, y, coefficient, p_value, ci_low, ci_high, n, significant, shown,
        method (see :func:`robustlens.analysis.correlation.correlation_table`).

    Example:
        >>> rows = []
        >>> for i, m in enumerate("abcde"):
        ...     rows += [(m, "world/val", "accuracy", "accuracy", 0.5 + 0.1 * i),
        ...              (m, "world/val", "biases", "low_freq_bias", 0.1 * i)]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> t = bias_generalization_matrix(df, biases=["low_freq_bias"],
        ...                                dimensions=["in_distribution"], n_boot=0)
        >>> t[["x", "y", "n", "significant"]].to_dict("records")
        [{'x': 'low_freq_bias', 'y': 'in_distribution', 'n': 5, 'significant': True}]
        >>> round(float(t["coefficient"].iloc[0]), 6), round(float(t["shown"].iloc[0]), 6)
        (1.0, 1.0)
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or isinstance(dimensions, str):
        raise ValidationError(
            f"dimensions: expected a list drawn from {list(DIMENSIONS)}, got {dimensions!r}"
        )
    bt = bias_table(results, biases)
    gt = generalization_table(results, roles)
    df = bt.join(gt[list(dimensions)], how="outer")
    return correlation_table(
        df, list(biases), list(dimensions), method=method, alpha=alpha, n_boot=n_boot, seed=seed
    )
