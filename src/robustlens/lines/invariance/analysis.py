"""Model-centric and dataset-centric analysis of label-free measures vs OOD accuracy.

Reference: W. Deng, S. Gould, L. Zheng, "On the Strong Correlation Between Model Invariance
and Generalization", NeurIPS 2022. *Model-centric*: for one shifted test set, across models,
how well does a label-free measure (EI, confidence, ATC ...) rank the models by their true
accuracy on that set? *Dataset-centric*: for one model, across shifted test sets, how well does
the measure track the model's accuracy?

Everything here reads the long results table of the store (``store.results()``: columns model,
dataset, measure, name, value) and, for cross-model agreement, the per-sample parquet files of a
study's output directory. Nothing runs a model.

Dataset roles (``id``, ``v2``, ``corrupt``, ``sketch``, ``rendition``, ``natural`` ...) come from
:mod:`robustlens.roles`: every function takes a ``roles`` mapping, ``{dataset name: role}`` or a
study's recorded ``{dataset name: {"role": role, ...}}`` (``StudyResult.dataset_roles``,
``ReportContext.datasets``), and infers the role of a dataset it lacks from its name
(:func:`robustlens.roles.role_from_name`).

Predictors are named ``"measure.name"`` (``"invariance.ei_rotation"``). A predictor measured on
no shifted set but on the ``id`` set (the clustering indicators, computed on clean validation
features) is a model-level number: its ``id`` value is used for every shifted set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from robustlens.analysis.correlation import correlation_table
from robustlens.errors import ValidationError
from robustlens.lines.invariance.predictors import direct_predictor_mae, leave_one_model_out
from robustlens.metrics.label_free import agreement
from robustlens.roles import SHIFTED_ROLES, dataset_roles

__all__ = [
    "CORRUPT_MEAN",
    "DEFAULT_DIRECT",
    "DEFAULT_PREDICTORS",
    "DEFAULT_REGRESSION",
    "PREDICTOR_LABELS",
    "TARGET",
    "CorrelationOptions",
    "agreement_matrix",
    "agreement_scores",
    "best_id_model",
    "dataset_centric",
    "family_means",
    "model_centric",
    "ood_predictor_mae",
    "predictor_label",
    "results_cube",
    "shift_families",
]

#: the true accuracy every predictor is compared with
TARGET = "accuracy.accuracy"
#: dataset name of the summary over corrupted sets (mean over types and severities)
CORRUPT_MEAN = "corrupt (mean)"
DEFAULT_PREDICTORS = (
    "invariance.ei_rotation",
    "invariance.ei_gray",
    "label_free.avg_confidence",
    "label_free.nuclear_norm",
    "label_free.doc",
    "label_free.atc_maxconf",
    "label_free.atc_negentropy",
)
#: scores mapped to accuracy by a leave-one-model-out linear fit
DEFAULT_REGRESSION = (
    "invariance.ei_rotation",
    "invariance.ei_gray",
    "label_free.avg_confidence",
    "label_free.nuclear_norm",
    "clustering.silhouette",
    "clustering.davies_bouldin",
    "clustering.calinski_harabasz",
)
#: predictors that already output an accuracy, compared directly
DEFAULT_DIRECT = (
    "label_free.doc",
    "label_free.atc_maxconf",
    "label_free.atc_negentropy",
    "label_free.avg_confidence",
)
_STAT_COLUMNS = ["coefficient", "p_value", "ci_low", "ci_high", "n", "significant", "shown"]


#: readable names of the predictors, for tables and plots
PREDICTOR_LABELS = {
    "invariance.ei_rotation": "EI rotation",
    "invariance.ei_gray": "EI grayscale",
    "invariance.agreement_rotation": "agreement rotation",
    "invariance.agreement_gray": "agreement grayscale",
    "label_free.avg_confidence": "avg confidence",
    "label_free.nuclear_norm": "nuclear norm",
    "label_free.doc": "DoC",
    "label_free.atc_maxconf": "ATC (max conf)",
    "label_free.atc_negentropy": "ATC (neg. entropy)",
    "clustering.silhouette": "silhouette",
    "clustering.davies_bouldin": "Davies-Bouldin",
    "clustering.calinski_harabasz": "Calinski-Harabasz",
}


def predictor_label(name: str) -> str:
    """Readable name of a ``measure.name`` predictor.

    Example:
        >>> predictor_label("invariance.ei_rotation"), predictor_label("x.y")
        ('EI rotation', 'x.y')
    """
    return PREDICTOR_LABELS.get(name, name)


# ----------------------------------------------------------------------------- roles
def shift_families(
    datasets: Iterable[str],
    roles: Mapping[str, Any] | None = None,
    shifted_roles: Sequence[str] = SHIFTED_ROLES,
) -> dict[str, list[str]]:
    """Shifted datasets grouped into families: ``corrupt (mean)`` and one per other dataset.

    The corrupt family comes first, then the other datasets in the order of
    ``shifted_roles`` (and of the given names within a role).

    Example:
        >>> shift_families(["world/val", "world/sketch", "world/v2", "world/corrupt/a/1",
        ...                 "world/corrupt/a/3"])  # doctest: +NORMALIZE_WHITESPACE
        {'corrupt (mean)': ['world/corrupt/a/1', 'world/corrupt/a/3'],
         'world/v2': ['world/v2'], 'world/sketch': ['world/sketch']}
    """
    r = dataset_roles(datasets, roles)
    shifted = [d for d in r if r[d] in shifted_roles]
    out: dict[str, list[str]] = {}
    corrupt = [d for d in shifted if r[d] == "corrupt"]
    if corrupt:
        out[CORRUPT_MEAN] = corrupt
    order = {role: i for i, role in enumerate(shifted_roles)}
    for d in sorted((d for d in shifted if r[d] != "corrupt"), key=lambda d: order[r[d]]):
        out[d] = [d]
    return out


# ----------------------------------------------------------------------------- tables
def _check_results(results: Any) -> pd.DataFrame:
    if not isinstance(results, pd.DataFrame):
        raise ValidationError(f"results: expected a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in ("model", "dataset", "measure", "name", "value") if c not in results]
    if missing:
        raise ValidationError(
            f"results: missing columns {missing}; expected the long table of store.results() "
            "(model, dataset, measure, name, value)"
        )
    return results


def results_cube(results: pd.DataFrame) -> pd.DataFrame:
    """Wide table indexed by (dataset, model), one column per ``measure.name``.

    Example:
        >>> df = pd.DataFrame([("a", "d", "invariance", "ei_gray", 0.5)],
        ...                   columns=["model", "dataset", "measure", "name", "value"])
        >>> results_cube(df).columns.tolist(), results_cube(df).index.tolist()
        (['invariance.ei_gray'], [('d', 'a')])
    """
    results = _check_results(results)
    df = results.assign(key=results["measure"] + "." + results["name"])
    return df.pivot_table(
        index=["dataset", "model"], columns="key", values="value", aggfunc="first"
    )


def _target_cube(results: pd.DataFrame, target: str) -> pd.DataFrame:
    """:func:`results_cube`, which must hold the true accuracy ``target``."""
    cube = results_cube(results)
    if target not in cube.columns:
        raise ValidationError(
            f"results hold no {target!r} values; run the study with the 'accuracy' measure"
        )
    return cube


def _available(cube: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    return [p for p in dict.fromkeys(wanted) if p in cube.columns and cube[p].notna().any()]


def _per_dataset(
    cube: pd.DataFrame,
    predictors: Sequence[str],
    roles: Mapping[str, str],
    shifted_roles: Sequence[str],
) -> pd.DataFrame:
    """Predictor values per (dataset, model); model-level predictors broadcast from ``id``."""
    out = cube.copy()
    datasets = out.index.get_level_values("dataset")
    shifted = np.array([roles.get(d) in shifted_roles for d in datasets])
    ids = [d for d in dict.fromkeys(datasets) if roles.get(d) == "id"]
    for p in predictors:
        if out.loc[shifted, p].notna().any() or not ids:
            continue
        per_model = out.xs(ids[0], level="dataset")[p]
        models = out.index.get_level_values("model")
        out[p] = np.where(shifted, per_model.reindex(models).to_numpy(), out[p].to_numpy())
    return out


def family_means(wide: pd.DataFrame, members: Sequence[str], columns: list[str]) -> pd.DataFrame:
    """Rows = models; values averaged over the member datasets of a family (NaNs skipped)."""
    sub = wide.loc[wide.index.get_level_values("dataset").isin(members), columns]
    return sub.groupby(level="model").mean()


@dataclass(frozen=True)
class CorrelationOptions:
    """What :func:`model_centric` and :func:`dataset_centric` correlate, and how.

    Both take these fields as keyword arguments.

    Attributes:
        predictors: ``"measure.name"`` of each label-free predictor.
        shifted_roles: roles counted as shifted sets.
        roles: ``{dataset: role}`` or a study's recorded ``{dataset: {"role": ...}}``; roles
            it lacks are inferred from the names (:func:`robustlens.roles.role_from_name`).
        target: the true-accuracy column, ``"accuracy.accuracy"``.
        methods: correlation methods, any of ``"spearman"``, ``"pearson"``, ``"kendall"``.
        alpha: significance level and CI level ``1 - alpha``.
        n_boot: bootstrap resamples (0: no CI).
        seed: bootstrap seed.
    """

    predictors: Sequence[str] = DEFAULT_PREDICTORS
    shifted_roles: Sequence[str] = SHIFTED_ROLES
    roles: Mapping[str, Any] | None = None
    target: str = TARGET
    methods: Sequence[str] = ("spearman", "pearson")
    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0


def _correlations(frame: pd.DataFrame, preds: list[str], o: CorrelationOptions) -> pd.DataFrame:
    parts = [
        correlation_table(
            frame, preds, [o.target], method=m, alpha=o.alpha, n_boot=o.n_boot, seed=o.seed
        )
        for m in o.methods
    ]
    t = pd.concat(parts, ignore_index=True).rename(columns={"x": "predictor"})
    return t.drop(columns=["y"])


def model_centric(
    results: pd.DataFrame, *, each_corrupt: bool = True, **options: Any
) -> pd.DataFrame:
    """Across models: correlation of each label-free predictor with accuracy on each shifted set.

    For every shifted dataset d (role in ``shifted_roles``), with one row per model,
    :func:`~robustlens.analysis.correlation.correlation_table` correlates the predictor's value
    on d with the model's accuracy on d (``target``), for each method (Spearman and Pearson by
    default), with a two-sided p-value and a percentile bootstrap CI at level ``1 - alpha``.
    One summary row per predictor and method has dataset ``"corrupt (mean)"``: per model, the
    mean over all corrupt datasets (types x severities) of the predictor vs the mean corrupted
    accuracy (means over the datasets a model has values for).

    Predictors absent from ``results`` (their measure was not run) are left out.

    Args:
        results: long results table (``store.results()``).
        each_corrupt: also one row per corrupt dataset (type x severity), after the summary.
        **options: the fields of :class:`CorrelationOptions` (``predictors``,
            ``shifted_roles``, ``roles``, ``target``, ``methods``, ``alpha``, ``n_boot``,
            ``seed``).

    Returns:
        Long DataFrame with columns dataset, role, predictor, method, coefficient, p_value,
        ci_low, ci_high, n (models), significant, shown; the ``corrupt (mean)`` rows first.

    Example:
        >>> rows = [(m, d, "invariance", "ei_rotation", v) for m, d, v in [
        ...     ("a", "world/sketch", .2), ("b", "world/sketch", .5), ("c", "world/sketch", .9)]]
        >>> rows += [(m, d, "accuracy", "accuracy", v) for m, d, v in [
        ...     ("a", "world/sketch", .3), ("b", "world/sketch", .4), ("c", "world/sketch", .8)]]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> t = model_centric(df, n_boot=0, methods=("spearman",))
        >>> t[["dataset", "predictor", "coefficient", "n"]].values.tolist()
        [['world/sketch', 'invariance.ei_rotation', 1.0, 3]]
    """
    o = CorrelationOptions(**options)
    cube = _target_cube(results, o.target)
    preds = _available(cube, o.predictors)
    if not preds:
        raise ValidationError(
            f"results hold none of the predictors {list(o.predictors)}; run the study with the "
            "measures that produce them (e.g. 'invariance', 'label_free')"
        )
    r = dataset_roles(cube.index.get_level_values("dataset").unique(), o.roles)
    wide = _per_dataset(cube, preds, r, o.shifted_roles)

    def correlate(members: list[str]) -> pd.DataFrame:
        frame = family_means(wide, members, [*preds, o.target])
        return _correlations(frame, preds, o)

    parts = []
    for family, members in shift_families(r, r, o.shifted_roles).items():
        parts.append(correlate(members).assign(dataset=family, role=r[members[0]]))
        if family == CORRUPT_MEAN and each_corrupt:
            parts += [correlate([d]).assign(dataset=d, role="corrupt") for d in members]
    cols = ["dataset", "role", "predictor", "method", *_STAT_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def dataset_centric(results: pd.DataFrame, model: str, **options: Any) -> pd.DataFrame:
    """For one model: correlation of each predictor with accuracy across all shifted datasets.

    The observations are the model's shifted datasets (every corruption x severity, sketch,
    rendition, v2 ...), each with the predictor's value and the true accuracy on it.
    Model-level predictors (measured on the ``id`` set only) are constant here and left out.

    Args:
        results: long results table.
        model: the model's name.
        **options: the fields of :class:`CorrelationOptions`, as in :func:`model_centric`.

    Returns:
        Long DataFrame with columns model, predictor, method, coefficient, p_value, ci_low,
        ci_high, n (datasets), significant, shown.
    """
    results = _check_results(results)
    sub = results[results["model"] == model]
    if sub.empty:
        raise ValidationError(
            f"model {model!r} has no results; models: {sorted(results['model'].unique())}"
        )
    o = CorrelationOptions(**options)
    cube = _target_cube(sub, o.target)
    r = dataset_roles(cube.index.get_level_values("dataset").unique(), o.roles)
    shifted = [d for d in r if r[d] in o.shifted_roles]
    frame = cube.xs(model, level="model").reindex(shifted)
    preds = [p for p in _available(cube, o.predictors) if frame[p].notna().any()]
    cols = ["model", "predictor", "method", *_STAT_COLUMNS]
    if not preds:
        return pd.DataFrame(columns=cols)
    t = _correlations(frame, preds, o)
    t.insert(0, "model", model)
    return t[cols]


def best_id_model(
    results: pd.DataFrame, roles: Mapping[str, Any] | None = None, target: str = TARGET
) -> str:
    """The model with the highest accuracy on the ``id`` dataset(s) (mean over them)."""
    cube = results_cube(results)
    r = dataset_roles(cube.index.get_level_values("dataset").unique(), roles)
    ids = [d for d in r if r[d] == "id"]
    if not ids or target not in cube.columns:
        raise ValidationError(
            f"no {target!r} on a dataset with role 'id'; run the accuracy measure on the "
            "validation split (or pass roles)"
        )
    acc = family_means(cube, ids, [target])[target].dropna()
    if acc.empty:
        raise ValidationError("no model has an accuracy on the 'id' dataset")
    return str(acc.idxmax())


def ood_predictor_mae(
    results: pd.DataFrame,
    regression: Sequence[str] = DEFAULT_REGRESSION,
    direct: Sequence[str] = DEFAULT_DIRECT,
    shifted_roles: Sequence[str] = SHIFTED_ROLES,
    roles: Mapping[str, Any] | None = None,
    target: str = TARGET,
    combined: bool = False,
) -> pd.DataFrame:
    """Leave-one-model-out MAE of label-free predictors of OOD accuracy, pooled over shifts.

    For every shifted dataset d separately: *regression* predictors (scores such as EI, the
    nuclear norm, a clustering indicator) are mapped to accuracy by an OLS line fitted on the
    other models (:func:`~robustlens.lines.invariance.predictors.leave_one_model_out`); *direct*
    predictors (DoC, ATC, average confidence) are already accuracies and are compared as they
    are (:func:`~robustlens.lines.invariance.predictors.direct_predictor_mae`). The absolute errors
    ``|prediction - accuracy|`` of every (model, shifted dataset) pair are pooled: ``mae`` is
    their mean, and ``mae_{role}`` the mean over the datasets of one role (so the many
    corruption sets do not hide the others). On each dataset a predictor uses the models that
    have a value; a regression needs at least 3 of them. With ``combined=True`` a regression on
    all regression predictors together is added (``"all"``; needs more models than predictors).

    Args:
        results: long results table.
        regression: ``"measure.name"`` of scores fitted to accuracy.
        direct: ``"measure.name"`` of predicted accuracies.
        shifted_roles, roles, target: as in :class:`CorrelationOptions`.
        combined: add the multi-feature regression.

    Returns:
        DataFrame sorted by ``mae`` with columns predictor, kind (``regression`` or
        ``direct``), mae, median_abs_error, max_abs_error, n (pairs), n_datasets, and one
        ``mae_{role}`` column per shifted role present.
    """
    cube = _target_cube(results, target)
    reg = _available(cube, regression)
    dirs = _available(cube, direct)
    if not reg and not dirs:
        raise ValidationError(
            f"results hold none of the predictors {[*regression, *direct]}; run the measures "
            "that produce them"
        )
    r = dataset_roles(cube.index.get_level_values("dataset").unique(), roles)
    wide = _per_dataset(cube, reg + dirs, r, shifted_roles)
    parts: list[pd.DataFrame] = []
    for d in (d for d in r if r[d] in shifted_roles):
        frame = wide.xs(d, level="dataset")
        frame = frame[frame[target].notna()]
        for p in reg:
            ok = frame[[p, target]].dropna()
            if len(ok) >= 3:
                parts.append(_tag(leave_one_model_out(ok, [p], target), "regression", d, r[d]))
        if combined and len(reg) > 1:
            ok = frame[[*reg, target]].dropna()
            if len(ok) >= 3:
                t = leave_one_model_out(ok, reg, target)
                parts.append(_tag(t[t["predictor"] == "all"], "regression", d, r[d]))
        for p in dirs:
            ok = frame[[p, target]].dropna()
            if len(ok):
                parts.append(_tag(direct_predictor_mae(ok, [p], target), "direct", d, r[d]))
    if not parts:
        return pd.DataFrame(
            columns=[
                "predictor",
                "kind",
                "mae",
                "median_abs_error",
                "max_abs_error",
                "n",
                "n_datasets",
            ]
        )
    long = pd.concat(parts, ignore_index=True)
    g = long.groupby(["predictor", "kind"], sort=False)
    table = (
        g["abs_error"]
        .agg(mae="mean", median_abs_error="median", max_abs_error="max", n="size")
        .reset_index()
    )
    table["n_datasets"] = g["dataset"].nunique().to_numpy()
    by_role = long.pivot_table(
        index=["predictor", "kind"], columns="role", values="abs_error", aggfunc="mean"
    )
    for role in (x for x in shifted_roles if x in by_role.columns):
        table[f"mae_{role}"] = (
            by_role[role].reindex(pd.MultiIndex.from_frame(table[["predictor", "kind"]])).to_numpy()
        )
    return table.sort_values("mae", kind="stable", ignore_index=True)


def _tag(t: pd.DataFrame, kind: str, dataset: str, role: str) -> pd.DataFrame:
    return t.assign(kind=kind, dataset=dataset, role=role)


# ----------------------------------------------------------------------------- agreement
def _read_predictions(
    per_sample_dir: str | Path, dataset: str, models: Sequence[str] | None
) -> dict[str, pd.Series]:
    root = Path(per_sample_dir)
    files = sorted(root.glob("*.parquet")) if root.is_dir() else []
    if not files:
        raise ValidationError(
            f"no per-sample parquet files in {root}; run a study (its output_dir/per_sample)"
        )
    out: dict[str, pd.Series] = {}
    for f in files:
        names = pq.read_schema(f).names
        if "prediction" not in names or "sample_id" not in names:
            raise ValidationError(
                f"{f.name}: no 'prediction'/'sample_id' columns; run the study with the "
                "'accuracy' measure, which writes the per-sample predictions"
            )
        df = pd.read_parquet(
            f,
            columns=["model", "dataset", "sample_id", "prediction"],
            filters=[("dataset", "==", dataset)],
        )
        if df.empty:
            continue
        name = str(df["model"].iloc[0])
        if models is not None and name not in models:
            continue
        out[name] = df.set_index("sample_id")["prediction"]
    if len(out) < 2:
        raise ValidationError(
            f"agreement needs per-sample predictions of at least 2 models on dataset "
            f"{dataset!r}; found {sorted(out)} in {root}"
        )
    if models is not None:
        out = {m: out[m] for m in models if m in out}
    return out


def agreement_matrix(
    per_sample_dir: str | Path, dataset: str, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Pairwise top-1 agreement of models on one dataset, from the per-sample parquet files.

    ``A[a, b] = (1/N) sum_n [pred_a(x_n) == pred_b(x_n)]`` over the samples both models have
    (aligned by ``sample_id``), with :func:`robustlens.metrics.label_free.agreement`.
    Agreement needs no labels and tracks accuracy (Jiang et al., ICLR 2022; Baek et al.,
    "Agreement-on-the-Line", NeurIPS 2022).

    Args:
        per_sample_dir: the study's ``output/per_sample`` directory (one parquet per model,
            column ``prediction`` written by the ``accuracy`` measure).
        dataset: dataset name, e.g. ``"world/sketch"``.
        models: models to include (default: every model with predictions on ``dataset``).

    Returns:
        Square DataFrame indexed and columned by model name, 1.0 on the diagonal.
    """
    preds = _read_predictions(per_sample_dir, dataset, models)
    names = list(preds)
    mat = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            common = preds[a].index.intersection(preds[names[j]].index)
            value = (
                agreement(preds[a].loc[common].to_numpy(), preds[names[j]].loc[common].to_numpy())
                if len(common)
                else np.nan
            )
            mat[i, j] = mat[j, i] = value
    return pd.DataFrame(mat, index=names, columns=names)


def agreement_scores(
    per_sample_dir: str | Path, datasets: Iterable[str], models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Each model's mean agreement with the other models, per dataset, as results rows.

    The rows (measure ``agreement``, name ``mean_agreement``) have the format of
    ``store.results()``, so ``pd.concat([results, agreement_scores(...)])`` lets
    :func:`model_centric` and :func:`ood_predictor_mae` use ``"agreement.mean_agreement"``.
    """
    rows = []
    for d in datasets:
        try:
            mat = agreement_matrix(per_sample_dir, d, models)
        except ValidationError:
            continue
        off = mat.to_numpy().copy()
        np.fill_diagonal(off, np.nan)
        for m, v in zip(mat.index, np.nanmean(off, axis=1), strict=True):
            rows.append(
                {
                    "model": m,
                    "dataset": d,
                    "measure": "agreement",
                    "name": "mean_agreement",
                    "value": float(v),
                }
            )
    return pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
