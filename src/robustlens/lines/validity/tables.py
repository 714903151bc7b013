"""The validity line's tables, each built once: the report section renders them with
``Table.to_html()``, ``robustlens validity`` and the demo's summary with ``Table.to_rich()``;
:func:`validity_export` is the ``validity.csv`` export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import correlate
from robustlens.formatting import is_number, number, p_value, signed
from robustlens.lines.validity.analysis import (
    GT,
    ROW_COLUMNS,
    ValidityOptions,
    ei_family_frame,
    model_values,
    validity_frame,
)
from robustlens.lines.validity.causes import PLANTED_KEYS, cause_table
from robustlens.tables import Table

__all__ = [
    "causes_table",
    "family_table",
    "has_validity_inputs",
    "validity_export",
    "validity_of",
    "validity_summary",
    "validity_table",
]

#: ground-truth values shown next to the planted causes: value name -> header
_GROUND_TRUTH = {
    "mark_reliance": "mark reliance",
    "texture_reliance": "texture reliance",
    "rotation_accuracy": "acc rotated",
    "gray_accuracy": "acc gray",
    "corruption_accuracy": "acc corrupt",
}
_CAUSE_HEADERS = {
    "mark_rate": "mark rate",
    "texture_randomization": "texture rand.",
    "rotation_augmentation": "rotation aug.",
    "grayscale_augmentation": "gray aug.",
    "corruption_augmentation": "corruption aug.",
    "generated_fraction": "generated",
    "epochs": "epochs",
    "width": "width",
    "arch": "arch",
}
_RULE = (
    "recovered: Spearman rho of the expected sign with |rho| >= {t:g} and p < {a:g} where a "
    "monotone relation is expected; other checks state their rule under 'expected'. "
    "Intervals: percentile bootstrap over models at level {lvl:g} %."
)


def _unsigned(row: Mapping[str, Any]) -> bool:
    """Statistics that are never negative (R², a spread, a fraction) are shown unsigned."""
    return str(row.get("statistic", "")).startswith(("R²", "std", "fraction"))


def _ci(row: Mapping[str, Any]) -> str:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if not (is_number(lo) and is_number(hi)):
        return "n/a"
    fmt = number if _unsigned(row) else signed
    return f"[{fmt(lo, 2)}, {fmt(hi, 2)}]"


def _value(row: Mapping[str, Any]) -> str:
    if _unsigned(row):
        return number(row.get("value"), 2)
    digits = 3 if str(row.get("statistic", "")).startswith(("mean ER", "median change")) else 2
    return signed(row.get("value"), digits)


def validity_table(frame: pd.DataFrame, options: ValidityOptions | None = None) -> Table:
    """Every check of :func:`~robustlens.lines.validity.analysis.validity_frame`, in full."""
    o = options or ValidityOptions()
    rows = [
        [
            r["seed"],
            r["check"],
            r["cause"],
            r["measure"],
            r["expected"],
            r["statistic"],
            _value(r),
            p_value(r["p_value"]),
            _ci(r),
            int(r["n"]),
            r["recovered"],
            r["note"] or "",
        ]
        for r in frame.to_dict("records")
    ]
    return Table(
        "Validity: does each measure recover the planted cause?",
        [
            "seed",
            "check",
            "cause / ground truth",
            "measure",
            "expected",
            "statistic",
            "value",
            "p",
            "CI",
            "n",
            "recovered",
            "evidence / note",
        ],
        rows,
        caption=_RULE.format(t=o.threshold, a=o.alpha, lvl=100 * (1 - o.alpha)),
    )


def validity_summary(source: Any, options: ValidityOptions | None = None) -> Table | None:
    """The validity table in short (seed, check, value, p, n, recovered), for a terminal.

    Args:
        source: a :class:`~robustlens.report.context.ReportContext` (or anything with its
            ``results``, ``models`` and ``datasets``), or a frame of
            :func:`~robustlens.lines.validity.analysis.validity_frame`.
        options: the rules (:class:`ValidityOptions`).

    Returns:
        The table, or ``None`` when the study has neither planted causes nor ground truth.
    """
    o = options or ValidityOptions()
    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        frame = validity_of(source, o)
        if frame is None:
            return None
    rows = [
        [
            r["seed"],
            r["check"],
            _value(r),
            p_value(r["p_value"]),
            int(r["n"]),
            r["recovered"],
        ]
        for r in frame.to_dict("records")
    ]
    counts = frame["recovered"].value_counts()
    caption = (
        f"{counts.get('yes', 0)} recovered, {counts.get('no', 0)} not, "
        f"{counts.get('n/a', 0)} not testable; value: Spearman rho unless the report's "
        "validity section says otherwise"
    )
    return Table(
        "Validity (short)",
        ["seed", "check", "value", "p", "n", "recovered"],
        rows,
        caption=caption,
    )


def has_validity_inputs(results: pd.DataFrame, models: Mapping[str, Any]) -> bool:
    """Whether a study can be validated: some model has planted causes or ground truth."""
    if len(cause_table(models)):
        return True
    return bool(len(results)) and bool((results["measure"] == GT).any())


def validity_of(ctx: Any, options: ValidityOptions | None = None) -> pd.DataFrame | None:
    """:func:`validity_frame` of a report context, or ``None`` when it has nothing to check."""
    if not has_validity_inputs(ctx.results, ctx.models):
        return None
    return validity_frame(ctx.results, ctx.models, ctx.datasets, options)


def validity_export(long: pd.DataFrame, plan: Mapping[str, Any]) -> pd.DataFrame | None:
    """The ``validity.csv`` export: :func:`validity_frame` of the exported long results and
    the study's plan (its ``models`` configs and ``datasets`` roles); ``None`` when the study
    has neither planted causes nor ground truth."""
    models = plan.get("models") or {}
    if not has_validity_inputs(long, models):
        return None
    return validity_frame(long, models, plan.get("datasets") or {})[list(ROW_COLUMNS)]


def causes_table(results: pd.DataFrame, models: Mapping[str, Any]) -> Table | None:
    """Per model: its planted causes and its measured ground truth."""
    causes = cause_table(models)
    if causes.empty:
        return None
    gt = {k: model_values(results, GT, k) for k in _GROUND_TRUTH}
    gt = {k: v for k, v in gt.items() if len(v)}
    rows = []
    for model, c in causes.iterrows():
        cells: list[Any] = [str(model)]
        for key in PLANTED_KEYS:
            v = c[key]
            if key in ("epochs", "width") and is_number(v):
                cells.append(int(v))
            elif isinstance(v, str) or v is None:
                cells.append(v)
            else:
                cells.append(float(v))
        cells += [v.get(model, np.nan) for v in gt.values()]
        rows.append(cells)
    headers = ["model", *[_CAUSE_HEADERS[k] for k in PLANTED_KEYS]]
    headers += [_GROUND_TRUTH[k] for k in gt]
    digits = {h: 2 for h in headers}
    return Table(
        "Planted causes and measured ground truth per model",
        headers,
        rows,
        digits=digits,
        caption="causes: the model's recorded training recipe; ground truth: the "
        "ground_truth measure (labels and predictions only)",
    )


def family_table(
    results: pd.DataFrame, roles: Mapping[str, Any] | None, options: ValidityOptions | None = None
) -> Table | None:
    """Model-centric EI vs accuracy on each shift family (the detail of seed 001's rows)."""
    o = options or ValidityOptions()
    rows = []
    for ei, label in (("ei_rotation", "EI rotation"), ("ei_gray", "EI grayscale")):
        e, a = ei_family_frame(results, ei, roles)
        for fam in e.columns:
            r = correlate(e[fam], a[fam], "spearman", o.alpha, o.n_boot, o.seed)
            ci = "n/a"
            if is_number(r.ci_low):
                ci = f"[{signed(r.ci_low)}, {signed(r.ci_high)}]"
            rho = signed(r.coefficient, significant=r.significant)
            rows.append([label, str(fam), rho, p_value(r.p_value), ci, r.n])
    if not rows:
        return None
    return Table(
        "EI vs accuracy on each shift family, across models (model-centric)",
        ["predictor", "shift family", "Spearman rho", "p", "CI", "n"],
        rows,
        caption=f"* p < {o.alpha:g}; a family is the mean over its datasets (every "
        "corruption x severity of a corrupt role), every other shifted set alone",
    )
