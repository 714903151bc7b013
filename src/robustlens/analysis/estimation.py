"""Accuracy on unlabelled data: label-free predictors calibrated on the labelled shifts.

For one model, a label-free predictor (average confidence, DoC, ATC, the nuclear norm,
effective invariance, agreement between models, a clustering indicator ...) has a value
``x_d`` on every dataset ``d``; on the study's labelled shifted datasets the model's true
accuracy ``y_d`` is known too. As in the dataset-centric analyses of Deng & Zheng ("Are Labels
Always Necessary for Classifier Accuracy Evaluation?", CVPR 2021), Deng, Gould & Zheng
(NeurIPS 2022) and Deng et al. (ICML 2023), the model's accuracy is taken to be linear in the
predictor across shifts:

    y = a + b x,   (a, b) by ordinary least squares over the labelled shifted datasets,

and the estimate on an unlabelled dataset ``t`` is ``clip(a + b x_t, 0, 1)``. A predictor that
already is an accuracy (average confidence, DoC, ATC) may also be used as it is (``fit=False``:
the estimate is ``clip(x_t, 0, 1)``, with no fitted parameter).

Expected error: leave one labelled *shift* out. A shift is a group of datasets: every severity
of one corruption is one shift (ImageNet-C's unit, Hendrycks & Dietterich 2019), every other
dataset is its own (:func:`shift_group`). For each group ``g``, the line is fitted on the other
groups and predicts ``g``'s datasets; the expected error is the mean over the ``G`` groups of
their mean absolute error,

    MAE_LOO = (1/G) sum_g (1/|g|) sum_{d in g} |y_d - clip(yhat_{-g}(x_d), 0, 1)|,

so a new kind of shift, not one more severity of a known one, is what is simulated.

Interval: jackknife+ (Barber, Candès, Ramdas & Tibshirani, "Predictive inference with the
jackknife+", Ann. Statist. 2021) over the same leave-one-group-out fits. With the ``n``
labelled datasets ``i``, their residuals ``R_i = |y_i - clip(yhat_{-g(i)}(x_i), 0, 1)|`` and
the left-out fits' predictions ``m_i = clip(yhat_{-g(i)}(x_t), 0, 1)`` for the target,

    low  = the floor(alpha (n + 1))-th smallest of  m_i - R_i   (0 when that rank is < 1),
    high = the ceil((1 - alpha)(n + 1))-th smallest of m_i + R_i (1 when that rank is > n),

clipped to [0, 1] and widened to hold the estimate. Jackknife+ covers at least ``1 - 2 alpha``
when the target is exchangeable with the labelled datasets; for a shift unlike every labelled
one that is an assumption, and ``MAE_LOO`` says how far it held on the labelled shifts.

The recommended predictor (:func:`recommend`) is the one with the lowest mean ``MAE_LOO`` over
the models, among the predictors available for the most models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError
from robustlens.roles import corrupt_group

__all__ = [
    "ESTIMATE_COLUMNS",
    "RELIABILITY_COLUMNS",
    "Calibration",
    "Predictor",
    "calibrate",
    "estimate_accuracy",
    "ols_line",
    "predictor_reliability",
    "recommend",
    "shift_group",
]

#: columns of :func:`estimate_accuracy`
ESTIMATE_COLUMNS = [
    "model",
    "dataset",
    "predictor",
    "value",
    "estimate",
    "low",
    "high",
    "loo_mae",
    "n_datasets",
    "n_shifts",
    "slope",
    "intercept",
]
#: columns of :func:`predictor_reliability`
RELIABILITY_COLUMNS = [
    "model",
    "predictor",
    "loo_mae",
    "n_datasets",
    "n_shifts",
    "slope",
    "intercept",
]


@dataclass(frozen=True)
class Predictor:
    """A label-free predictor of accuracy.

    Attributes:
        name: how tables name it.
        column: its value's column in the results cube (``"measure.name"``).
        fit: map it to accuracy with the per-model line (``True``), or use it as it is (an
            accuracy already: average confidence, DoC, ATC).
    """

    name: str
    column: str
    fit: bool = True


def ols_line(x: Any, y: Any) -> tuple[float, float]:
    """Intercept and slope of the least-squares line ``y = a + b x``.

    ``b = sum (x - mean x)(y - mean y) / sum (x - mean x)^2`` and ``a = mean y - b mean x``;
    when every ``x`` is equal the slope is 0 and the line is the mean of ``y``.

    Example:
        >>> ols_line([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
        (1.0, 2.0)
        >>> ols_line([1.0, 1.0], [0.25, 0.75])
        (0.5, 0.0)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0 or x.size != y.size:
        raise ValidationError(f"ols_line: expected x and y of one positive length, got {x.size}")
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if sxx <= 1e-15 * max(1.0, float(x @ x)):
        return float(y.mean()), 0.0
    slope = float(dx @ (y - y.mean())) / sxx
    return float(y.mean() - slope * x.mean()), slope


def shift_group(dataset: str, role: str, tags: Mapping[str, Any] | None = None) -> str:
    """The shift a labelled dataset belongs to when shifts are left out one at a time.

    Every severity of one corruption is one shift; every other dataset is its own.

    Example:
        >>> shift_group("world/corrupt/fog/3", "corrupt", {"corruption": "fog", "severity": 3})
        'world/corrupt/fog'
        >>> shift_group("world/sketch", "sketch")
        'world/sketch'
    """
    tags = tags or {}
    corruption = tags.get("corruption")
    if role in ("corrupt", "corrupt_bar") and corruption is not None:
        return f"{corrupt_group(dataset, tags)}/{corruption}"
    return dataset


def _clip(v: Any) -> Any:
    return np.clip(v, 0.0, 1.0)


@dataclass(frozen=True)
class Calibration:
    """One predictor calibrated for one model (see :func:`calibrate`).

    Attributes:
        fit: whether a line is fitted (else the predictor is used as it is).
        intercept, slope: the line fitted on every labelled dataset (0 and 1 without a fit).
        loo_mae: expected error, the leave-one-shift-out mean absolute error.
        group_errors: each shift's mean absolute error when it was left out.
        residuals: ``R_i`` of every labelled dataset (its left-out fit's absolute error).
        loo_lines: ``(intercept, slope)`` of the fit that left dataset ``i``'s shift out.
        n_datasets, n_shifts: labelled datasets and shifts the calibration used.
        alpha: the interval's level is ``1 - alpha``.
    """

    fit: bool
    intercept: float
    slope: float
    loo_mae: float
    group_errors: Mapping[str, float]
    residuals: np.ndarray
    loo_lines: np.ndarray
    n_datasets: int
    n_shifts: int
    alpha: float

    def predict(self, x: float) -> tuple[float, float, float]:
        """Estimate and jackknife+ interval ``(estimate, low, high)`` at predictor value ``x``.

        Example:
            >>> c = calibrate([0.1, 0.2, 0.3, 0.4], [0.3, 0.4, 0.5, 0.6], ["a", "b", "c", "d"])
            >>> [round(v, 6) for v in c.predict(0.25)]
            [0.45, 0.0, 1.0]
        """
        x = float(x)
        if not math.isfinite(x):
            return math.nan, math.nan, math.nan
        estimate = float(_clip(self.intercept + self.slope * x))
        m = _clip(self.loo_lines[:, 0] + self.loo_lines[:, 1] * x)
        n = len(self.residuals)
        k_low = math.floor(self.alpha * (n + 1) + 1e-9)
        k_high = math.ceil((1 - self.alpha) * (n + 1) - 1e-9)
        low = float(np.sort(m - self.residuals)[k_low - 1]) if k_low >= 1 else 0.0
        high = float(np.sort(m + self.residuals)[k_high - 1]) if k_high <= n else 1.0
        low, high = float(_clip(low)), float(_clip(high))
        return estimate, min(low, estimate), max(high, estimate)


def calibrate(
    x: Any,
    y: Any,
    groups: Sequence[str],
    *,
    fit: bool = True,
    alpha: float = 0.1,
    min_shifts: int = 3,
) -> Calibration:
    """Calibrate one predictor for one model on its labelled shifted datasets.

    See the module's docstring for the formulas: the least-squares line ``y = a + b x`` (or
    the identity when ``fit`` is False), the leave-one-shift-out expected error and the
    jackknife+ interval at level ``1 - alpha``.

    Args:
        x: the predictor's value on each labelled dataset.
        y: the model's true accuracy on each.
        groups: each dataset's shift (:func:`shift_group`); a group is left out at a time.
        fit: fit the line (else use ``x`` as the estimate).
        alpha: the interval's level is ``1 - alpha``.
        min_shifts: the fewest shifts a calibration needs (at least 3 for a line: 2 remain
            when one is left out).

    Raises:
        ValidationError: lengths differ, values are not finite, or fewer than ``min_shifts``
            shifts.

    Example:
        >>> # y = 0.2 + 0.5 x exactly: every left-out prediction is right
        >>> c = calibrate([0.2, 0.4, 0.6, 0.8], [0.3, 0.4, 0.5, 0.6], ["a", "b", "c", "d"])
        >>> round(c.intercept, 6), round(c.slope, 6), round(c.loo_mae, 6)
        (0.2, 0.5, 0.0)
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    g = np.asarray([str(v) for v in groups])
    if not (x.size == y.size == g.size):
        raise ValidationError(
            f"calibrate: x, y and groups differ in length ({x.size}, {y.size}, {g.size})"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValidationError("calibrate: x and y must be finite")
    if not 0 < alpha < 1:
        raise ValidationError(f"calibrate: alpha must be in (0, 1), got {alpha}")
    names = list(dict.fromkeys(g.tolist()))
    if len(names) < max(1, min_shifts):
        raise ValidationError(
            f"calibrate: {len(names)} labelled shift(s); at least {max(1, min_shifts)} are needed"
        )
    a, b = ols_line(x, y) if fit else (0.0, 1.0)
    lines = np.zeros((x.size, 2))
    errors: dict[str, float] = {}
    residuals = np.zeros(x.size)
    for name in names:
        out = g == name
        la, lb = ols_line(x[~out], y[~out]) if fit else (0.0, 1.0)
        lines[out] = (la, lb)
        residuals[out] = np.abs(y[out] - _clip(la + lb * x[out]))
        errors[name] = float(residuals[out].mean())
    return Calibration(
        fit=fit,
        intercept=a,
        slope=b,
        loo_mae=float(np.mean(list(errors.values()))),
        group_errors=errors,
        residuals=residuals,
        loo_lines=lines,
        n_datasets=int(x.size),
        n_shifts=len(names),
        alpha=float(alpha),
    )


def _calibrations(
    cube: pd.DataFrame,
    target: str,
    groups: Mapping[str, str],
    predictors: Sequence[Predictor],
    alpha: float,
    min_shifts: int,
) -> dict[tuple[str, str], Calibration]:
    """Every (model, predictor) that has enough labelled shifts, calibrated."""
    if not isinstance(cube, pd.DataFrame) or cube.index.names != ["dataset", "model"]:
        raise ValidationError(
            "cube: expected a DataFrame indexed by (dataset, model), one column per predictor"
        )
    if target not in cube.columns:
        raise ValidationError(f"cube: no true-accuracy column {target!r}")
    labelled = cube[cube.index.get_level_values("dataset").isin(list(groups))]
    out: dict[tuple[str, str], Calibration] = {}
    for model, rows in labelled.groupby(level="model", sort=False):
        rows = rows.droplevel("model")
        for p in predictors:
            if p.column not in rows.columns:
                continue
            ok = rows[[p.column, target]].apply(pd.to_numeric, errors="coerce")
            ok = ok[np.isfinite(ok).all(axis=1)]
            shifts = [groups[d] for d in ok.index]
            if len(set(shifts)) < max(1, min_shifts):
                continue
            out[(str(model), p.name)] = calibrate(
                ok[p.column], ok[target], shifts, fit=p.fit, alpha=alpha, min_shifts=min_shifts
            )
    return out


def predictor_reliability(
    cube: pd.DataFrame,
    target: str,
    groups: Mapping[str, str],
    predictors: Sequence[Predictor],
    min_shifts: int = 3,
) -> pd.DataFrame:
    """How well each predictor estimated each model's accuracy on the labelled shifts.

    Args:
        cube: indexed by (dataset, model); one column per predictor (``Predictor.column``)
            and the true accuracy ``target``.
        target: the true-accuracy column.
        groups: ``{labelled shifted dataset: its shift}`` (:func:`shift_group`); only these
            datasets calibrate.
        predictors: the predictors.
        min_shifts: the fewest shifts a calibration needs.

    Returns:
        One row per (model, predictor) with enough shifts: columns
        :data:`RELIABILITY_COLUMNS` (``loo_mae`` is the expected error).

    Example:
        >>> idx = pd.MultiIndex.from_product([["s1", "s2", "s3"], ["m"]],
        ...                                  names=["dataset", "model"])
        >>> cube = pd.DataFrame({"ac": [0.9, 0.7, 0.5], "acc": [0.8, 0.6, 0.4]}, index=idx)
        >>> groups = {"s1": "s1", "s2": "s2", "s3": "s3"}
        >>> t = predictor_reliability(cube, "acc", groups, [Predictor("fit", "ac"),
        ...                           Predictor("as is", "ac", fit=False)])
        >>> t[["predictor", "loo_mae"]].round(6).values.tolist()
        [['fit', 0.0], ['as is', 0.1]]
    """
    cals = _calibrations(cube, target, groups, predictors, 0.1, min_shifts)
    rows = [
        [m, p, c.loo_mae, c.n_datasets, c.n_shifts, c.slope, c.intercept]
        for (m, p), c in cals.items()
    ]
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


def estimate_accuracy(
    cube: pd.DataFrame,
    target: str,
    groups: Mapping[str, str],
    datasets: Sequence[str],
    predictors: Sequence[Predictor],
    alpha: float = 0.1,
    min_shifts: int = 3,
) -> pd.DataFrame:
    """Each model's estimated accuracy on each unlabelled dataset, from every predictor.

    Args:
        cube, target, groups, predictors, min_shifts: as in :func:`predictor_reliability`.
        datasets: the unlabelled datasets to estimate (rows of ``cube`` with the predictors'
            values; their accuracy is never read).
        alpha: the interval's level is ``1 - alpha``.

    Returns:
        One row per (model, unlabelled dataset, predictor) where the predictor has a value
        there and a calibration: columns :data:`ESTIMATE_COLUMNS` (``value`` is the
        predictor's value on the dataset, ``estimate`` the accuracy estimate, ``low``/``high``
        its interval, ``loo_mae`` its expected error).

    Example:
        >>> idx = pd.MultiIndex.from_product([["s1", "s2", "s3", "u"], ["m"]],
        ...                                  names=["dataset", "model"])
        >>> cube = pd.DataFrame({"ac": [0.9, 0.7, 0.5, 0.6],
        ...                      "acc": [0.8, 0.6, 0.4, np.nan]}, index=idx)
        >>> t = estimate_accuracy(cube, "acc", {"s1": "s1", "s2": "s2", "s3": "s3"}, ["u"],
        ...                       [Predictor("confidence", "ac")])
        >>> t[["dataset", "predictor", "estimate"]].round(6).values.tolist()
        [['u', 'confidence', 0.5]]
    """
    cals = _calibrations(cube, target, groups, predictors, alpha, min_shifts)
    by_name = {p.name: p for p in predictors}
    rows = []
    present = set(cube.index.get_level_values("dataset"))
    for d in (d for d in datasets if d in present):
        values = cube.xs(d, level="dataset")
        for (model, name), c in cals.items():
            col = by_name[name].column
            if model not in values.index or col not in values.columns:
                continue
            x = pd.to_numeric(pd.Series([values.at[model, col]]), errors="coerce").iloc[0]
            if not np.isfinite(x):
                continue
            est, low, high = c.predict(float(x))
            fit = [c.loo_mae, c.n_datasets, c.n_shifts, c.slope, c.intercept]
            rows.append([model, d, name, float(x), est, low, high, *fit])
    return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)


def recommend(reliability: pd.DataFrame) -> str | None:
    """The predictor most reliable on the labelled shifts: lowest mean ``loo_mae`` over models.

    Only predictors calibrated for the most models compete (a predictor missing for some
    models is not compared on fewer of them). ``None`` without any calibration.

    Example:
        >>> t = pd.DataFrame({"model": ["a", "b", "a"], "predictor": ["p", "p", "q"],
        ...                   "loo_mae": [0.05, 0.07, 0.01]})
        >>> recommend(t)  # q is lower but known for one model only
        'p'
    """
    if reliability is None or reliability.empty:
        return None
    g = reliability.groupby("predictor", sort=False)["loo_mae"].agg(["mean", "size"])
    g = g[g["size"] == g["size"].max()]
    return str(g["mean"].idxmin())
