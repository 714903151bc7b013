"""Does each research line's measure recover the cause the synthetic world planted?

Pure functions over a study's long results table (columns model, dataset, measure, name,
value), the models' configs (``{model: config}``, whose planted causes
:func:`~robustlens.lines.validity.causes.planted_causes` reads) and the dataset roles. Other
lines' numbers are read by ``(measure, value name)`` from the results table, never by importing
the line; the ground truth comes from the ``ground_truth`` measure of this line
(:mod:`robustlens.lines.validity.measure`), which reads labels and logits only.

:func:`validity_frame` returns one row per check (:data:`ROW_COLUMNS`):

=====  ==================================================================================
seed   rows
=====  ==================================================================================
000    each clustering indicator (on the clean ``id`` set) vs mean corruption accuracy
001    EI rotation / grayscale (``id``) vs accuracy under that view; EI vs OOD accuracy
       model-centric (per model, the mean over the shift families: all ``corrupt`` sets as
       one, all ``corrupt_bar`` sets as one, every other shifted set alone) and
       dataset-centric (per model across its shifted sets; the median over models)
002    shape bias vs planted texture randomisation (the cause) and vs texture reliance (the
       same decisions: a consistency check); spectral bias and critical-band peak noise
       sensitivity vs corruption augmentation (ordinal none 0 < noise = blur 1 < mixed 2);
       the spread over the zoo of each of the four generalization dimensions
003    spurious score vs measured mark reliance and vs planted mark rate; no flagged
       component at mark rate 0; SpuFix on held-out images (lower mark reliance at no more
       than one point of clean accuracy)
004    each natural shift's baseline R² (logit axes, over the standard models); the mean ER of
       the generated-data models with a bootstrap interval
=====  ==================================================================================

Each check against a planted cause (texture randomisation, corruption augmentation, mark rate)
comes twice: across the whole zoo, where the other causes and the architectures vary too, and
over the cause's *one-factor sweep* (:func:`sweep_models`): the models whose other planted
causes sit at the zoo's base recipe, as in a controlled experiment. The sweep row's note gives
each swept model's change from its own architecture's base model (a paired comparison that
architecture cannot confound).

The rule (issue 18): a check where a monotone relation is expected is *recovered* when
Spearman's rho has the expected sign, ``|rho| >= threshold`` (0.7) and ``p < alpha`` (0.05).
The other checks state their own rule in ``expected``. A check that cannot be computed
(fewer than 3 models, a measure not run, a cause constant over the zoo) is ``n/a`` with the
reason in ``note``. Nothing here is tuned to its result: the rules and the measures' options
are fixed before the numbers are seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import correlate
from robustlens.analysis.generalization import DIMENSIONS, generalization_table
from robustlens.errors import FitError, RobustlensError, ValidationError
from robustlens.formatting import number, p_eq, signed
from robustlens.lines.validity.causes import cause_table
from robustlens.metrics.effective_robustness import (
    Baseline,
    effective_robustness,
    fit_baseline,
    logit,
)
from robustlens.roles import NATURAL_SHIFT_ROLES, SHIFTED_ROLES, dataset_roles

__all__ = [
    "CLUSTERING_SIGNS",
    "GT",
    "ROW_COLUMNS",
    "ValidityOptions",
    "attainable_rho",
    "baseline_models",
    "dataset_centric_rhos",
    "ei_family_frame",
    "evidence",
    "model_values",
    "sweep_models",
    "validity_frame",
]

#: the columns of :func:`validity_frame`, in order
ROW_COLUMNS = (
    "seed",
    "line",
    "check",
    "cause",
    "measure",
    "expected",
    "statistic",
    "value",
    "p_value",
    "ci_low",
    "ci_high",
    "n",
    "recovered",
    "note",
)
#: the ground-truth measure of this line
GT = "ground_truth"
#: the clustering indicators and the sign of their expected correlation with robustness
CLUSTERING_SIGNS = {
    "silhouette": 1,
    "davies_bouldin": -1,
    "calinski_harabasz": 1,
    "nmi": 1,
    "ari": 1,
    "purity": 1,
    "cluster_accuracy": 1,
}
_CORRUPT_FAMILIES = ("corrupt", "corrupt_bar")
#: the planted treatments a one-factor sweep holds at the base recipe (capacity aside)
TREATMENTS = (
    "mark_rate",
    "texture_randomization",
    "rotation_augmentation",
    "grayscale_augmentation",
    "corruption_level",
    "generated_fraction",
)
_NAN = float("nan")
_SPEARMAN = "Spearman rho"


@dataclass(frozen=True)
class ValidityOptions:
    """The fixed rules of the checks.

    Attributes:
        alpha: significance level, and the bootstrap intervals' level ``1 - alpha``.
        n_boot: bootstrap resamples (0: no intervals).
        seed: bootstrap seed.
        threshold: the ``|rho|`` a monotone relation must reach.
        min_r2: the R² a natural-shift baseline must reach (with its slope's ``p < alpha``).
        min_spread: the range (max - min over the zoo) a generalization dimension must reach.
        max_accuracy_cost: the clean-accuracy loss SpuFix may cost (one point).
    """

    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0
    threshold: float = 0.7
    min_r2: float = 0.5
    min_spread: float = 0.10
    max_accuracy_cost: float = 0.01


# ----------------------------------------------------------------------------- reading
def model_values(
    results: pd.DataFrame, measure: str, name: str, datasets: Sequence[str] | None = None
) -> pd.Series:
    """One number per model: ``measure.name``, the mean over ``datasets`` (all when None).

    Example:
        >>> df = pd.DataFrame([("a", "d1", "m", "x", 1.0), ("a", "d2", "m", "x", 3.0)],
        ...                   columns=["model", "dataset", "measure", "name", "value"])
        >>> model_values(df, "m", "x").to_dict(), model_values(df, "m", "x", ["d1"]).to_dict()
        ({'a': 2.0}, {'a': 1.0})
    """
    df = results[(results["measure"] == measure) & (results["name"] == name)]
    if datasets is not None:
        df = df[df["dataset"].isin(list(datasets))]
    values = pd.to_numeric(df["value"], errors="coerce")
    return values.groupby(df["model"]).mean().rename(f"{measure}.{name}")


def _roles(results: pd.DataFrame, roles: Mapping[str, Any] | None) -> dict[str, str]:
    names = [d for d in dict.fromkeys(results["dataset"].astype(str)) if d != "*"]
    return dataset_roles(names, roles)


def _with_role(r: Mapping[str, str], *roles: str) -> list[str]:
    return [d for d, role in r.items() if role in roles]


def baseline_models(causes: pd.DataFrame) -> list[str]:
    """The standard models a natural-shift baseline is fitted on: no generated data, no
    texture randomisation and no corruption augmentation (rotation, grayscale and the mark
    rate may vary).

    Example:
        >>> t = pd.DataFrame({"generated_fraction": [0, 0.5, 0], "texture_randomization":
        ...                   [0, 0, 1], "corruption_level": [0, 0, 0]}, index=["a", "g", "t"])
        >>> baseline_models(t)
        ['a']
    """
    if causes.empty:
        return []
    ok = (
        (causes["generated_fraction"].fillna(0) == 0)
        & (causes["texture_randomization"].fillna(0) == 0)
        & (causes["corruption_level"].fillna(0) == 0)
    )
    return [str(m) for m in causes.index[ok]]


def _mode(values: pd.Series) -> Any:
    counts = values.value_counts(dropna=False)
    return counts.index[0] if len(counts) else None


def sweep_models(causes: pd.DataFrame, cause: str) -> list[str]:
    """The one-factor sweep of ``cause``: the models whose every other planted treatment
    (:data:`TREATMENTS`) is at the zoo's base value (its most common one) and whose capacity
    (width, epochs) is their architecture's most common one. ``cause`` itself varies freely.

    Example:
        >>> t = pd.DataFrame({"mark_rate": [0, 0, .5, 1, 0], "texture_randomization": [0, 0,
        ...     0, 0, 1], "rotation_augmentation": 0, "grayscale_augmentation": 0,
        ...     "corruption_level": 0, "generated_fraction": 0, "arch": "cnn", "width": [8, 8,
        ...     8, 8, 8], "epochs": [4, 4, 4, 4, 4]}, index=list("abcde"))
        >>> sweep_models(t, "mark_rate"), sweep_models(t, "texture_randomization")
        (['a', 'b', 'c', 'd'], ['a', 'b', 'e'])
    """
    if causes.empty or cause not in causes:
        return []
    keep = pd.Series(True, index=causes.index)
    for other in TREATMENTS:
        if other != cause and other in causes:
            col = causes[other]
            base = _mode(col)
            keep &= col.isna() if pd.isna(base) else (col == base)
    if {"arch", "width", "epochs"} <= set(causes.columns):
        cap = causes[["width", "epochs"]].astype(float).apply(tuple, axis=1)
        modal = cap.groupby(causes["arch"]).agg(_mode)
        keep &= cap == causes["arch"].map(modal)
    return [str(m) for m in causes.index[keep.to_numpy()]]


def _paired_changes(values: pd.Series, causes: pd.DataFrame, sweep: Sequence[str], cause: str):
    """``{model: value - value of its architecture's base model}`` for the swept models (the
    base: the same architecture in the sweep with the cause at its base value)."""
    if "arch" not in causes:
        return {}
    sub = causes.loc[[m for m in sweep if m in values.index and np.isfinite(values[m])]]
    base_value = _mode(causes[cause])
    out = {}
    for _, group in sub.groupby("arch"):
        bases = group.index[group[cause] == base_value]
        if not len(bases):
            continue
        ref = float(values[bases].mean())
        for m in group.index[group[cause] != base_value]:
            out[str(m)] = float(values[m]) - ref
    return out


def _sweep_row(
    base: dict[str, Any],
    x: pd.Series | None,
    causes: pd.DataFrame,
    cause: str,
    sign: int,
    o: ValidityOptions,
    cause_column: str | None = None,
) -> dict[str, Any]:
    """``base``'s check over the one-factor sweep of ``cause``, with the paired changes."""
    column = cause_column or cause
    sweep = sweep_models(causes, column)
    base = {**base, "check": f"{base['check']}, one-factor sweep"}
    base["cause"] = f"{base['cause']} (other causes at the base recipe)"
    if x is not None and len(sweep) and causes.loc[sweep, column].nunique() < 2:
        return {**base, "n": len(sweep), "note": f"the zoo has no one-factor sweep of {cause}"}
    y = causes.loc[sweep, column] if sweep else None
    xs = x[x.index.isin(sweep)] if x is not None else None
    row = _spearman_row(base, xs, y, sign, o)
    changes = _paired_changes(x, causes, sweep, column) if x is not None else {}
    if changes:
        same = sum(np.sign(v) == sign for v in changes.values())
        text = ", ".join(f"{m} {signed(v, 3)}" for m, v in changes.items())
        paired = (
            f"change from the same architecture's base: {text} "
            f"({same} of {len(changes)} in the expected direction)"
        )
        row["note"] = f"{row['note']}; {paired}" if row["note"] else paired
    return row


# ----------------------------------------------------------------------------- rows
def _row(seed: str, line: str, check: str, cause: str, measure: str, expected: str, **kw: Any):
    """A check's row: its description, no numbers yet, ``n/a`` until a verdict is given."""
    row: dict[str, Any] = dict.fromkeys(ROW_COLUMNS, _NAN)
    row.update(seed=seed, line=line, check=check, cause=cause, measure=measure)
    row.update(expected=expected, statistic=_SPEARMAN, n=0, recovered="n/a", note="")
    row.update(kw)
    return row


def _missing(series: Mapping[str, pd.Series | None]) -> str:
    """Why a check has no numbers: a value absent from the results, or NaN for every model."""
    absent = [k for k, s in series.items() if s is None or not len(s)]
    if absent:
        return f"no values of {', '.join(absent)} in the results (measure not run?)"
    nan = [k for k, s in series.items() if s is not None and not s.notna().any()]
    return f"{', '.join(nan)} is not defined (NaN) for every model" if nan else ""


def attainable_rho(cause: Any) -> float:
    """The largest |Spearman rho| a measure without ties can reach against ``cause``.

    A cause planted at few distinct values (a recipe given to 3 models of 20) ties most
    models, which bounds the rank correlation below 1 however well a measure recovers it.

    Example:
        >>> round(attainable_rho([0] * 17 + [1] * 3), 2), attainable_rho([1, 2, 3, 4])
        (0.62, 1.0)
    """
    from scipy import stats  # lazy: scipy costs ~1 s to import

    y = np.asarray(cause, dtype=np.float64)
    y = y[np.isfinite(y)]
    if len(y) < 3 or np.ptp(y) == 0:
        return _NAN
    return float(stats.spearmanr(y, stats.rankdata(y, method="ordinal")).statistic)


def _spearman_row(
    base: dict[str, Any], x: pd.Series | None, y: pd.Series | None, sign: int, o: ValidityOptions
) -> dict[str, Any]:
    """A correlation check across models: Spearman, p, bootstrap CI, and the verdict."""
    gone = _missing({base["measure"]: x, base["cause"]: y})
    if gone:
        return {**base, "note": gone}
    pair = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner")
    r = correlate(pair["x"], pair["y"], "spearman", o.alpha, o.n_boot, o.seed)
    out = {
        **base,
        "value": r.coefficient,
        "p_value": r.p_value,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "n": r.n,
    }
    if r.n < 3:
        return {**out, "note": f"only {r.n} models with both numbers (3 needed)"}
    if not np.isfinite(r.coefficient):
        return {**out, "note": "the cause or the measure is constant over these models"}
    verdict = _verdict(r.coefficient, r.p_value, sign, o)
    bound = attainable_rho(pair.dropna()["y"])
    if bound < o.threshold:
        tie = f"the cause's ties bound |rho| at {number(bound, 2)} for a measure without ties"
        verdict["note"] = f"{verdict['note']}; {tie}" if verdict["note"] else tie
    return {**out, **verdict}


def _verdict(rho: float, p: float, sign: int, o: ValidityOptions) -> dict[str, str]:
    why = []
    if np.sign(rho) != sign:
        why.append("wrong sign")
    elif abs(rho) < o.threshold:
        why.append(f"|rho| < {o.threshold:g}")
    if not (np.isfinite(p) and p < o.alpha):
        why.append(f"p >= {o.alpha:g}")
    if not why:
        return {"recovered": "yes", "note": ""}
    return {"recovered": "no", "note": "; ".join(why)}


def _expected(sign: int) -> str:
    return "rho > 0" if sign > 0 else "rho < 0"


# ----------------------------------------------------------------------------- seed 000
def _clustering_rows(
    results: pd.DataFrame, r: Mapping[str, str], o: ValidityOptions
) -> list[dict[str, Any]]:
    ids = _with_role(r, "id")
    target = model_values(results, GT, "corruption_accuracy")
    rows = []
    for ind, sign in CLUSTERING_SIGNS.items():
        x = model_values(results, "clustering", ind, ids or None)
        if not len(x):
            continue
        base = _row(
            "000",
            "clustering",
            f"{ind} vs corruption accuracy",
            "mean corruption accuracy (ground_truth.corruption_accuracy)",
            f"clustering.{ind}",
            _expected(sign),
        )
        rows.append(_spearman_row(base, x, target, sign, o))
    if not rows:
        base = _row(
            "000",
            "clustering",
            "indicators vs corruption accuracy",
            "mean corruption accuracy",
            "clustering.*",
            "rho > 0 (Davies-Bouldin < 0)",
            note="no clustering indicators in the results (measure not run)",
        )
        rows.append(base)
    return rows


# ----------------------------------------------------------------------------- seed 001
def _families(r: Mapping[str, str]) -> dict[str, list[str]]:
    """Shifted datasets grouped: each corrupt role as one family, every other set alone."""
    out: dict[str, list[str]] = {}
    for role in _CORRUPT_FAMILIES:
        members = _with_role(r, role)
        if members:
            out[f"{role} (mean)"] = members
    for role in SHIFTED_ROLES:
        if role not in _CORRUPT_FAMILIES:
            out.update({d: [d] for d in _with_role(r, role)})
    return out


def ei_family_frame(
    results: pd.DataFrame, ei: str, roles: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(EI, accuracy) per model (rows) and shift family (columns), each the mean over the
    family's datasets.

    Example:
        >>> rows = [("a", d, meas, name, v) for d, ei, acc in [("world/sketch", .2, .3),
        ...         ("world/v2", .6, .7)] for meas, name, v in
        ...         [("invariance", "ei_gray", ei), ("accuracy", "accuracy", acc)]]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> e, a = ei_family_frame(df, "ei_gray")
        >>> e.columns.tolist(), a.loc["a"].tolist()
        (['world/v2', 'world/sketch'], [0.7, 0.3])
    """
    r = _roles(results, roles)
    fams = _families(r)
    e = {f: model_values(results, "invariance", ei, ms) for f, ms in fams.items()}
    a = {f: model_values(results, "accuracy", "accuracy", ms) for f, ms in fams.items()}
    keep = [f for f in fams if e[f].notna().any() and a[f].notna().any()]
    return pd.DataFrame({f: e[f] for f in keep}), pd.DataFrame({f: a[f] for f in keep})


def dataset_centric_rhos(
    results: pd.DataFrame, ei: str, roles: Mapping[str, Any] | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Per model: Spearman of ``invariance.<ei>`` with accuracy across its shifted datasets
    (each corruption x severity, every other shifted set), without bootstrap.

    Returns:
        DataFrame indexed by model with columns ``rho``, ``p_value``, ``n`` (datasets).
    """
    r = _roles(results, roles)
    shifted = _with_role(r, *SHIFTED_ROLES)
    sub = results[results["dataset"].isin(shifted)]
    e = sub[(sub["measure"] == "invariance") & (sub["name"] == ei)]
    a = sub[(sub["measure"] == "accuracy") & (sub["name"] == "accuracy")]
    e = e.pivot_table(index="model", columns="dataset", values="value", aggfunc="first")
    a = a.pivot_table(index="model", columns="dataset", values="value", aggfunc="first")
    rows = {}
    for m in e.index.intersection(a.index):
        cols = e.columns.intersection(a.columns)
        c = correlate(e.loc[m, cols], a.loc[m, cols], "spearman", alpha, n_boot=0)
        rows[m] = (c.coefficient, c.p_value, c.n)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["rho", "p_value", "n"])


def _boot(values: np.ndarray, stat: Callable[[np.ndarray], float], o: ValidityOptions):
    """Percentile bootstrap interval of ``stat`` over resamples of ``values`` (rows)."""
    if o.n_boot <= 0 or len(values) < 2:
        return _NAN, _NAN
    rng = np.random.default_rng(o.seed)
    idx = rng.integers(0, len(values), size=(o.n_boot, len(values)))
    boots = np.array([stat(values[i]) for i in idx], dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if not boots.size:
        return _NAN, _NAN
    lo, hi = np.quantile(boots, [o.alpha / 2, 1 - o.alpha / 2])
    return float(lo), float(hi)


def _invariance_rows(
    results: pd.DataFrame, r: Mapping[str, str], roles: Any, o: ValidityOptions
) -> list[dict[str, Any]]:
    ids = _with_role(r, "id")
    rows = []
    for ei, view, gt in (
        ("ei_rotation", "rotation", "rotation_accuracy"),
        ("ei_gray", "grayscale", "gray_accuracy"),
    ):
        x = model_values(results, "invariance", ei, ids or None)
        y = model_values(results, GT, gt, ids or None)
        base = _row(
            "001",
            "invariance",
            f"EI {view} vs accuracy under {view} (model-centric)",
            f"accuracy under the {view} view (ground_truth.{gt}, id)",
            f"invariance.{ei}",
            "rho > 0",
        )
        rows.append(_spearman_row(base, x, y, 1, o))
    for ei, view in (("ei_rotation", "rotation"), ("ei_gray", "grayscale")):
        e, a = ei_family_frame(results, ei, roles)
        base = _row(
            "001",
            "invariance",
            f"EI {view} vs OOD accuracy (model-centric)",
            "OOD accuracy: mean over the shift families of accuracy.accuracy",
            f"invariance.{ei} (same families)",
            "rho > 0",
        )
        x = e.mean(axis=1) if e.shape[1] else None
        y = a.mean(axis=1) if a.shape[1] else None
        row = _spearman_row(base, x, y, 1, o)
        if e.shape[1]:
            extra = f"{e.shape[1]} shift families"
            row["note"] = f"{row['note']}; {extra}" if row["note"] else extra
        rows.append(row)
    for ei, view in (("ei_rotation", "rotation"), ("ei_gray", "grayscale")):
        rows.append(_dataset_centric_row(results, ei, view, roles, o))
    return rows


def _dataset_centric_row(
    results: pd.DataFrame, ei: str, view: str, roles: Any, o: ValidityOptions
) -> dict[str, Any]:
    base = _row(
        "001",
        "invariance",
        f"EI {view} vs OOD accuracy (dataset-centric)",
        "accuracy on each shifted test set (accuracy.accuracy)",
        f"invariance.{ei}",
        "median rho > 0",
        statistic="median over models of Spearman rho",
    )
    t = dataset_centric_rhos(results, ei, roles, o.alpha)
    t = t[np.isfinite(t["rho"].astype(float))] if len(t) else t
    if not len(t):
        return {**base, "note": "no model with 3 shifted sets carrying EI and accuracy"}
    rho = float(np.median(t["rho"]))
    p = float(np.median(t["p_value"]))
    lo, hi = _boot(t["rho"].to_numpy(float), np.median, o)
    n_sig = int((t["p_value"] < o.alpha).sum())
    sets = int(t["n"].median())
    note = f"{sets} test sets per model; {n_sig} of {len(t)} models with p < {o.alpha:g}"
    out = {**base, "value": rho, "p_value": p, "ci_low": lo, "ci_high": hi, "n": len(t)}
    verdict = _verdict(rho, p, 1, o)
    note = f"{verdict['note']}; {note}" if verdict["note"] else note
    return {**out, "recovered": verdict["recovered"], "note": f"{note}; p is the median p"}


# ----------------------------------------------------------------------------- seed 002
def _bias_rows(
    results: pd.DataFrame, causes: pd.DataFrame, roles: Any, o: ValidityOptions
) -> list[dict[str, Any]]:
    shape = model_values(results, "biases", "shape_bias")
    tex = causes["texture_randomization"] if len(causes) else None
    level = causes["corruption_level"] if len(causes) else None
    tex_check = _row(
        "002",
        "biases",
        "shape bias vs texture randomisation (planted cause)",
        "planted texture randomisation probability",
        "biases.shape_bias",
        "rho > 0",
    )
    rows = [
        _spearman_row(tex_check, shape, tex, 1, o),
        _sweep_row(tex_check, shape, causes, "texture_randomization", 1, o),
    ]
    same = _spearman_row(
        _row(
            "002",
            "biases",
            "shape bias vs texture reliance (same decisions)",
            "texture reliance on cue-conflict (ground_truth.texture_reliance)",
            "biases.shape_bias",
            "rho < 0",
        ),
        shape,
        model_values(results, GT, "texture_reliance"),
        -1,
        o,
    )
    check = (
        "same decision count: shape bias = 1 - texture reliance, a consistency check, "
        "not evidence (texture randomisation is the cause)"
    )
    same["note"] = f"{same['note']}; {check}" if same["note"] else check
    rows.append(same)
    ordinal = "corruption augmentation, ordinal: none 0 < noise = blur 1 < mixed 2"
    for name, label, why in (
        (
            "spectral_bias",
            "spectral bias",
            "corruption augmentation moves reliance to low "
            "frequencies (Yin et al. 2019): lower HPP / (LPP + HPP)",
        ),
        (
            "cb_peak_sensitivity",
            "critical-band peak noise sensitivity",
            "augmented models tolerate more band noise: a lower threshold peak 2^(A - 4)",
        ),
    ):
        check = _row(
            "002",
            "biases",
            f"{label} vs corruption augmentation",
            ordinal,
            f"biases.{name}",
            "rho < 0",
        )
        values = model_values(results, "biases", name)
        for row in (
            _spearman_row(check, values, level, -1, o),
            _sweep_row(check, values, causes, "corruption_augmentation", -1, o, "corruption_level"),
        ):
            row["note"] = f"{row['note']}; {why}" if row["note"] else why
            rows.append(row)
    rows += _dimension_rows(results, roles, o)
    return rows


def _dimension_rows(results: pd.DataFrame, roles: Any, o: ValidityOptions) -> list[dict]:
    try:
        dims = generalization_table(results, roles)
    except (ValidationError, RobustlensError) as exc:
        dims, reason = None, str(exc)
    rows = []
    for dim in DIMENSIONS:
        base = _row(
            "002",
            "biases",
            f"{dim.replace('_', ' ')} dimension spreads over the zoo",
            "the zoo's range of recipes",
            f"{dim} (seed 002 dimension)",
            f"range >= {o.min_spread:g}",
            statistic="std over models",
        )
        if dims is None or dim not in dims.columns:
            rows.append({**base, "note": reason if dims is None else "no component present"})
            continue
        v = pd.to_numeric(dims[dim], errors="coerce").dropna()
        if len(v) < 2:
            rows.append({**base, "n": len(v), "note": "fewer than 2 models"})
            continue
        lo, hi = float(v.min()), float(v.max())
        ok = hi - lo >= o.min_spread
        note = f"range {number(lo)} to {number(hi)} ({number(hi - lo)})"
        if not ok:
            note = f"range < {o.min_spread:g}; {note}"
        rows.append(
            {
                **base,
                "value": float(v.std(ddof=1)),
                "n": len(v),
                "recovered": "yes" if ok else "no",
                "note": note,
            }
        )
    return rows


# ----------------------------------------------------------------------------- seed 003
def _spurious_rows(
    results: pd.DataFrame, causes: pd.DataFrame, o: ValidityOptions
) -> list[dict[str, Any]]:
    score = model_values(results, "spurious", "spurious_score")
    rate = causes["mark_rate"] if len(causes) else None
    rows = [
        _spearman_row(
            _row(
                "003",
                "spurious",
                "spurious score vs measured mark reliance",
                "mark reliance on the spurious split (ground_truth.mark_reliance)",
                "spurious.spurious_score",
                "rho < 0",
            ),
            score,
            model_values(results, GT, "mark_reliance"),
            -1,
            o,
        ),
    ]
    rate_check = _row(
        "003",
        "spurious",
        "spurious score vs mark rate (planted cause)",
        "planted training mark rate",
        "spurious.spurious_score",
        "rho < 0",
    )
    rows.append(_spearman_row(rate_check, score, rate, -1, o))
    rows.append(_sweep_row(rate_check, score, causes, "mark_rate", -1, o))
    rows.append(_flagged_row(results, causes))
    rows.append(_spufix_row(results, causes, o))
    return rows


def _flagged_row(results: pd.DataFrame, causes: pd.DataFrame) -> dict[str, Any]:
    base = _row(
        "003",
        "spurious",
        "no flagged component at mark rate 0",
        "planted training mark rate = 0",
        "spurious.n_flagged",
        "all absent",
        statistic="fraction of rate-0 models with none flagged",
    )
    flagged = model_values(results, "spurious", "n_flagged")
    if not len(causes) or not len(flagged):
        return {**base, "note": _missing({"spurious.n_flagged": flagged}) or "no planted causes"}
    rate = causes["mark_rate"].reindex(flagged.index)
    zero = flagged[rate == 0]
    if not len(zero):
        return {**base, "note": "no model trained at mark rate 0"}
    marked = flagged[rate > 0]
    frac = float((zero == 0).mean())
    note = "flagged at rate 0: " + ", ".join(f"{m} {int(v)}" for m, v in zero.items())
    if len(marked):
        note += f"; mean flagged at rate > 0: {number(marked.mean(), 1)}"
    return {
        **base,
        "value": frac,
        "n": len(zero),
        "recovered": "yes" if frac == 1.0 else "no",
        "note": note,
    }


def _spufix_row(results: pd.DataFrame, causes: pd.DataFrame, o: ValidityOptions) -> dict:
    base = _row(
        "003",
        "spurious",
        "SpuFix lowers mark reliance on held-out images",
        "held-out spurious images predicted as the mark's class (before - after)",
        "spurious.spufix_spurious_trigger_after - _before",
        f"median change < 0, accuracy cost <= {o.max_accuracy_cost:g}",
        statistic="median change in mark reliance",
    )
    vals = {
        k: model_values(results, "spurious", f"spufix_{k}")
        for k in (
            "spurious_trigger_before",
            "spurious_trigger_after",
            "id_accuracy_before",
            "id_accuracy_after",
        )
    }
    gone = _missing({f"spurious.spufix_{k}": v for k, v in vals.items()})
    if gone:
        return {**base, "note": gone}
    frame = pd.DataFrame(vals).dropna()
    if len(causes):
        rate = causes["mark_rate"].reindex(frame.index)
        frame = frame[(rate > 0).to_numpy()]
    if len(frame) < 2:
        return {**base, "n": len(frame), "note": "fewer than 2 models trained with the mark"}
    d_rel = (frame["spurious_trigger_after"] - frame["spurious_trigger_before"]).to_numpy()
    d_acc = (frame["id_accuracy_after"] - frame["id_accuracy_before"]).to_numpy()
    med = float(np.median(d_rel))
    p = _wilcoxon_less(d_rel)
    lo, hi = _boot(d_rel, np.median, o)
    cost = -float(np.mean(d_acc))
    why = []
    if not med < 0:
        why.append("reliance not lowered")
    if not (np.isfinite(p) and p < o.alpha):
        why.append(f"p >= {o.alpha:g}")
    if cost > o.max_accuracy_cost:
        why.append(f"accuracy cost > {o.max_accuracy_cost:g}")
    note = (
        f"clean accuracy change: mean {signed(-cost, 3)}, worst {signed(d_acc.min(), 3)}; "
        f"models trained with the mark; p: one-sided Wilcoxon signed-rank"
    )
    return {
        **base,
        "value": med,
        "p_value": p,
        "ci_low": lo,
        "ci_high": hi,
        "n": len(frame),
        "recovered": "no" if why else "yes",
        "note": "; ".join([*why, note]),
    }


def _wilcoxon_less(d: np.ndarray) -> float:
    from scipy import stats  # lazy: scipy costs ~1 s to import

    if not np.any(d != 0):
        return 1.0
    try:
        return float(stats.wilcoxon(d, alternative="less").pvalue)
    except ValueError:
        return _NAN


# ----------------------------------------------------------------------------- seed 004
def _points(results: pd.DataFrame, shift: str) -> pd.DataFrame:
    sub = results[
        (results["measure"] == "robustness")
        & (results["dataset"] == shift)
        & results["name"].isin(["acc_id", "acc_ood"])
    ]
    t = sub.pivot_table(index="model", columns="name", values="value", aggfunc="first")
    return t.reindex(columns=["acc_id", "acc_ood"]).dropna()


def _fit(points: pd.DataFrame) -> Baseline | None:
    try:
        return fit_baseline(points["acc_id"].to_numpy(), points["acc_ood"].to_numpy(), "logit")
    except (FitError, ValidationError):
        return None


def _slope_p(points: pd.DataFrame) -> float:
    from scipy import stats  # lazy: scipy costs ~1 s to import

    x = np.asarray(logit(points["acc_id"].to_numpy()), dtype=np.float64)
    y = np.asarray(logit(points["acc_ood"].to_numpy()), dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0:
        return _NAN
    return float(stats.linregress(x, y).pvalue)


def _twins(causes: pd.DataFrame, gen: Sequence[str]) -> dict[str, str]:
    """Generated-data model -> a real-only model with the same planted causes otherwise."""
    keys = [c for c in causes.columns if c not in ("generated_fraction", "corruption_level")]
    real = causes[causes["generated_fraction"].fillna(0) == 0]
    out = {}
    for g in gen:
        same = real[(real[keys] == causes.loc[g, keys]).all(axis=1)]
        if len(same):
            out[g] = str(sorted(same.index)[0])
    return out


def _robustness_rows(
    results: pd.DataFrame, r: Mapping[str, str], causes: pd.DataFrame, o: ValidityOptions
) -> list[dict[str, Any]]:
    shifts = [
        d
        for d in _with_role(r, *NATURAL_SHIFT_ROLES)
        if not results[(results["measure"] == "robustness") & (results["dataset"] == d)].empty
    ]
    if not shifts:
        return [
            _row(
                "004",
                "robustness",
                "natural-shift baselines",
                "standard models' accuracies",
                "robustness.acc_id / acc_ood",
                f"R² >= {o.min_r2:g}",
                statistic="R²",
                note="no robustness values (measure not run)",
            )
        ]
    standard = baseline_models(causes)
    gen = [str(m) for m in causes.index[causes["generated_fraction"].fillna(0) > 0]]
    rows = []
    for shift in shifts:
        pts = _points(results, shift)
        base_pts = pts[pts.index.isin(standard)]
        rows.append(_r2_row(shift, base_pts, o))
        rows.append(_er_row(shift, pts, base_pts, gen, _twins(causes, gen), o))
    return rows


def _r2_row(shift: str, pts: pd.DataFrame, o: ValidityOptions) -> dict[str, Any]:
    base = _row(
        "004",
        "robustness",
        f"baseline fit on {shift}",
        "standard models (no generated data, texture randomisation or corruption augmentation)",
        "robustness.acc_id, acc_ood (logit axes)",
        f"R² >= {o.min_r2:g}, slope p < {o.alpha:g}",
        statistic="R²",
    )
    line = _fit(pts) if len(pts) >= 3 else None
    if line is None:
        return {**base, "n": len(pts), "note": f"{len(pts)} standard models: no line fitted"}
    p = _slope_p(pts)
    r2 = _boot_lines(pts, o)[2]
    lo, hi = _quantiles(r2, o)
    ok = line.r2 is not None and line.r2 >= o.min_r2 and np.isfinite(p) and p < o.alpha
    why = [] if ok else [f"R² < {o.min_r2:g}" if (line.r2 or 0) < o.min_r2 else f"p >= {o.alpha:g}"]
    note = f"slope {number(line.slope, 2)}, intercept {number(line.intercept, 2)}"
    distinct = int(pts["acc_id"].round(6).nunique())
    if distinct < len(pts) / 2:
        note += f"; only {distinct} distinct ID accuracies among the {len(pts)} models"
    return {
        **base,
        "value": line.r2,
        "p_value": p,
        "ci_low": lo,
        "ci_high": hi,
        "n": len(pts),
        "recovered": "yes" if ok else "no",
        "note": "; ".join([*why, note]),
    }


def _er_row(
    shift: str,
    pts: pd.DataFrame,
    base_pts: pd.DataFrame,
    gen: Sequence[str],
    twins: Mapping[str, str],
    o: ValidityOptions,
) -> dict[str, Any]:
    base = _row(
        "004",
        "robustness",
        f"ER of the generated-data models on {shift}",
        "generated training data (planted generated_fraction > 0)",
        "effective robustness vs the fitted baseline",
        "reported (no planted direction)",
        statistic="mean ER",
    )
    g = pts[pts.index.isin(gen)]
    line = _fit(base_pts) if len(base_pts) >= 3 else None
    if line is None or not len(g):
        why = "no fitted baseline" if line is None else "no generated-data model"
        return {**base, "n": len(g), "note": why}
    er = pd.Series(effective_robustness(g["acc_id"], g["acc_ood"], line), index=g.index)
    lo, hi = _er_interval(base_pts, g, o)
    note = []
    pairs = [(m, t) for m, t in twins.items() if m in g.index and t in pts.index]
    if pairs:
        real = pts.loc[[t for _, t in pairs]]
        er_real = effective_robustness(real["acc_id"], real["acc_ood"], line)
        delta = float(np.mean(er[[m for m, _ in pairs]].to_numpy() - np.asarray(er_real)))
        note.append(f"ER minus the real twin's: {signed(delta, 3)} over {len(pairs)} pair(s)")
    if np.isfinite(lo):
        excl = "excludes" if lo > 0 or hi < 0 else "includes"
        note.append(f"the interval {excl} 0")
    note.append("CI: resampling the baseline models (refit) and the generated-data models")
    return {
        **base,
        "value": float(er.mean()),
        "ci_low": lo,
        "ci_high": hi,
        "n": len(g),
        "note": "; ".join(note),
    }


def _boot_lines(pts: pd.DataFrame, o: ValidityOptions) -> tuple[np.ndarray, ...]:
    """Slopes, intercepts and R² of ``n_boot`` least-squares lines on logit axes, each on a
    resample of the models (drawn with replacement); the formulas of
    :func:`~robustlens.metrics.effective_robustness.fit_baseline`, vectorised. A resample
    whose ID accuracies are all equal (no slope) gives NaN."""
    if o.n_boot <= 0 or len(pts) < 2:
        return (np.full(0, _NAN),) * 3
    x = np.asarray(logit(pts["acc_id"].to_numpy()), dtype=np.float64)
    y = np.asarray(logit(pts["acc_ood"].to_numpy()), dtype=np.float64)
    idx = np.random.default_rng(o.seed).integers(0, len(x), size=(o.n_boot, len(x)))
    xb, yb = x[idx], y[idx]
    xc = xb - xb.mean(axis=1, keepdims=True)
    yc = yb - yb.mean(axis=1, keepdims=True)
    sxx = (xc * xc).sum(axis=1)
    ok = sxx > 1e-12 * np.maximum(1.0, (xb * xb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(ok, (xc * yc).sum(axis=1) / sxx, np.nan)
        intercept = yb.mean(axis=1) - slope * xb.mean(axis=1)
        resid = yb - (slope[:, None] * xb + intercept[:, None])
        ss_tot = (yc * yc).sum(axis=1)
        r2 = np.where(ss_tot > 0, 1.0 - (resid * resid).sum(axis=1) / ss_tot, 1.0)
    return slope, intercept, np.where(ok, r2, np.nan)


def _quantiles(values: np.ndarray, o: ValidityOptions) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not values.size:
        return _NAN, _NAN
    lo, hi = np.quantile(values, [o.alpha / 2, 1 - o.alpha / 2])
    return float(lo), float(hi)


def _er_interval(base_pts: pd.DataFrame, g: pd.DataFrame, o: ValidityOptions):
    """Interval of the generated-data models' mean ER: each resample refits the baseline on
    resampled baseline models and averages ER over resampled generated-data models."""
    from scipy.special import expit  # lazy: scipy costs ~1 s to import

    slope, intercept, _ = _boot_lines(base_pts, o)
    if not slope.size:
        return _NAN, _NAN
    gx = np.asarray(logit(g["acc_id"].to_numpy()), dtype=np.float64)
    g_ood = g["acc_ood"].to_numpy(dtype=np.float64)
    rng = np.random.default_rng([o.seed, 1])
    idx = rng.integers(0, len(g), size=(len(slope), len(g)))
    with np.errstate(invalid="ignore"):
        pred = expit(slope[:, None] * gx[idx] + intercept[:, None])
    return _quantiles((g_ood[idx] - pred).mean(axis=1), o)


# ----------------------------------------------------------------------------- all
def validity_frame(
    results: pd.DataFrame,
    models: Mapping[str, Mapping[str, Any]],
    roles: Mapping[str, Any] | None = None,
    options: ValidityOptions | None = None,
) -> pd.DataFrame:
    """Every validity check of the study, one row each (:data:`ROW_COLUMNS`).

    Args:
        results: long results table (model, dataset, measure, name, value).
        models: ``{model: config}``; planted causes are read from the configs.
        roles: dataset roles (``{name: role}`` or a study's ``{name: {"role": ...}}``);
            inferred from the names where missing.
        options: the fixed rules (:class:`ValidityOptions`).

    Returns:
        DataFrame with the columns of :data:`ROW_COLUMNS`, seeds 000 to 004 in order.
    """
    if not isinstance(results, pd.DataFrame):
        raise ValidationError(f"results: expected a DataFrame, got {type(results).__name__}")
    missing = [c for c in ("model", "dataset", "measure", "name", "value") if c not in results]
    if missing:
        raise ValidationError(f"results: missing columns {missing} (the long results table)")
    o = options or ValidityOptions()
    causes = cause_table(models)
    causes = causes[causes.index.isin(set(results["model"].astype(str)))]
    r = _roles(results, roles)
    rows = [
        *_clustering_rows(results, r, o),
        *_invariance_rows(results, r, roles, o),
        *_bias_rows(results, causes, roles, o),
        *_spurious_rows(results, causes, o),
        *_robustness_rows(results, r, causes, o),
    ]
    frame = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    frame["n"] = frame["n"].fillna(0).astype(int)
    return frame


def evidence(row: Mapping[str, Any]) -> str:
    """One line of evidence for a check: statistic, p, interval, n.

    Example:
        >>> evidence({"statistic": "Spearman rho", "value": 0.4, "p_value": 0.2,
        ...           "ci_low": -0.1, "ci_high": 0.8, "n": 12})
        'Spearman rho +0.40, p = 0.200, CI [-0.10, +0.80], n = 12'
    """
    parts = [f"{row['statistic']} {signed(row['value'])}"]
    if np.isfinite(_float(row.get("p_value"))):
        parts.append(p_eq(row["p_value"]))
    if np.isfinite(_float(row.get("ci_low"))):
        parts.append(f"CI [{signed(row['ci_low'])}, {signed(row['ci_high'])}]")
    parts.append(f"n = {int(row['n'])}")
    return ", ".join(parts)


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return _NAN
