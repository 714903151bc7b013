"""Spurious features across models: does the spurious score rank models by true reliance?

On the synthetic world the ground truth is known: a zoo model's training data carried the
spurious mark of each class at rate ``train_mark_rate``. The spurious score (Neuhaus et al.,
"Spurious Features Everywhere", ICCV 2023; HIGH = less spurious) should then fall, and
``spurious_reliance = 1 - score`` rise, with the mark rate. :func:`score_vs_ground_truth`
measures that with Spearman's rank correlation across models; :func:`spufix_effect` tabulates
what SpuFix does to each model.

Inputs are the long results table (``model, dataset, measure, name, value``) that
``Store.results()`` / ``StudyResult.results()`` return; numbers of the ``spurious`` measure
are averaged over datasets per model (one spurious dataset is the usual case).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import correlate
from robustlens.errors import ValidationError

__all__ = [
    "GROUND_TRUTH",
    "SCORE_METRICS",
    "most_spurious_model",
    "score_vs_ground_truth",
    "spufix_effect",
    "spurious_table",
]

MEASURE = "spurious"
GROUND_TRUTH = "train_mark_rate"
#: metrics correlated with the ground truth (score: expected negative; the others positive)
SCORE_METRICS = ("spurious_score", "spurious_reliance", "spurious_trigger_rate")
_TABLE_COLUMNS = (
    GROUND_TRUTH,
    *SCORE_METRICS,
    "n_flagged",
    "n_classes_flagged",
    "spufix_id_accuracy_before",
    "spufix_id_accuracy_after",
    "spufix_spurious_trigger_before",
    "spufix_spurious_trigger_after",
    "spufix_spurious_score_before",
    "spufix_spurious_score_after",
    "spufix_n_evaluation",
)


def _long(results: Any) -> pd.DataFrame:
    if hasattr(results, "results") and callable(results.results):
        results = results.results()
    if not isinstance(results, pd.DataFrame):
        raise ValidationError(
            f"results: expected the long results DataFrame (or a StudyResult), got "
            f"{type(results).__name__}"
        )
    missing = [c for c in ("model", "measure", "name", "value") if c not in results.columns]
    if missing:
        raise ValidationError(
            f"results: columns {missing} are missing; expected model, dataset, measure, name, value"
        )
    return results


def spurious_table(results: Any) -> pd.DataFrame:
    """One row per model with the spurious measure's numbers (mean over datasets).

    Columns (those present): ``train_mark_rate``, ``spurious_score``, ``spurious_reliance``,
    ``spurious_trigger_rate``, ``n_flagged``, ``n_classes_flagged``,
    ``spufix_id_accuracy_before/after``, ``spufix_spurious_trigger_before/after``,
    ``spufix_spurious_score_before/after`` (SpuFix's numbers are on the held-out evaluation
    part of the images, see :mod:`robustlens.lines.spurious.measure`),
    ``spufix_n_evaluation``. Models are sorted by spurious score, most spurious (lowest
    score) first.

    Example:
        >>> df = pd.DataFrame({"model": ["a", "a", "b"], "dataset": ["s", "*", "s"],
        ...                    "measure": "spurious", "value": [0.9, 0.0, 0.6],
        ...                    "name": ["spurious_score", "train_mark_rate", "spurious_score"]})
        >>> spurious_table(df)["spurious_score"].to_dict()
        {'b': 0.6, 'a': 0.9}
    """
    df = _long(results)
    df = df[df["measure"] == MEASURE]
    cols = list(_TABLE_COLUMNS)
    if df.empty:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="model"))
    wide = df.pivot_table(index="model", columns="name", values="value", aggfunc="mean")
    wide = wide[[c for c in cols if c in wide.columns]]
    wide.columns.name = None
    if "spurious_score" in wide.columns:
        wide = wide.sort_values("spurious_score", kind="stable")
    return wide


def score_vs_ground_truth(
    results: Any, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Spearman correlation across models of each spurious metric with ``train_mark_rate``.

    For each of ``spurious_score`` (HIGH = less spurious: expected rho < 0),
    ``spurious_reliance`` (``1 - score``: rho of the same size, sign flipped) and
    ``spurious_trigger_rate``: rho, two-sided p-value and percentile bootstrap CI from
    :func:`robustlens.analysis.correlation.correlate`, over the models that have both
    numbers (models without a known mark rate, e.g. non-zoo models, are left out; ``n``
    counts the models used). Fewer than 3 models give NaN.

    Args:
        results: long results DataFrame or a StudyResult.
        alpha: significance level (and CI level ``1 - alpha``).
        n_boot: bootstrap resamples (0: no CI).
        seed: bootstrap seed.

    Returns:
        DataFrame with columns metric, coefficient, p_value, ci_low, ci_high, n, significant.

    Example:
        >>> rows = []
        >>> for m, (rate, score) in enumerate([(0.0, 0.99), (0.4, 0.9), (0.8, 0.7), (1.0, 0.5)]):
        ...     rows += [(f"m{m}", "*", "spurious", "train_mark_rate", rate),
        ...              (f"m{m}", "s", "spurious", "spurious_score", score),
        ...              (f"m{m}", "s", "spurious", "spurious_reliance", 1 - score)]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> t = score_vs_ground_truth(df, n_boot=0)
        >>> t[["metric", "coefficient", "n"]].values.tolist()
        [['spurious_score', -1.0, 4], ['spurious_reliance', 1.0, 4]]
    """
    wide = spurious_table(results)
    columns = ["metric", "coefficient", "p_value", "ci_low", "ci_high", "n", "significant"]
    if GROUND_TRUTH not in wide.columns:
        return pd.DataFrame(columns=columns)
    truth = wide[GROUND_TRUTH].to_numpy(dtype=np.float64)
    rows = []
    for metric in SCORE_METRICS:
        if metric not in wide.columns:
            continue
        r = correlate(
            wide[metric].to_numpy(dtype=np.float64),
            truth,
            method="spearman",
            alpha=alpha,
            n_boot=n_boot,
            seed=seed,
        )
        rows.append([metric, r.coefficient, r.p_value, r.ci_low, r.ci_high, r.n, r.significant])
    return pd.DataFrame(rows, columns=columns)


def spufix_effect(results: Any) -> pd.DataFrame:
    """SpuFix before/after per model, most spurious model first.

    Columns: ``spurious_score`` (all images), ``n_flagged``, ``n_evaluation`` (spurious-only
    images in the held-out evaluation part), ``id_acc_before``, ``id_acc_after``,
    ``id_acc_change`` (after - before), ``trigger_before``, ``trigger_after``,
    ``trigger_change``, ``score_before`` and ``score_after`` (the spurious score from the
    model's / the corrected logits). Every before/after number is on the evaluation part: the
    components SpuFix removes were chosen on the disjoint selection part. A model whose
    SpuFix flagged nothing has zero changes. Columns whose numbers are missing (results of an
    older version) are NaN.

    Example:
        >>> names = ["spurious_score", "n_flagged", "spufix_id_accuracy_before",
        ...          "spufix_id_accuracy_after", "spufix_spurious_trigger_before",
        ...          "spufix_spurious_trigger_after", "spufix_spurious_score_after"]
        >>> df = pd.DataFrame({"model": "a", "dataset": "s", "measure": "spurious",
        ...                    "name": names, "value": [0.6, 2, 0.9, 0.88, 0.5, 0.1, 0.8]})
        >>> spufix_effect(df).loc["a", ["id_acc_change", "trigger_change"]].round(2).tolist()
        [-0.02, -0.4]
    """
    wide = spurious_table(results)
    rename = {
        "spufix_id_accuracy_before": "id_acc_before",
        "spufix_id_accuracy_after": "id_acc_after",
        "spufix_spurious_trigger_before": "trigger_before",
        "spufix_spurious_trigger_after": "trigger_after",
        "spufix_spurious_score_before": "score_before",
        "spufix_spurious_score_after": "score_after",
    }
    out = pd.DataFrame(index=wide.index)
    for src, dst in (
        ("spurious_score", "spurious_score"),
        ("n_flagged", "n_flagged"),
        ("spufix_n_evaluation", "n_evaluation"),
        *rename.items(),
    ):
        out[dst] = wide[src] if src in wide.columns else np.nan
    out["id_acc_change"] = out["id_acc_after"] - out["id_acc_before"]
    out["trigger_change"] = out["trigger_after"] - out["trigger_before"]
    order = [
        "spurious_score",
        "n_flagged",
        "n_evaluation",
        "id_acc_before",
        "id_acc_after",
        "id_acc_change",
        "trigger_before",
        "trigger_after",
        "trigger_change",
        "score_before",
        "score_after",
    ]
    return out[order]


def most_spurious_model(results: Any) -> str | None:
    """The model with the lowest spurious score (highest reliance), or None without scores.

    Example:
        >>> df = pd.DataFrame({"model": ["a", "b"], "dataset": "s", "measure": "spurious",
        ...                    "name": "spurious_score", "value": [0.9, 0.6]})
        >>> most_spurious_model(df)
        'b'
    """
    wide = spurious_table(results)
    if "spurious_score" not in wide.columns or wide["spurious_score"].notna().sum() == 0:
        return None
    return str(wide["spurious_score"].idxmin())
