"""The estimate line's tables, built once and shown in the report and in the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from robustlens.formatting import number
from robustlens.lines.estimate.analysis import Estimates
from robustlens.tables import Table

__all__ = [
    "estimate_table",
    "predictor_estimates_table",
    "reliability_table",
    "skips_table",
]


def _interval(low: float, high: float) -> str:
    return f"{number(low)} – {number(high)}"


def estimate_table(est: Estimates, dataset: str) -> Table:
    """Each model's estimated accuracy on one unlabelled dataset, by the recommended predictor.

    Example:
        >>> from robustlens.analysis.estimation import ESTIMATE_COLUMNS
        >>> rows = pd.DataFrame([["m", "u", "p", 0.7, 0.6, 0.5, 0.7, 0.04, 9, 4, 1.0, 0.0]],
        ...                     columns=ESTIMATE_COLUMNS)
        >>> est = Estimates(["u"], {}, rows, pd.DataFrame(), "p")
        >>> estimate_table(est, "u").cells()
        [['m', '0.600', '0.500 – 0.700', '0.040', 'p']]
    """
    caption = (
        f"Estimated top-1 accuracy from the predictor most reliable on the study's labelled "
        f"shifts ({est.recommended}), calibrated per model on those shifts; expected error: its "
        f"mean absolute error when one labelled shift is left out; interval: {est.level} "
        "jackknife+. No label of this dataset is read."
        if est.recommended
        else "No predictor could be calibrated on the study's labelled shifts."
    )
    rows = []
    e = est.estimates
    sub = e[(e["dataset"] == dataset) & (e["predictor"] == est.recommended)]
    for r in sub.itertuples(index=False):
        rows.append([r.model, r.estimate, _interval(r.low, r.high), r.loo_mae, r.predictor])
    return Table(
        f"How will each model do on {dataset}?",
        ["model", "estimated accuracy", f"{est.level} interval", "expected error", "predictor"],
        rows,
        caption=caption,
    )


def predictor_estimates_table(est: Estimates, dataset: str) -> Table:
    """Every predictor's estimate of every model's accuracy on one unlabelled dataset."""
    e = est.estimates[est.estimates["dataset"] == dataset]
    names = [p.name for p in est.predictors if p.name in set(e["predictor"])]
    wide = e.pivot_table(index="model", columns="predictor", values="estimate", aggfunc="first")
    models = list(dict.fromkeys(e["model"]))
    rows = [[m, *[_cell(wide, m, n) for n in names]] for m in models]
    return Table(
        f"Estimated accuracy on {dataset}, by predictor",
        ["model", *names],
        rows,
        caption="Each predictor calibrated per model on the labelled shifts; "
        "(as is): the predictor's own accuracy estimate, without a fit.",
    )


def _cell(wide: pd.DataFrame, model: str, name: str) -> float | None:
    if name not in wide.columns or model not in wide.index:
        return None
    v = wide.at[model, name]
    return None if pd.isna(v) else float(v)


def reliability_table(est: Estimates) -> Table:
    """How far each predictor was off on the labelled shifts (left out one at a time).

    Example:
        >>> rel = pd.DataFrame({"model": ["a", "b"], "predictor": ["p", "p"],
        ...                     "loo_mae": [0.02, 0.04], "n_datasets": [9, 9],
        ...                     "n_shifts": [4, 4], "slope": [1, 1], "intercept": [0, 0]})
        >>> est = Estimates([], {}, pd.DataFrame(), rel, "p")
        >>> reliability_table(est).cells()
        [['p (recommended)', '0.030', '0.040', '2', '4']]
    """
    rel = est.reliability
    order = {p.name: i for i, p in enumerate(est.predictors)}
    rows = []
    if not rel.empty:
        g = rel.groupby("predictor", sort=False).agg(
            mae=("loo_mae", "mean"),
            worst=("loo_mae", "max"),
            models=("model", "nunique"),
            shifts=("n_shifts", "median"),
        )
        g = g.assign(order=[order.get(p, len(order)) for p in g.index])
        g = g.sort_values(["mae", "order"], kind="stable")
        for p, r in g.iterrows():
            name = f"{p} (recommended)" if p == est.recommended else str(p)
            rows.append([name, r["mae"], r["worst"], int(r["models"]), int(r["shifts"])])
    return Table(
        "Which label-free predictor to trust: error on the labelled shifts",
        ["predictor", "expected error", "worst model", "models", "shifts"],
        rows,
        caption=(
            "Mean absolute error of each predictor's accuracy estimate when one labelled shift "
            "(every severity of a corruption, or one other shifted dataset) is left out of its "
            "per-model calibration and predicted; mean over models, and the worst model. "
            + (f"Not calibrated: {'; '.join(est.missing)}." if est.missing else "")
        ).strip(),
    )


def skips_table(skips: Sequence[Mapping[str, str]]) -> Table:
    """The measures that did not read an unlabelled dataset, and why.

    Example:
        >>> skips_table([{"measure": "accuracy", "dataset": "u", "reason": "needs labels"}]).cells()
        [['accuracy', 'u', 'needs labels']]
    """
    return Table(
        "Measures that skip the unlabelled datasets",
        ["measure", "dataset", "reason"],
        [[s["measure"], s["dataset"], s["reason"]] for s in skips],
    )
