"""Label-free OOD accuracy predictors across models, evaluated leave-one-model-out.

Two kinds of predictors are compared on the same footing (mean absolute error against the true
OOD accuracy of each model):

- *regressed* predictors: a label-free measure (effective invariance, average confidence,
  a clustering indicator, the nuclear norm ...) mapped to accuracy by ordinary least squares
  fitted on the *other* models (:func:`leave_one_model_out`), as in the model-centric analysis
  of Deng et al., NeurIPS 2022;
- *direct* predictors that already output an accuracy (ATC, DoC, average confidence)
  (:func:`direct_predictor_mae`).

Both return the same long format, so ``pd.concat([...])`` gives one comparison table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import ValidationError

__all__ = ["direct_predictor_mae", "leave_one_model_out"]

ALL_FEATURES = "all"
_COLUMNS = ["predictor", "model", "target", "prediction", "abs_error", "mae"]


def _check_columns(df: Any, cols: list[str], name: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
    if isinstance(cols, str):
        raise ValidationError(f"{name}: expected a list of column names, got the string {cols!r}")
    if len(cols) == 0:
        raise ValidationError(f"{name}: expected at least one column name, got none")
    if len(set(cols)) != len(cols):
        raise ValidationError(f"{name}: column names must be unique, got {list(cols)}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{name}: columns {missing} not in the DataFrame; available: {list(df.columns)}"
        )


def _numeric(df: pd.DataFrame, col: str, model_ids: np.ndarray) -> np.ndarray:
    """A column as float64; NaN, infinite or non-numeric values are an error naming the models."""
    try:
        v = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"column {col!r}: expected numbers ({exc})") from exc
    bad = ~np.isfinite(v)
    if bad.any():
        raise ValidationError(
            f"column {col!r}: missing or infinite values for models {model_ids[bad].tolist()}; "
            "drop those models (df.dropna) or fill the values first"
        )
    return v


def _model_ids(df: pd.DataFrame, model_col: str | None) -> np.ndarray:
    ids = df.index.to_numpy() if model_col is None else df[model_col].to_numpy()
    if pd.Series(ids).duplicated().any():
        where = "the index" if model_col is None else f"column {model_col!r}"
        dups = sorted({str(i) for i in pd.Series(ids)[pd.Series(ids).duplicated()]})
        raise ValidationError(f"{where}: expected one row per model, got duplicated models {dups}")
    return ids


def _long(predictor: str, ids: np.ndarray, target: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    abs_error = np.abs(pred - target)
    return pd.DataFrame(
        {
            "predictor": predictor,
            "model": ids,
            "target": target,
            "prediction": pred,
            "abs_error": abs_error,
            "mae": float(abs_error.mean()),
        },
        columns=_COLUMNS,
    )


def leave_one_model_out(
    df: pd.DataFrame,
    feature_cols: list[str],
    target_col: str,
    model_col: str | None = None,
) -> pd.DataFrame:
    """Leave-one-model-out evaluation of OLS accuracy predictors built on label-free measures.

    For every predictor and every model m: fit ordinary least squares ``target ~ a + b . f``
    (scikit-learn ``LinearRegression``) on all models except m, predict m's target from its
    features, and record ``|prediction - target|``. The MAE of a predictor is the mean of these
    errors over models. There is one predictor per feature column (named after it) and, when
    there are two or more feature columns, one on all of them together named ``"all"``
    (underdetermined when the models are fewer than the features + 2; scikit-learn then
    returns the minimum-norm solution). Predictions are not clipped to [0, 1].

    Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model Invariance
    and Generalization", NeurIPS 2022 (linear fits of OOD accuracy on EI across models).

    Args:
        df: one row per model; numeric feature and target columns without missing values.
        feature_cols: label-free measures to regress on (e.g. ``["ei_rotation", "nuclear_norm"]``).
        target_col: the true OOD accuracy column.
        model_col: column naming the models; the DataFrame index is used when None.

    Returns:
        Long-format DataFrame, one row per (predictor, model), with columns predictor, model,
        target, prediction, abs_error and mae (the predictor's mean absolute error, repeated on
        each of its rows). ``out.groupby("predictor", sort=False)["mae"].first()`` gives the
        summary.

    Example:
        >>> df = pd.DataFrame({"ei": [0.2, 0.4, 0.6, 0.8], "acc": [0.3, 0.4, 0.5, 0.6]},
        ...                   index=["m1", "m2", "m3", "m4"])
        >>> out = leave_one_model_out(df, ["ei"], "acc")  # acc = 0.2 + 0.5 * ei exactly
        >>> out["model"].tolist(), out["prediction"].round(4).tolist()
        (['m1', 'm2', 'm3', 'm4'], [0.3, 0.4, 0.5, 0.6])
        >>> round(float(out["mae"].iloc[0]), 6)
        0.0
    """
    from sklearn.linear_model import LinearRegression  # lazy: scikit-learn costs ~0.5 s to import

    feature_cols = list(feature_cols) if not isinstance(feature_cols, str) else feature_cols
    _check_columns(df, feature_cols, "feature_cols")
    _check_columns(df, [target_col], "target_col")
    if model_col is not None:
        _check_columns(df, [model_col], "model_col")
    if ALL_FEATURES in feature_cols and len(feature_cols) > 1:
        raise ValidationError(
            f"feature_cols: {ALL_FEATURES!r} is reserved for the predictor on all features; "
            "rename that column"
        )
    if target_col in feature_cols:
        raise ValidationError(f"feature_cols: contains the target column {target_col!r}")
    ids = _model_ids(df, model_col)
    n = len(df)
    if n < 3:
        raise ValidationError(
            f"df: leave-one-model-out needs at least 3 models (2 to fit a line), got {n}"
        )
    target = _numeric(df, target_col, ids)
    features = np.column_stack([_numeric(df, c, ids) for c in feature_cols])

    predictors: list[tuple[str, list[int]]] = [(c, [j]) for j, c in enumerate(feature_cols)]
    if len(feature_cols) > 1:
        predictors.append((ALL_FEATURES, list(range(len(feature_cols)))))

    parts = []
    for name, cols in predictors:
        x = features[:, cols]
        pred = np.empty(n, dtype=np.float64)
        for i in range(n):
            train = np.arange(n) != i
            model = LinearRegression().fit(x[train], target[train])
            pred[i] = float(model.predict(x[i : i + 1])[0])
        parts.append(_long(name, ids, target, pred))
    return pd.concat(parts, ignore_index=True)


def direct_predictor_mae(
    df: pd.DataFrame,
    prediction_cols: list[str],
    target_col: str,
    model_col: str | None = None,
) -> pd.DataFrame:
    """Mean absolute error of predictors that already output an accuracy (no regression).

    For a column ``c`` of predicted accuracies (ATC, DoC, average confidence ...),
    ``MAE_c = (1/M) sum_m |c_m - target_m|`` over the M models. Prediction and target must be on
    the same scale (both fractions, or both percent).

    Reference: S. Garg et al., "Leveraging Unlabeled Data to Predict Out-of-Distribution
    Performance", ICLR 2022 (ATC, compared with DoC and average confidence by their MAE).

    Args:
        df: one row per model; numeric prediction and target columns without missing values.
        prediction_cols: columns holding predicted accuracies.
        target_col: the true OOD accuracy column.
        model_col: column naming the models; the DataFrame index is used when None.

    Returns:
        Long-format DataFrame in the format of :func:`leave_one_model_out`: columns predictor
        (the column name), model, target, prediction, abs_error, mae.

    Example:
        >>> df = pd.DataFrame({"atc": [0.5, 0.7], "doc": [0.6, 0.9], "acc": [0.5, 0.8]},
        ...                   index=["m1", "m2"])
        >>> out = direct_predictor_mae(df, ["atc", "doc"], "acc")
        >>> out.groupby("predictor", sort=False)["mae"].first().round(4).to_dict()
        {'atc': 0.05, 'doc': 0.1}
    """
    prediction_cols = (
        list(prediction_cols) if not isinstance(prediction_cols, str) else prediction_cols
    )
    _check_columns(df, prediction_cols, "prediction_cols")
    _check_columns(df, [target_col], "target_col")
    if model_col is not None:
        _check_columns(df, [model_col], "model_col")
    ids = _model_ids(df, model_col)
    target = _numeric(df, target_col, ids)
    parts = [_long(c, ids, target, _numeric(df, c, ids)) for c in prediction_cols]
    return pd.concat(parts, ignore_index=True)
