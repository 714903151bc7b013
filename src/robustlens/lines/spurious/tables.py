"""The spurious line's tables, each built once: the report section renders them with
``Table.to_html()`` and ``robustlens spurious`` with ``Table.to_rich()``.

Each function takes the frame of :mod:`robustlens.lines.spurious.analysis` it shows, so the
caller computes the (bootstrapped) correlation once for the table and the scatter.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from robustlens.formatting import is_number, number, p_value
from robustlens.lines.spurious.analysis import GROUND_TRUTH
from robustlens.tables import Table

__all__ = ["correlation_table", "model_table", "spufix_table"]

#: spurious_table column -> header, in the order shown
_MODEL_COLUMNS = {
    GROUND_TRUTH: "train mark rate",
    "spurious_score": "score",
    "spurious_reliance": "reliance",
    "spurious_trigger_rate": "trigger rate",
    "n_flagged": "flagged components",
    "n_classes_flagged": "classes flagged",
}
_COUNTS = ("n_flagged", "n_classes_flagged", "n_evaluation")
_SPUFIX_COLUMNS = {
    "spurious_score": "score",
    "n_flagged": "flagged components",
    "n_evaluation": "held-out images",
    "id_acc_before": "clean acc before",
    "id_acc_after": "clean acc after",
    "id_acc_change": "clean acc change",
    "trigger_before": "trigger before",
    "trigger_after": "trigger after",
    "trigger_change": "trigger change",
    "score_before": "score before",
    "score_after": "score after",
}


def _count(v: Any) -> Any:
    """A whole count as an int (shown without decimals); a mean over datasets stays a float."""
    return int(v) if is_number(v) and float(v).is_integer() else v


def _rows(frame: pd.DataFrame, columns: dict[str, str]) -> tuple[list[str], list[list[Any]]]:
    cols = [c for c in columns if c in frame.columns]
    rows = [
        [str(model), *[_count(row[c]) if c in _COUNTS else row[c] for c in cols]]
        for model, row in frame.iterrows()
    ]
    return ["model", *[columns[c] for c in cols]], rows


def model_table(table: pd.DataFrame) -> Table:
    """Per model, most spurious first: the numbers of
    :func:`~robustlens.lines.spurious.analysis.spurious_table` (the columns it has).

    Example:
        >>> df = pd.DataFrame({"spurious_score": [0.6, 0.9], "n_flagged": [2.0, 0.5]},
        ...                   index=pd.Index(["b", "a"], name="model"))
        >>> t = model_table(df)
        >>> t.columns, t.cells()
        (['model', 'score', 'flagged components'], [['b', '0.600', '2'], ['a', '0.900', '0.500']])
    """
    columns, rows = _rows(table, _MODEL_COLUMNS)
    return Table(
        "Spurious features per model, most spurious first (score: AP, high = less spurious)",
        columns,
        rows,
        caption="reliance = 1 - score; trigger rate: spurious-only images predicted as the "
        "class whose spurious feature they show; means over the spurious datasets",
    )


def correlation_table(corr: pd.DataFrame) -> Table:
    """Spearman across models of each metric with the training mark rate, from
    :func:`~robustlens.lines.spurious.analysis.score_vs_ground_truth`.

    Example:
        >>> corr = pd.DataFrame([["spurious_score", -0.8, 0.0004, -1.0, -0.4, 6, True]],
        ...     columns=["metric", "coefficient", "p_value", "ci_low", "ci_high", "n",
        ...              "significant"])
        >>> correlation_table(corr).cells()
        [['spurious_score', '-0.800', '< 0.001', '[-1.00, -0.40]', '6']]
    """
    rows = [
        [
            str(r["metric"]),
            r["coefficient"],
            p_value(r["p_value"]),
            f"[{number(r['ci_low'], 2)}, {number(r['ci_high'], 2)}]",
            int(r["n"]),
        ]
        for _, r in corr.iterrows()
    ]
    return Table(
        "Score vs ground truth (training mark rate), Spearman across models",
        ["metric", "rho", "p", "95% CI", "n"],
        rows,
        caption="spurious_score is expected to fall with the mark rate (rho < 0), reliance "
        "and trigger rate to rise",
    )


def spufix_table(effect: pd.DataFrame) -> Table:
    """SpuFix before / after per model, most spurious first, from
    :func:`~robustlens.lines.spurious.analysis.spufix_effect`."""
    columns, rows = _rows(effect, _SPUFIX_COLUMNS)
    return Table(
        "SpuFix before / after, on held-out images",
        columns,
        rows,
        caption="components chosen on a selection part of each class's spurious-only and id "
        "images; every before / after number on the disjoint evaluation part (held-out "
        "images: its spurious-only images). clean acc: top-1 accuracy on the id dataset; "
        "score before / after: the spurious score from the model's / SpuFix-corrected "
        "logits; score (first column): all images",
    )
