"""The robustness line's tables, built once and shown by the report section and the command.

* :func:`er_table`: the baseline fitted per shift (first row) and every model's ER;
* :func:`pairs_table`: generated-data models next to their real-only twins;
* :func:`shipped_er_table`: ER against the shipped ImageNet baselines.

ER and its differences are signed (``+0.050``: above the line); accuracies are plain.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from robustlens.formatting import number, signed
from robustlens.metrics.effective_robustness import Baseline
from robustlens.tables import Table

__all__ = ["er_table", "pairs_table", "shipped_er_table"]


def _fit(b: Baseline | None) -> str:
    """One shift's fitted line: ``0.800·x -0.500, R²=1.000, n=4`` (or ``no fit``)."""
    if b is None:
        return "no fit"
    return f"{number(b.slope)}·x {signed(b.intercept, 3)}, R²={number(b.r2)}, n={b.n}"


def _kind(generated: bool, in_baseline: bool) -> str:
    return "generated" if generated else "baseline" if in_baseline else ""


def er_table(
    table: pd.DataFrame, baselines: Mapping[str, Baseline], transform: str = "logit"
) -> Table:
    """Per shift, the baseline fit (first row) and each model's ER (one row per model).

    Args:
        table: the first output of
            :func:`~robustlens.lines.robustness.analysis.zoo_effective_robustness`.
        baselines: its second output, ``{shift: Baseline}``.
        transform: the axes the baselines were fitted on (for the title).
    """
    shifts = sorted(table["shift"].unique())
    wide = table.pivot_table(
        index="model", columns="shift", values="er", aggfunc="first", dropna=False
    )
    flags = table.groupby("model")[["generated", "in_baseline"]].first()
    rows: list[list[object]] = [["baseline", "", *(_fit(baselines.get(s)) for s in shifts)]]
    for model in wide.index:
        kind = _kind(bool(flags.loc[model, "generated"]), bool(flags.loc[model, "in_baseline"]))
        rows.append([str(model), kind, *(signed(wide.loc[model].get(s), 3) for s in shifts)])
    caption = (
        f"ER = acc_ood - baseline at acc_id; baseline row: the line "
        f"{transform}(acc_ood) = slope·{transform}(acc_id) + intercept of each shift"
    )
    if any(baselines.get(s) is None for s in shifts):
        caption += "; no fit: fewer than 2 standard models, or all at the same ID accuracy"
    return Table(
        f"effective robustness and baselines ({transform} axes, fitted over standard models)",
        ["model", "kind", *shifts],
        rows,
        caption=caption,
    )


def pairs_table(pairs: pd.DataFrame) -> Table:
    """Generated-data models vs their real-only twins, per shift.

    Args:
        pairs: the output of :func:`~robustlens.lines.robustness.analysis.er_pairs_table`.
    """
    columns = ["shift", "generated", "real", "acc_id gen", "acc_id real"]
    columns += ["acc_ood gen", "acc_ood real", "ER gen", "ER real", "delta ER"]
    rows = [
        [
            r["shift"],
            r["generated"],
            r["real"],
            r["acc_id_gen"],
            r["acc_id_real"],
            r["acc_ood_gen"],
            r["acc_ood_real"],
            signed(r["er_gen"], 3),
            signed(r["er_real"], 3),
            signed(r["delta_er"], 3),
        ]
        for _, r in pairs.iterrows()
    ]
    return Table(
        "Generated-data models vs their real-only twins",
        columns,
        rows,
        caption="delta ER = ER gen - ER real (positive: the generated data raised ER)",
    )


def shipped_er_table(results: pd.DataFrame, transform: str = "logit") -> Table:
    """ER against the shipped ImageNet baselines, per model and dataset.

    Args:
        results: the long results table of the ``robustness`` measure.
        transform: which of its ``er_shipped_logit`` / ``er_shipped_probit`` to show.
    """
    shipped = results[results["name"] == f"er_shipped_{transform}"]
    rows = [[r["model"], r["dataset"], signed(r["value"], 4)] for _, r in shipped.iterrows()]
    return Table(
        f"ER against the shipped ImageNet baselines ({transform})", ["model", "dataset", "ER"], rows
    )
