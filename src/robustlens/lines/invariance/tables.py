"""The tables of the invariance line, built once for the report and the terminal.

Each function turns an analysis result of :mod:`robustlens.lines.invariance.analysis` into a
:class:`robustlens.tables.Table` (or ``None`` when there is nothing to show): the report
section renders it with :meth:`~robustlens.tables.Table.to_html`, ``robustlens invariance``
with :meth:`~robustlens.tables.Table.to_rich`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from robustlens.formatting import is_number, number, p_value, short, signed
from robustlens.lines.invariance.analysis import CORRUPT_MEAN, predictor_label
from robustlens.tables import Table

__all__ = [
    "MIN_MODELS",
    "dataset_centric_table",
    "lowest_mae",
    "mae_table",
    "model_centric_table",
]

#: fewer models than this make a correlation across models meaningless
MIN_MODELS = 5
METHODS = ("spearman", "pearson")


def _by_method(rows: pd.DataFrame) -> dict[str, Any]:
    """``{method: row}`` of the correlation rows of one predictor (and dataset)."""
    return {r["method"]: r for _, r in rows.iterrows()}


def _coefficients(by: dict[str, Any]) -> str:
    """``+0.42* / +0.40``: Spearman / Pearson, ``*`` where significant."""
    text = " / ".join(
        signed(by[m]["coefficient"], significant=by[m]["significant"]) for m in METHODS if m in by
    )
    return text or "n/a"


def model_centric_table(table: pd.DataFrame, alpha: float = 0.05) -> Table | None:
    """Rows: predictors; columns: shift families; cell: Spearman ρ / Pearson r (* p < alpha).

    Args:
        table: :func:`~robustlens.lines.invariance.analysis.model_centric`; its rows of single
            corrupt datasets (``each_corrupt``) are summarised by ``corrupt (mean)`` and left out.
        alpha: the significance level the table was computed with (for the title).

    Example:
        >>> rows = [("world/sketch", "sketch", "invariance.ei_rotation", m, c, s, 5)
        ...         for m, c, s in (("spearman", 0.9, True), ("pearson", 0.42, False))]
        >>> t = pd.DataFrame(rows, columns=["dataset", "role", "predictor", "method",
        ...                                 "coefficient", "significant", "n"])
        >>> model_centric_table(t).cells()
        [['EI rotation', '+0.90* / +0.42']]
    """
    if table.empty:
        return None
    summary = (table["role"] != "corrupt") | (table["dataset"] == CORRUPT_MEAN)
    families = list(dict.fromkeys(table.loc[summary, "dataset"]))
    n = int(table["n"].max())
    rows = []
    for p in dict.fromkeys(table["predictor"]):
        mine = table[table["predictor"] == p]
        rows.append(
            [
                predictor_label(p),
                *(_coefficients(_by_method(mine[mine["dataset"] == f])) for f in families),
            ]
        )
    caption = (
        f"Only {n} models: too few for a meaningful correlation across models "
        f"(use at least {MIN_MODELS})."
        if n < MIN_MODELS
        else ""
    )
    return Table(
        f"model-centric: correlation with accuracy across {n} models "
        f"(Spearman ρ / Pearson r, * p < {alpha:g})",
        ["predictor", *(short(f) for f in families)],
        rows,
        caption=caption,
    )


def dataset_centric_table(table: pd.DataFrame, model: str) -> Table | None:
    """Rows: predictors; Spearman ρ (p, bootstrap CI) and Pearson r (p) across shifted sets.

    Args:
        table: :func:`~robustlens.lines.invariance.analysis.dataset_centric` of ``model``.
        model: the model's name (for the title).
    """
    if table.empty:
        return None
    n = int(table["n"].max())
    rows = []
    for p in dict.fromkeys(table["predictor"]):
        by = _by_method(table[table["predictor"] == p])
        s, r = by.get("spearman", {}), by.get("pearson", {})
        lo, hi = s.get("ci_low"), s.get("ci_high")
        rows.append(
            [
                predictor_label(p),
                signed(s.get("coefficient"), significant=s.get("significant")),
                p_value(s.get("p_value")),
                f"[{signed(lo)}, {signed(hi)}]" if is_number(lo) and is_number(hi) else "n/a",
                signed(r.get("coefficient"), significant=r.get("significant")),
                p_value(r.get("p_value")),
            ]
        )
    return Table(
        f"dataset-centric: {model}, correlation with accuracy across {n} shifted datasets",
        ["predictor", "Spearman ρ", "p", "95% CI", "Pearson r", "p"],
        rows,
    )


def mae_table(table: pd.DataFrame) -> Table | None:
    """Rows: predictors, lowest MAE first; MAE pooled and per shifted role, and the pairs.

    Args:
        table: :func:`~robustlens.lines.invariance.analysis.ood_predictor_mae`.
    """
    if table.empty:
        return None
    role_cols = [c for c in table.columns if c.startswith("mae_")]
    rows = [
        [
            predictor_label(r["predictor"]),
            r["kind"],
            r["mae"],
            *(r[c] if is_number(r[c]) else "-" for c in role_cols),
            int(r["n"]),
        ]
        for _, r in table.iterrows()
    ]
    return Table(
        "label-free OOD-accuracy predictors: leave-one-model-out MAE, pooled over "
        "shifted datasets (lower is better)",
        ["predictor", "kind", "MAE", *(c[len("mae_") :] for c in role_cols), "pairs"],
        rows,
    )


def lowest_mae(table: pd.DataFrame) -> str:
    """The best predictor of :func:`mae_table`'s table in words (``""`` when empty)."""
    if table.empty:
        return ""
    best = table.iloc[0]
    return (
        f"{predictor_label(best['predictor'])} ({best['kind']}), MAE {number(best['mae'])} "
        f"over {int(best['n'])} (model, shifted set) pairs"
    )
