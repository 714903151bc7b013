"""How will my model do on this data? Estimates of accuracy on a study's unlabelled datasets.

Every label-free predictor the study computed (``label_free``: average confidence, DoC, ATC,
the nuclear norm; ``invariance``: effective invariance; ``agreement``: agreement between the
models; ``clustering`` with ``datasets: all``: the clustering indicators) is calibrated per
model on the study's labelled shifted datasets and turned into an accuracy estimate on each
unlabelled dataset, with its expected error and an interval
(:mod:`robustlens.analysis.estimation` has the formulas).

Everything is read from the study's results: the long table of ``store.results()`` (values by
measure and name), the recorded dataset roles and tags, and the per-sample ``top1`` column of
the ``agreement`` measure. No other line is imported and no model is run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.estimation import (
    ESTIMATE_COLUMNS,
    RELIABILITY_COLUMNS,
    Predictor,
    estimate_accuracy,
    predictor_reliability,
    recommend,
    shift_group,
)
from robustlens.errors import ValidationError
from robustlens.lines.estimate.measure import TOP1
from robustlens.roles import SHIFTED_ROLES, UNLABELED

__all__ = [
    "AGREEMENT",
    "PREDICTORS",
    "TARGET",
    "Estimates",
    "agreement_values",
    "estimate_study",
]

#: the true accuracy the predictors are calibrated against (the ``accuracy`` measure)
TARGET = "accuracy.accuracy"
#: the column of each model's mean agreement with the other models
AGREEMENT = "agreement.mean_agreement"
#: every label-free predictor; ``(as is)``: an accuracy already, used without a fit
PREDICTORS: tuple[Predictor, ...] = (
    Predictor("avg confidence", "label_free.avg_confidence"),
    Predictor("avg confidence (as is)", "label_free.avg_confidence", fit=False),
    # DoC is average confidence plus a constant per model: fitted, it equals the fitted
    # average confidence, so it is used as it is only
    Predictor("DoC (as is)", "label_free.doc", fit=False),
    Predictor("ATC (max conf)", "label_free.atc_maxconf"),
    Predictor("ATC (max conf, as is)", "label_free.atc_maxconf", fit=False),
    Predictor("ATC (neg. entropy)", "label_free.atc_negentropy"),
    Predictor("ATC (neg. entropy, as is)", "label_free.atc_negentropy", fit=False),
    Predictor("nuclear norm", "label_free.nuclear_norm"),
    Predictor("EI rotation", "invariance.ei_rotation"),
    Predictor("EI grayscale", "invariance.ei_gray"),
    Predictor("agreement", AGREEMENT),
    Predictor("silhouette", "clustering.silhouette"),
    Predictor("Davies-Bouldin", "clustering.davies_bouldin"),
    Predictor("Calinski-Harabasz", "clustering.calinski_harabasz"),
)
#: the measure each predictor comes from, for the notes on what is missing
_SOURCES = {
    "label_free": "label_free",
    "invariance": "invariance",
    "agreement": "agreement (with at least 2 models)",
    "clustering": "clustering with measure_options.clustering.datasets: all",
}


@dataclass
class Estimates:
    """What :func:`estimate_study` found.

    Attributes:
        unlabeled: the study's unlabelled datasets, in study order.
        shifts: ``{labelled shifted dataset: its shift}``, the calibration datasets.
        estimates: one row per (model, unlabelled dataset, predictor); columns
            :data:`~robustlens.analysis.estimation.ESTIMATE_COLUMNS`.
        reliability: one row per (model, predictor) calibrated; columns
            :data:`~robustlens.analysis.estimation.RELIABILITY_COLUMNS`.
        recommended: the predictor most reliable on the labelled shifts (``None`` if none).
        missing: notes on predictors that could not be calibrated and why.
        alpha: intervals are at level ``1 - alpha``.
        predictors: the predictors, in table order.
    """

    unlabeled: list[str]
    shifts: dict[str, str]
    estimates: pd.DataFrame
    reliability: pd.DataFrame
    recommended: str | None
    missing: list[str] = field(default_factory=list)
    alpha: float = 0.1
    predictors: tuple[Predictor, ...] = PREDICTORS

    @property
    def level(self) -> str:
        """The interval's level as text, e.g. ``"90%"``."""
        return f"{100 * (1 - self.alpha):.0f}%"


def agreement_values(per_sample: Iterable[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Each model's mean top-1 agreement with the other models, per dataset, as results rows.

    ``agreement(m, d) = mean over the other models o of (1/N) sum_n [top1_m(x_n) ==
    top1_o(x_n)]`` over the samples both have (aligned by ``sample_id``). Datasets with the
    predictions of fewer than 2 models get no row.

    Args:
        per_sample: ``(model, per-sample DataFrame)`` pairs with columns ``dataset``,
            ``sample_id`` and ``top1`` (written by the ``agreement`` measure).

    Returns:
        Rows in the format of ``store.results()``: model, dataset, measure (``agreement``),
        name (``mean_agreement``), value.

    Example:
        >>> a = pd.DataFrame({"dataset": "d", "sample_id": [1, 2, 3, 4], "top1": [0, 1, 2, 2]})
        >>> b = pd.DataFrame({"dataset": "d", "sample_id": [1, 2, 3, 4], "top1": [0, 1, 1, 2]})
        >>> agreement_values([("a", a), ("b", b)])["value"].tolist()
        [0.75, 0.75]
    """
    preds: dict[str, dict[str, pd.Series]] = {}
    for model, df in per_sample:
        if TOP1 not in df.columns or "sample_id" not in df.columns:
            continue
        rows = df.dropna(subset=[TOP1])
        for dataset, part in rows.groupby("dataset", sort=False):
            s = part.drop_duplicates("sample_id").set_index("sample_id")[TOP1]
            preds.setdefault(str(dataset), {})[str(model)] = s
    out = []
    for dataset, by_model in preds.items():
        if len(by_model) < 2:
            continue
        for m, s in by_model.items():
            rates = []
            for o, t in by_model.items():
                common = s.index.intersection(t.index)
                if o != m and len(common):
                    rates.append(
                        float(np.mean(s.loc[common].to_numpy() == t.loc[common].to_numpy()))
                    )
            if rates:
                out.append([m, dataset, "agreement", "mean_agreement", float(np.mean(rates))])
    return pd.DataFrame(out, columns=["model", "dataset", "measure", "name", "value"])


def _cube(results: pd.DataFrame) -> pd.DataFrame:
    """(dataset, model) x ``measure.name`` from the long results table."""
    missing = [c for c in ("model", "dataset", "measure", "name", "value") if c not in results]
    if missing:
        raise ValidationError(
            f"results: missing columns {missing}; expected the long table of store.results()"
        )
    if results.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["dataset", "model"]))
    df = results.assign(key=results["measure"] + "." + results["name"])
    return df.pivot_table(
        index=["dataset", "model"], columns="key", values="value", aggfunc="first"
    )


def _info(datasets: Mapping[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    info = datasets.get(name) or {}
    if isinstance(info, Mapping):
        return str(info.get("role", "other")), dict(info.get("tags") or {})
    return str(info), {}


def estimate_study(
    results: pd.DataFrame,
    datasets: Mapping[str, Any],
    per_sample: Iterable[tuple[str, pd.DataFrame]] | None = None,
    *,
    alpha: float = 0.1,
    min_shifts: int = 3,
    predictors: Sequence[Predictor] = PREDICTORS,
) -> Estimates:
    """Calibrate every predictor per model on the labelled shifts; estimate the unlabelled sets.

    Args:
        results: the study's long results table (``store.results()``).
        datasets: the study's recorded datasets, ``{name: {"role": ..., "tags": {...}}}``
            (``StudyResult.dataset_roles``, ``ReportContext.datasets``), in study order.
        per_sample: ``(model, per-sample DataFrame)`` pairs for the agreement between models
            (``ReportContext.iter_per_sample([...])``); ``None``: no agreement predictor.
        alpha: intervals are at level ``1 - alpha``.
        min_shifts: the fewest labelled shifts a calibration needs.
        predictors: the predictors to calibrate.

    Returns:
        :class:`Estimates`.
    """
    unlabeled = [d for d in datasets if _info(datasets, d)[0] == UNLABELED]
    shifts = {}
    for d in datasets:
        role, tags = _info(datasets, d)
        if role in SHIFTED_ROLES:
            shifts[d] = shift_group(d, role, tags)
    if per_sample is not None:
        wanted = set(shifts) | set(unlabeled)
        agree = agreement_values(
            (m, df[df["dataset"].isin(wanted)]) for m, df in per_sample if "dataset" in df
        )
        results = pd.concat([results, agree], ignore_index=True)
    cube = _cube(results)
    cols = set(cube.columns)
    predictors = tuple(predictors)
    missing = []
    if TARGET not in cols:
        missing.append("no true accuracy on the labelled shifts: run the accuracy measure")
        est = pd.DataFrame(columns=ESTIMATE_COLUMNS)
        rel = pd.DataFrame(columns=RELIABILITY_COLUMNS)
    else:
        rel = predictor_reliability(cube, TARGET, shifts, predictors, min_shifts)
        est = estimate_accuracy(cube, TARGET, shifts, unlabeled, predictors, alpha, min_shifts)
    for p in predictors:
        if p.name in set(rel["predictor"]):
            continue
        measure = p.column.split(".")[0]
        have = (
            cube.loc[cube.index.get_level_values("dataset").isin(list(shifts)), p.column]
            .notna()
            .any()
            if p.column in cols
            else False
        )
        why = (
            f"fewer than {min_shifts} labelled shifts with a value"
            if have
            else f"no values on the labelled shifts (run {_SOURCES.get(measure, measure)})"
        )
        missing.append(f"{p.name}: {why}")
    return Estimates(
        unlabeled=unlabeled,
        shifts=shifts,
        estimates=est,
        reliability=rel,
        recommended=recommend(rel),
        missing=missing,
        alpha=alpha,
        predictors=predictors,
    )
