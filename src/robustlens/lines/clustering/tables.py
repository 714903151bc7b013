"""Tables of the clustering line, built once for the report section and the terminal.

:func:`indicators_table` and :func:`correlations_table` turn the frames of
:mod:`robustlens.lines.clustering.analysis` into :class:`robustlens.tables.Table` objects; the
section renders them with ``to_html()`` and ``robustlens clustering`` with ``to_rich()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from robustlens.formatting import is_number, p_eq, signed
from robustlens.lines.clustering.analysis import INDICATOR_LABELS, SAMPLE_COLUMNS
from robustlens.tables import Table

__all__ = ["correlations_table", "indicators_table", "strongest_detail"]

#: cell of a value that is missing (the model has no accuracy on that role, ...)
_MISSING = "-"
#: decimals of the indicator columns that differ from the table's 3: Calinski-Harabasz is a
#: ratio of dispersions, in the tens to thousands
_DIGITS = {"calinski_harabasz": 1}


def _indicator_cell(column: str, value: Any) -> Any:
    """The number :class:`Table` formats (``n_samples``, ``n_clusters`` as integers), ``-`` if
    missing."""
    if not is_number(value):
        return _MISSING
    return int(value) if column in SAMPLE_COLUMNS else float(value)


def indicators_table(table: pd.DataFrame) -> Table:
    """The output of :func:`~robustlens.lines.clustering.analysis.indicator_table` as a table.

    Example:
        >>> df = pd.DataFrame({"silhouette": [0.51234], "calinski_harabasz": [123.45],
        ...                    "n_samples": [40.0], "corrupt (mean)": [float("nan")]},
        ...                   index=pd.Index(["m"], name="model"))
        >>> t = indicators_table(df)
        >>> t.columns
        ['model', 'silhouette ↑', 'Calinski-H. ↑', 'n', 'acc corrupt']
        >>> t.cells()
        [['m', '0.512', '123.5', '40', '-']]
    """
    labels = [INDICATOR_LABELS.get(c, c) for c in table.columns]
    return Table(
        "clustering indicators of clean id features (k-means, k = classes in the sample) and "
        "accuracies",
        ["model", *labels],
        [
            [str(model), *(_indicator_cell(c, row[c]) for c in table.columns)]
            for model, row in table.iterrows()
        ],
        digits={
            label: _DIGITS[c]
            for c, label in zip(table.columns, labels, strict=True)
            if c in _DIGITS
        },
    )


def _correlation_cell(row: pd.Series | None) -> str:
    """``+0.42* (p = 0.012) [+0.10, +0.80]``: coefficient, p-value and bootstrap CI."""
    if row is None or not is_number(row["coefficient"]):
        return "n/a"
    text = f"{signed(row['coefficient'], significant=row['significant'])} ({p_eq(row['p_value'])})"
    if is_number(row["ci_low"]):
        text += f" [{signed(row['ci_low'])}, {signed(row['ci_high'])}]"
    return text


def correlations_table(corr: pd.DataFrame, alpha: float = 0.05) -> Table:
    """The output of :func:`~robustlens.lines.clustering.analysis.indicator_correlations`:
    one row per indicator, one column per target.

    Example:
        >>> corr = pd.DataFrame({"indicator": ["silhouette"], "target": ["corrupt (mean)"],
        ...                      "label_free": [True], "coefficient": [0.8], "p_value": [0.2],
        ...                      "ci_low": [float("nan")], "ci_high": [float("nan")], "n": [4],
        ...                      "significant": [False], "method": ["spearman"]})
        >>> correlations_table(corr).cells()
        [['silhouette ↑', 'yes', '+0.80 (p = 0.200)']]
    """
    targets = list(dict.fromkeys(corr["target"]))
    n = int(corr["n"].max()) if len(corr) else 0
    method = str(corr["method"].iloc[0]) if len(corr) else "spearman"
    rows = []
    for indicator, sub in corr.groupby("indicator", sort=False):
        by_target = sub.drop_duplicates("target").set_index("target")
        rows.append(
            [
                INDICATOR_LABELS.get(indicator, indicator),
                "yes" if sub["label_free"].iloc[0] else "no",
                *(
                    _correlation_cell(by_target.loc[t] if t in by_target.index else None)
                    for t in targets
                ),
            ]
        )
    return Table(
        f"{method} correlation of each indicator with accuracy across {n} models "
        f"(* p < {alpha:g}; [{1 - alpha:.0%} bootstrap CI])",
        ["indicator", "label-free", *targets],
        rows,
    )


def strongest_detail(best: Mapping[str, Any], method: str) -> str:
    """The evidence for the strongest label-free indicator (the output of
    :func:`~robustlens.lines.clustering.analysis.strongest_label_free_indicator`).

    Example:
        >>> strongest_detail({"coefficient": -0.8, "p_value": 0.01, "significant": True,
        ...                   "n": 6, "expected_sign": True}, "spearman")
        'spearman -0.80, p = 0.010, significant, n = 6 models'
    """
    sig = "significant" if best["significant"] else "not significant"
    text = f"{method} {signed(best['coefficient'])}, {p_eq(best['p_value'])}, {sig}, "
    text += f"n = {best['n']} models"
    if not best["expected_sign"]:
        text += "; sign opposite to the expected direction"
    return text
