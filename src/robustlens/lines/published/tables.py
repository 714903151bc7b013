"""The tables below the published-comparison plots, built once (:class:`robustlens.tables.Table`).

Every plot of the line names its points in a table: the user's models with their placement,
and every published point with its model name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustlens.formatting import p_value
from robustlens.lines.published.analysis import (
    BiasPoints,
    CorruptionPoints,
    RobustPoints,
    ShiftResult,
    eps_text,
)
from robustlens.tables import Table

__all__ = [
    "bias_points_table",
    "correlations_table",
    "corruption_table",
    "leaderboard_table",
    "shift_points_table",
    "shift_user_table",
]

YOURS = "yours"


def _f(v: object) -> float | None:
    """A finite float, else None (shown as ``n/a``)."""
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _correlation(r: Any, suffix: str) -> list[object]:
    """``n``, ``rho`` and ``p`` of one correlation row (``suffix``: ``""`` or ``"_with"``)."""
    return [int(r["n" + suffix]), _f(r["rho" + suffix]), p_value(r["p" + suffix])]


def shift_user_table(res: ShiftResult) -> Table:
    """The user's models on one shift: accuracies, ER and rank among the published types."""
    rank_cols = [c for c in res.user.columns if c.startswith("rank:")]
    columns = ["model", "dataset", "ID acc.", "OOD acc.", "ER", "rank (all shown)"]
    columns += [f"rank among {c[len('rank:') :]}" for c in rank_cols]
    rows = [
        [
            r["model"],
            r["dataset"],
            *(_f(r[k]) for k in ("acc_id", "acc_ood", "er")),
            r["rank"],
            *[r[c] for c in rank_cols],
        ]
        for _, r in res.user.iterrows()
    ]
    return Table(
        f"Your models on {res.title}",
        columns,
        rows,
        digits=4,
        caption=(
            f"ID acc.: {res.x_label}. ER: OOD accuracy above the testbed's line (fitted on "
            f"{res.baseline.n} published standard models, logit axes). Rank k / n: the place of "
            "your model by ER among the published models shown on the plot (of that type) and "
            "itself, 1 = highest."
        ),
    )


def shift_points_table(res: ShiftResult) -> Table:
    """Every point of one shift's plot, by ER (the user's models marked ``yours``)."""
    pub = res.published[res.published["shown"]]
    rows = [
        [
            r["model"],
            str(r["type"]),
            "yes" if r["in_fit"] else "",
            r["acc_id"],
            r["acc_ood"],
            r["er"],
        ]
        for _, r in pub.iterrows()
    ]
    rows += [
        [r["model"], YOURS, "", r["acc_id"], r["acc_ood"], r["er"]] for _, r in res.user.iterrows()
    ]
    rows.sort(key=lambda r: -r[5] if np.isfinite(r[5]) else np.inf)
    return Table(
        f"Every point of the {res.title} plot ({len(pub)} published, {len(res.user)} yours)",
        ["model", "type", "in the fit", "ID acc.", "OOD acc.", "ER"],
        [[r[0], r[1], r[2], _f(r[3]), _f(r[4]), _f(r[5])] for r in rows],
        digits=4,
    )


def correlations_table(bp: BiasPoints) -> Table:
    """Spearman of each bias with each dimension, without and with the user's models."""
    rows = [
        [
            r["bias"],
            r["dimension"],
            *_correlation(r, ""),
            *_correlation(r, "_with"),
        ]
        for _, r in bp.correlations.iterrows()
    ]
    return Table(
        "Spearman correlation of each bias with each generalization dimension",
        [
            "bias",
            "dimension",
            "n",
            "rho (published)",
            "p",
            "n (with yours)",
            "rho (with yours)",
            "p",
        ],
        rows,
        caption=(
            "Published: seed 002's categorised ResNet-50s; with yours: the same plus your models "
            "that have both values."
        ),
    )


def bias_points_table(bp: BiasPoints) -> Table:
    """Every point of the bias scatter: the published ResNet-50s and the user's models."""
    cols = [c for c in bp.published.columns if c != "category"]
    rows = [[m, str(r["category"]), *[_f(r[c]) for c in cols]] for m, r in bp.published.iterrows()]
    rows += [[m, YOURS, *[_f(r.get(c)) for c in cols]] for m, r in bp.user.iterrows()]
    return Table(
        f"Every point of the scatter ({len(bp.published)} published, {len(bp.user)} yours)",
        ["model", "category", *cols],
        rows,
    )


def leaderboard_table(rp: RobustPoints) -> Table:
    """The L-inf leaderboard by robust accuracy, the user's models at their rank."""
    pub = [
        [
            r["model"],
            r["architecture"],
            "yes" if r["additional_data"] else "",
            r["clean"],
            r["robust"],
            "AutoAttack",
        ]
        for _, r in rp.published.iterrows()
    ]
    mine = [
        [
            f"{r['model']} ({YOURS}, {r['dataset']})",
            "",
            "",
            r["clean"],
            r["robust"],
            f"{r['attack']} {eps_text(r['eps'])}",
        ]
        for _, r in rp.user.iterrows()
    ]
    rows = sorted(pub + mine, key=lambda r: -r[4] if np.isfinite(r[4]) else np.inf)
    return Table(
        "RobustBench ImageNet L-inf leaderboard, with your models",
        ["rank", "model", "architecture", "extra data", "clean acc.", "robust acc.", "attack"],
        [[i + 1, r[0], r[1], r[2], _f(r[3]), _f(r[4]), r[5]] for i, r in enumerate(rows)],
        digits=4,
        caption="Robust accuracy at L-inf eps 4/255 on ImageNet val (RobustBench: 5000 images).",
    )


def corruption_table(cp: CorruptionPoints) -> Table:
    """The corruptions leaderboard by mean ImageNet-C accuracy, the user's models at their rank."""
    rows = [
        [r["model"], r["architecture"], r["clean"], r["corruption"]]
        for _, r in cp.published.iterrows()
    ]
    rows += [
        [f"{r['model']} ({YOURS})", "", r["clean"], r["corruption"]] for _, r in cp.user.iterrows()
    ]
    rows.sort(key=lambda r: -r[3] if np.isfinite(r[3]) else np.inf)
    return Table(
        "RobustBench ImageNet corruptions leaderboard, with your models",
        ["rank", "model", "architecture", "clean acc.", "ImageNet-C acc."],
        [[i + 1, r[0], r[1], _f(r[2]), _f(r[3])] for i, r in enumerate(rows)],
        digits=4,
        caption=(
            f"ImageNet-C accuracy: mean over {len(cp.datasets)} corruption x severity datasets."
        ),
    )
