"""The user's models placed among the published ones: the numbers behind the three sections.

Everything here reads a :class:`~robustlens.report.context.ReportContext` (the study's long
results, dataset roles, artifacts and ``study["published"]``) and the canonical published
tables (:func:`robustlens.published.load_published`); nothing runs a model.

* :func:`natural_shifts`: per testbed shift, the published models with their effective
  robustness against the baseline refitted on the testbed's standard models, and the user's
  models with theirs and their rank among the published models of each type;
* :func:`bias_points`: seed 002's ResNet-50s and the user's models as (bias, generalization
  dimension) points, with the dimensions of both computed from the same components;
* :func:`robust_points`: RobustBench's L-inf leaderboard and the user's robust accuracies at
  the same threat model; :func:`corruption_points`: its corruptions leaderboard and the
  user's ImageNet-C accuracy over the same corruptions.

Each returns what it could not place as ``notes`` (one sentence each), so that a dataset or a
value the study lacks is named, never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustlens.analysis.correlation import correlate
from robustlens.analysis.generalization import (
    BIASES,
    COMPONENTS,
    DIMENSIONS,
    bias_table,
    dimension_components,
    generalization_table,
)
from robustlens.errors import ValidationError
from robustlens.metrics.effective_robustness import Baseline, effective_robustness
from robustlens.published import (
    TESTBED_SHIFTS,
    load_published,
    published_baseline,
    published_effective_robustness,
)
from robustlens.report.context import ReportContext
from robustlens.transforms.adversarial import SEED002_PGD
from robustlens.transforms.corruptions import IMAGENET_C_CORRUPTIONS

__all__ = [
    "RB_EPS",
    "BiasPoints",
    "CorruptionPoints",
    "RobustPoints",
    "ShiftResult",
    "bias_points",
    "corruption_points",
    "describe_components",
    "eps_text",
    "natural_shifts",
    "published_sources",
    "rank_text",
    "robust_points",
    "tables_of_format",
    "user_datasets",
]

#: RobustBench's ImageNet L-inf radius (pixel units of [0, 1])
RB_EPS = 4 / 255
#: value names of robust accuracy the user's results may hold (first found wins per dataset)
ROBUST_VALUES = ("autoattack_accuracy", "robust_accuracy", "pgd_accuracy")
_NORMS = {"linf": "L-inf", "l2": "L2", "l1": "L1"}
#: where a measure's artifacts describe its attack, per dataset
_ATTACK_ARTIFACTS = ("autoattack", "attack", "pgd", "adversarial")


# ------------------------------------------------------------------------------ the sources
def published_sources(ctx: ReportContext) -> list[Any]:
    """The published tables the study asks for: ``ctx.study["published"]`` as a list.

    Items are a shipped table's name, a path, or ``{"source": ..., "format": ...}``.
    """
    value = ctx.study.get("published")
    if not value:
        return []
    if isinstance(value, str | Mapping):
        return [value]
    return list(value)


def _load(item: Any) -> pd.DataFrame:
    if isinstance(item, Mapping):
        source = item.get("source", item.get("path"))
        if source is None:
            raise ValidationError(
                f"published: an entry {dict(item)!r} needs 'source' (a shipped table's name or "
                "a path) and optionally 'format'"
            )
        return load_published(source, item.get("format"))
    return load_published(item)


def tables_of_format(ctx: ReportContext, fmt: str) -> list[tuple[str, pd.DataFrame]]:
    """``[(label, canonical table)]`` of the requested sources in format ``fmt``."""
    out = []
    for item in published_sources(ctx):
        table = _load(item)
        if table.attrs.get("format") == fmt:
            label = item.get("source", item.get("path")) if isinstance(item, Mapping) else item
            out.append((str(label), table))
    return out


# ----------------------------------------------------------------------------- the user side
def _tags(ctx: ReportContext, name: str) -> Mapping[str, Any]:
    tags = (ctx.datasets.get(name) or {}).get("tags")
    return tags if isinstance(tags, Mapping) else {}


def user_datasets(ctx: ReportContext, key: str) -> list[str]:
    """The study's datasets standing for the published dataset ``key`` (e.g. ``imagenet_r``):
    those named ``key`` or opened with the layout ``key`` (except copies with the
    ``adversarial`` role), in study order."""
    names = list(ctx.datasets) or sorted(ctx.results["dataset"].dropna().unique())
    return [
        n
        for n in names
        if n == key
        or (
            _tags(ctx, n).get("layout") == key
            # a copy of val for the attacks is not the study's val
            and (ctx.datasets.get(n) or {}).get("role") != "adversarial"
        )
    ]


def _is_imagenet(ctx: ReportContext, name: str) -> bool:
    layout = _tags(ctx, name).get("layout")
    head = str(name).split("/")[0]
    return str(layout or head).startswith(("imagenet", "objectnet"))


def _values(ctx: ReportContext, measure: str, name: str, dataset: str) -> pd.Series:
    return ctx.values(measure, name, dataset).astype(np.float64)


# ------------------------------------------------------------------------ (a) natural shifts
@dataclass
class ShiftResult:
    """One testbed shift: the published points, the baseline, and the user's models.

    Attributes:
        shift: the shift (a key of :data:`robustlens.published.TESTBED_SHIFTS`).
        title: its name as the testbed titles the plot.
        x_label: what the x-axis is.
        baseline: the logit line fitted on the published standard models.
        published: :func:`~robustlens.published.published_effective_robustness` (``model``,
            ``type``, ``acc_id``, ``acc_ood``, ``shown``, ``in_fit``, ``er``).
        user: ``model``, ``dataset``, ``acc_id``, ``acc_ood``, ``er``, ``rank`` (among every
            shown published model) and ``rank:<type>`` per published type (text ``k / n``).
        notes: what could not be placed, one sentence each.
    """

    shift: str
    title: str
    x_label: str
    baseline: Baseline
    published: pd.DataFrame
    user: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def rank_text(value: float, others: np.ndarray) -> str:
    """``k / n``: the place of ``value`` among ``others`` and itself, highest first (``n`` is
    ``len(others) + 1``; ties go to ``value``).

    Example:
        >>> rank_text(0.5, np.array([0.9, 0.1, 0.7])), rank_text(0.0, np.array([0.2]))
        ('3 / 4', '2 / 2')
    """
    others = others[np.isfinite(others)]
    if not np.isfinite(value) or not len(others):
        return "n/a"
    return f"{int((others > value).sum()) + 1} / {len(others) + 1}"


_TITLES = {"imagenet_r": "ImageNet-R", "imagenet_a": "ImageNet-A", "objectnet": "ObjectNet"}


def _x_label(x: str) -> str:
    if "@" in x:
        other = x.split("@", 1)[1]
        return f"ImageNet val on {_TITLES.get(other, other)}'s classes"
    return "ImageNet val"


def _user_shift(ctx: ReportContext, shift: str, notes: list[str]) -> pd.DataFrame:
    """The user's (acc_id, acc_ood) on ``shift``: from the ``robustness`` measure, else (when
    the x-axis is plain val) from the ``accuracy`` measure."""
    plot = TESTBED_SHIFTS[shift]
    columns = ["model", "dataset", "acc_id", "acc_ood"]
    found = user_datasets(ctx, shift)
    if not found:
        notes.append(
            f"{plot.title}: the study has no {shift} dataset (a dataset named {shift} or with "
            f"layout {shift}), so no model of yours is placed on this plot."
        )
        return pd.DataFrame(columns=columns)
    rows = []
    for ds in found:
        acc_id = _values(ctx, "robustness", "acc_id", ds)
        acc_ood = _values(ctx, "robustness", "acc_ood", ds)
        if acc_ood.empty:
            acc_ood = _values(ctx, "accuracy", "accuracy", ds)
            if plot.x == "imagenet_val":
                ids = user_datasets(ctx, "imagenet_val")
                acc_id = _values(ctx, "accuracy", "accuracy", ids[0]) if ids else acc_id
                if not ids:
                    notes.append(
                        f"{plot.title}: the study has no imagenet_val dataset, the x-axis of "
                        "this plot; your models are not placed."
                    )
            elif not acc_ood.empty:
                notes.append(
                    f"{plot.title}: the x-axis is {_x_label(plot.x)}, which the robustness "
                    f"measure computes; the study has no robustness values for {ds}, so your "
                    "models are not placed (add the robustness measure)."
                )
                continue
        if acc_ood.empty:
            notes.append(f"{plot.title}: the study has no accuracy on {ds}; not placed.")
        for m in acc_ood.index:
            a_id, a_ood = acc_id.get(m, np.nan), acc_ood.get(m, np.nan)
            if np.isfinite(a_id) and np.isfinite(a_ood):
                rows.append((str(m), ds, float(a_id), float(a_ood)))
            else:
                notes.append(f"{plot.title}: {m} has no ID or OOD accuracy on {ds}; not placed.")
    return pd.DataFrame(rows, columns=columns)


def natural_shifts(ctx: ReportContext, table: pd.DataFrame) -> list[ShiftResult]:
    """Per testbed shift, the published and the user's points with effective robustness.

    The baseline is refitted from ``table`` on the testbed's standard models
    (:func:`robustlens.published.published_baseline`, logit axes); each user model's ER is
    ranked among the *shown* published models of the plot: overall and per published type.
    """
    out = []
    types = [t for t in pd.unique(table["type"].dropna())]
    for shift, plot in TESTBED_SHIFTS.items():
        if plot.x not in table.columns or shift not in table.columns:
            continue
        notes: list[str] = []
        baseline = published_baseline(table, shift, "logit")
        published = published_effective_robustness(table, shift, baseline)
        user = _user_shift(ctx, shift, notes)
        shown = published[published["shown"]]
        if len(user):
            user["er"] = np.asarray(
                effective_robustness(
                    user["acc_id"].to_numpy(), user["acc_ood"].to_numpy(), baseline
                ),
                dtype=np.float64,
            )
            user["rank"] = [rank_text(v, shown["er"].to_numpy()) for v in user["er"]]
            for t in types:
                er_t = shown.loc[shown["type"] == t, "er"].to_numpy()
                if len(er_t):
                    user[f"rank:{t}"] = [rank_text(v, er_t) for v in user["er"]]
        out.append(
            ShiftResult(shift, plot.title, _x_label(plot.x), baseline, published, user, notes)
        )
    return out


# ------------------------------------------------------------------ (b) biases vs dimensions
@dataclass
class BiasPoints:
    """Seed 002's ResNet-50s and the user's models as biases and generalization dimensions.

    Attributes:
        published: indexed by model: ``category``, one column per bias, one per dimension.
        user: indexed by model, the same bias and dimension columns.
        components: per dimension, the components both sides' dimensions average (empty: the
            published dimension uses all of the paper's components and the user has none).
        correlations: ``bias``, ``dimension``, ``n``, ``rho``, ``p`` (published models only)
            and ``n_with``, ``rho_with``, ``p_with`` (with the user's models).
        notes: what could not be placed.
    """

    published: pd.DataFrame
    user: pd.DataFrame
    components: dict[str, list[str]]
    correlations: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _seed002_results(ctx: ReportContext, notes: list[str]) -> pd.DataFrame:
    """The results without robust accuracies at another threat model than seed 002's PGD-40
    (L-inf 0.5/255), which its Adversarial dimension is."""
    res = ctx.results
    drop = []
    for idx, row in res[res["name"] == "pgd_accuracy"].iterrows():
        rec = _attack(
            ctx, str(row["model"]), str(row["measure"]), str(row["dataset"]), "pgd_accuracy"
        )
        if not rec:
            continue
        norm = str(rec.get("norm", "linf")).lower()
        attack = str(rec.get("attack", rec.get("kind", "pgd"))).lower()
        if (
            norm != "linf"
            or not math.isclose(float(rec["eps"]), SEED002_PGD["eps"], rel_tol=1e-6)
            or "autoattack" in attack
        ):
            drop.append(idx)
            notes.append(
                f"adversarial: {row['model']}'s robust accuracy on {row['dataset']} is at "
                f"{_NORMS.get(norm, norm)} eps {eps_text(float(rec['eps']))} ({attack}), not "
                "seed 002's PGD-40 at L-inf 0.5/255; left out of the dimension."
            )
    return res.drop(index=drop)


def _corruption_key(ctx: ReportContext, name: str) -> tuple[str, str] | None:
    """``(corruption, severity)`` of a corrupted dataset, from its tags or its name."""
    tags = _tags(ctx, name)
    parts = str(name).split("/")
    c = tags.get("corruption", parts[-2] if len(parts) > 2 else None)
    s = tags.get("severity", parts[-1] if len(parts) > 2 else None)
    return (str(c), str(s)) if c is not None and s is not None else None


def _user_corruptions(ctx: ReportContext, results: pd.DataFrame) -> dict[str, set[tuple[str, str]]]:
    """The study's (corruption, severity) pairs of the ``corrupt`` and ``corrupt_bar``
    components of seed 002's Robustness dimension."""
    acc = results[(results["measure"] == "accuracy") & (results["name"] == "accuracy")]
    if acc.empty:
        return {}
    wide = acc.pivot_table(index="model", columns="dataset", values="value", aggfunc="first")
    cols = dimension_components(wide, ctx.datasets).attrs["columns"]
    out: dict[str, set[tuple[str, str]]] = {}
    for comp in ("corrupt", "corrupt_bar"):
        keys = {_corruption_key(ctx, d) for d in cols.get(comp, [])}
        out[comp] = {k for k in keys if k is not None}
    return out


def _restrict_corruptions(
    r50: pd.DataFrame, mine: dict[str, set[tuple[str, str]]], notes: list[str]
) -> pd.DataFrame:
    """The published table with only the corruption x severity columns the study has, so that
    the ``corrupt`` and ``corrupt_bar`` components average the same datasets on both sides."""
    drop = []
    for comp, group in (("corrupt", "imagenet_c"), ("corrupt_bar", "imagenet_cbar")):
        pairs = mine.get(comp)
        if not pairs:
            continue
        cols = [c for c in r50.columns if c.startswith(f"{group}/")]
        keep = [c for c in cols if tuple(c.split("/")[1:]) in pairs]
        if not keep:
            notes.append(
                f"robustness: none of the study's {comp} datasets is one of {group}'s "
                "corruption x severity pairs; the published points use all of theirs."
            )
            continue
        if len(keep) < len(cols):
            notes.append(
                f"robustness: the study has {len(keep)} of the {len(cols)} {group} corruption x "
                "severity datasets; every model here (published too) averages those."
            )
        unmatched = len(pairs) - len(keep)
        if unmatched > 0:
            notes.append(
                f"robustness: {unmatched} of the study's {comp} datasets have no published "
                f"{group} counterpart; your models average them all the same."
            )
        drop += [c for c in cols if c not in keep]
    return r50.drop(columns=drop)


def _user_generalization(
    ctx: ReportContext, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]], dict[str, set[tuple[str, str]]]]:
    """The user's biases and dimensions (ImageNet studies only), the components they use and
    the study's corruption x severity pairs."""
    empty = pd.DataFrame(columns=[*BIASES, *DIMENSIONS], dtype=np.float64)
    ids = [d for d, info in ctx.datasets.items() if info.get("role") == "id"]
    if ids and not any(_is_imagenet(ctx, d) for d in ids):
        notes.append(
            f"Your study's in-distribution data ({', '.join(ids)}) is not ImageNet, so its "
            "accuracies and biases are not comparable with seed 002's: your models are not "
            "placed."
        )
        return empty, empty, {}, {}
    if ctx.results.empty:
        return empty, empty, {}, {}
    results = _seed002_results(ctx, notes)
    biases = bias_table(results, BIASES)
    dims = generalization_table(results, ctx.datasets)
    used = {
        dim: [c for c in COMPONENTS[dim] if c not in dims.attrs["missing"][dim]]
        for dim in DIMENSIONS
    }
    for dim in DIMENSIONS:
        absent = dims.attrs["missing"][dim]
        names = ", ".join(f"{COMPONENTS[dim][c]}" for c in absent)
        if absent and len(absent) == len(COMPONENTS[dim]):
            notes.append(
                f"{dim}: the study has none of its datasets ({names}); the published points "
                "use the paper's full definition and your models are not placed."
            )
        elif absent:
            notes.append(
                f"{dim}: the study lacks {names}; for every model here (published too) this "
                f"dimension is the mean of {', '.join(COMPONENTS[dim][c] for c in used[dim])}."
            )
        for model, comps in (dims.attrs["missing_by_model"].get(dim) or {}).items():
            notes.append(f"{dim}: {model} lacks {', '.join(COMPONENTS[dim][c] for c in comps)}.")
    for b in BIASES:
        if b in biases.columns and not np.isfinite(biases[b]).any():
            notes.append(f"{b}: the study has no value of it; your models are not placed.")
    return biases, dims, used, _user_corruptions(ctx, results)


def _triple(r: Any) -> tuple[int, float, float]:
    return r.n, r.coefficient, r.p_value


def bias_points(ctx: ReportContext, table: pd.DataFrame) -> BiasPoints:
    """Seed 002's scatter data: its categorised ResNet-50s and the user's models.

    The published dimensions are computed from the same components as the user's
    (:func:`robustlens.analysis.generalization.dimension_components`), so that both sides mean
    the same thing; Spearman coefficients (with p-values) are given over the published models
    alone and with the user's models added.
    """
    notes: list[str] = []
    biases, dims, used, corruptions = _user_generalization(ctx, notes)
    r50 = table[table["type"].notna()].set_index("model")
    r50 = _restrict_corruptions(r50, corruptions, notes)
    parts = dimension_components(r50)
    published = pd.DataFrame(index=r50.index)
    published["category"] = r50["type"]
    for b in BIASES:
        column = f"biases.{b}"
        published[b] = r50[column] if column in r50.columns else np.nan
    components: dict[str, list[str]] = {}
    for dim in DIMENSIONS:
        comps = used.get(dim) or list(COMPONENTS[dim])
        comps = [c for c in comps if c in parts.columns]
        components[dim] = comps if used.get(dim) else []
        published[dim] = parts[comps].mean(axis=1, skipna=True) if comps else np.nan
    user = pd.DataFrame(index=pd.Index(biases.index.astype(str), name="model"))
    for b in BIASES:
        user[b] = biases[b] if b in biases.columns else np.nan
    for dim in DIMENSIONS:
        user[dim] = dims[dim].reindex(user.index) if used.get(dim) else np.nan
    empty = user.index[user.isna().all(axis=1)]
    if len(empty):
        notes.append(
            f"{', '.join(empty)}: no bias and no generalization dimension in the study; not placed."
        )
    user = user.drop(index=empty)
    rows = []
    for b in BIASES:
        for dim in DIMENSIONS:
            alone = correlate(published[b], published[dim], "spearman", n_boot=0)
            both = correlate(
                pd.concat([published[b], user[b]]),
                pd.concat([published[dim], user[dim]]),
                "spearman",
                n_boot=0,
            )
            rows.append((b, dim, alone.n, alone.coefficient, alone.p_value, *_triple(both)))
    correlations = pd.DataFrame(
        rows, columns=["bias", "dimension", "n", "rho", "p", "n_with", "rho_with", "p_with"]
    )
    return BiasPoints(published, user, components, correlations, notes)


# ------------------------------------------------------------------------------ (c) robustness
@dataclass
class RobustPoints:
    """RobustBench's L-inf leaderboard and the user's robust accuracies at its threat model.

    Attributes:
        published: the leaderboard: ``model``, ``architecture``, ``additional_data``,
            ``clean``, ``robust``, ``eps``.
        user: ``model``, ``dataset``, ``attack``, ``eps``, ``clean``, ``robust``, ``rank``.
        notes: what could not be placed.
    """

    published: pd.DataFrame
    user: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _attack(
    ctx: ReportContext, model: str, measure: str, dataset: str, value: str = ""
) -> dict[str, Any]:
    """The attack a measure recorded for a dataset in its artifacts (``{}`` if none); the
    record named after the value (``pgd`` for ``pgd_accuracy``, ``autoattack`` for
    ``autoattack_accuracy``) first, where a measure ran both attacks."""
    arts = (ctx.artifacts.get(model) or {}).get(measure) or {}
    own = value.removesuffix("_accuracy")
    for key in sorted(_ATTACK_ARTIFACTS, key=lambda k: k != own):
        rec = (arts.get(key) or {}).get(dataset) if isinstance(arts.get(key), Mapping) else None
        if isinstance(rec, Mapping) and "eps" in rec:
            return {"kind": key, **rec}
    return {}


def _weaker_than_reference(rec: Mapping[str, Any]) -> str:
    """How an AutoAttack record's budget falls short of the reference's ("" if it does not):
    fewer than 100 APGD/FAB steps (``torchattacks``' default is 10)."""
    steps = rec.get("steps")
    if steps is None:
        return ""
    if not isinstance(steps, int | float):
        return f"with {steps} APGD/FAB steps"
    return f"with {int(steps)} APGD/FAB steps" if steps < 100 else ""


def eps_text(eps: float) -> str:
    """``4/255`` when eps is a multiple of 1/510, else the number."""
    if not math.isfinite(eps):
        return "n/a"
    k = eps * 255
    return f"{k:g}/255" if abs(k * 2 - round(k * 2)) < 1e-6 else f"{eps:g}"


def robust_points(ctx: ReportContext, table: pd.DataFrame) -> RobustPoints:
    """The L-inf leaderboard entries and the user's robust accuracies at the same threat model
    (L-inf, eps 4/255, on ImageNet val); robust accuracies at other radii or norms are named in
    the notes, not placed."""
    notes: list[str] = []
    lb = table[(table["threat"] == "Linf") & table["imagenet_val|autoattack_accuracy"].notna()]
    published = pd.DataFrame(
        {
            "model": lb["model"],
            "architecture": lb["architecture"],
            "additional_data": lb["additional_data"].astype(bool),
            "clean": lb["imagenet_val"],
            "robust": lb["imagenet_val|autoattack_accuracy"],
            "eps": lb["eps"],
        }
    ).reset_index(drop=True)
    eps_lb = sorted({float(e) for e in published["eps"] if np.isfinite(e)}) or [RB_EPS]
    res = ctx.results[ctx.results["name"].isin(ROBUST_VALUES)]
    rows = []
    seen: set[tuple[str, str]] = set()
    for name in ROBUST_VALUES:
        for (model, dataset, measure), v in (
            res[res["name"] == name]
            .groupby(["model", "dataset", "measure"])["value"]
            .mean()
            .items()
        ):
            if (model, dataset) in seen or not np.isfinite(v):
                continue
            seen.add((model, dataset))
            rec = _attack(ctx, model, measure, dataset, name)
            attack = str(rec.get("attack") or ("autoattack" if "autoattack" in name else "pgd"))
            if not rec:
                notes.append(
                    f"{model}: {measure}.{name} on {dataset} records no threat model (eps, norm) "
                    "in its artifacts; not placed."
                )
                continue
            norm = str(rec.get("norm", "linf")).lower()
            eps = float(rec["eps"])
            if not _is_imagenet(ctx, dataset):
                notes.append(
                    f"{model}: robust accuracy on {dataset}, which is not ImageNet val; not "
                    "comparable with RobustBench's ImageNet leaderboard."
                )
                continue
            if norm != "linf" or not any(math.isclose(eps, e, rel_tol=1e-6) for e in eps_lb):
                notes.append(
                    f"{model}: robust accuracy on {dataset} is at {_NORMS.get(norm, norm)} eps "
                    f"{eps_text(eps)} ({attack}); RobustBench's ImageNet leaderboard is at "
                    f"L-inf eps {', '.join(eps_text(e) for e in eps_lb)}: not placed (run the "
                    "AutoAttack option at that radius to place it)."
                )
                continue
            clean = rec.get("clean_accuracy")
            if clean is None:
                c = _values(ctx, measure, "clean_accuracy", dataset)
                clean = c.get(model, np.nan)
            rows.append((model, dataset, attack, eps, float(clean), float(v)))
            weaker = _weaker_than_reference(rec)
            if attack == "autoattack" and weaker:
                notes.append(
                    f"{model}: AutoAttack on {dataset} ran {weaker}; RobustBench runs the "
                    "reference AutoAttack (100 steps, 9 target classes), so this robust accuracy "
                    "may lie slightly above it (set aa_steps: 100 for the same budget)."
                )
    user = pd.DataFrame(rows, columns=["model", "dataset", "attack", "eps", "clean", "robust"])
    user["rank"] = [rank_text(v, published["robust"].to_numpy()) for v in user["robust"]]
    if not rows and not notes:
        notes.append(
            "The study has no robust accuracy (AutoAttack or PGD on ImageNet val), so no model "
            "of yours is placed on the L-inf leaderboard."
        )
    if (user["attack"] != "autoattack").any():
        notes.append(
            "PGD is a weaker attack than AutoAttack: a PGD robust accuracy is an upper bound of "
            "the AutoAttack one, so its rank is optimistic."
        )
    return RobustPoints(published, user, notes)


@dataclass
class CorruptionPoints:
    """RobustBench's corruptions leaderboard and the user's ImageNet-C accuracy.

    Attributes:
        published: ``model``, ``architecture``, ``clean``, ``corruption`` (mean accuracy over
            ``datasets``).
        user: ``model``, ``clean``, ``corruption``, ``rank``.
        datasets: the ImageNet-C datasets (``imagenet_c/<c>/<s>``) both sides are averaged
            over (the leaderboard's 75 when the user has none).
        notes: what could not be placed.
    """

    published: pd.DataFrame
    user: pd.DataFrame
    datasets: list[str]
    notes: list[str] = field(default_factory=list)


def corruption_points(ctx: ReportContext, table: pd.DataFrame) -> CorruptionPoints:
    """The corruptions leaderboard and the user's mean ImageNet-C accuracy over the same
    corruption x severity datasets (the 15 standard corruptions the leaderboard uses)."""
    notes: list[str] = []
    lb = table[table["threat"] == "corruptions"]
    standard = [f"imagenet_c/{c}/{s}" for c in IMAGENET_C_CORRUPTIONS for s in range(1, 6)]
    canon: dict[str, str] = {}  # the study's dataset -> imagenet_c/<c>/<s>
    other: list[str] = []
    for d in list(ctx.datasets) or sorted(ctx.results["dataset"].dropna().unique()):
        tags = _tags(ctx, d)
        if not (d.startswith("imagenet_c/") or tags.get("layout") == "imagenet_c"):
            continue
        parts = d.split("/")
        key = (
            f"imagenet_c/{tags.get('corruption', parts[-2] if len(parts) > 2 else '')}/"
            f"{tags.get('severity', parts[-1])}"
        )
        if key in standard:
            canon[d] = key
        else:
            other.append(d)
    datasets = sorted(set(canon.values()), key=standard.index) or standard
    if other:
        notes.append(
            f"{len(other)} ImageNet-C datasets of the study are not among the leaderboard's 15 "
            f"corruptions and are not used here: {', '.join(other[:5])}"
            + (" ..." if len(other) > 5 else "")
        )
    if not canon:
        notes.append(
            "The study has no ImageNet-C dataset of the leaderboard's 15 corruptions "
            "(imagenet_c/<corruption>/<severity>), so no model of yours is placed on the "
            "corruptions leaderboard."
        )
    elif len(datasets) < len(standard):
        notes.append(
            f"The study has {len(datasets)} of the leaderboard's {len(standard)} ImageNet-C "
            "datasets: every model here (the leaderboard's too) is averaged over those "
            f"{len(datasets)}."
        )
    if all(d in lb.columns for d in datasets):
        corruption = lb[datasets].mean(axis=1, skipna=False)
    else:
        corruption = pd.Series(np.nan, index=lb.index)
    if datasets == standard and "imagenet_c" in lb.columns:
        corruption = corruption.fillna(lb["imagenet_c"])
    published = pd.DataFrame(
        {
            "model": lb["model"],
            "architecture": lb["architecture"],
            "clean": lb["imagenet_val"],
            "corruption": corruption,
        }
    ).reset_index(drop=True)
    mine = list(canon)
    rows = []
    if mine:
        acc = ctx.results[
            (ctx.results["measure"] == "accuracy")
            & (ctx.results["name"] == "accuracy")
            & ctx.results["dataset"].isin(mine)
        ]
        ids = user_datasets(ctx, "imagenet_val")
        clean = _values(ctx, "accuracy", "accuracy", ids[0]) if ids else pd.Series(dtype=float)
        for model, g in acc.groupby("model"):
            have = g.groupby("dataset")["value"].mean()
            lacking = [d for d in mine if d not in have.index]
            if lacking:
                notes.append(
                    f"{model} lacks {len(lacking)} of the study's ImageNet-C datasets; not placed."
                )
                continue
            rows.append((str(model), float(clean.get(model, np.nan)), float(have.mean())))
    user = pd.DataFrame(rows, columns=["model", "clean", "corruption"])
    user["rank"] = [rank_text(v, published["corruption"].to_numpy()) for v in user["corruption"]]
    return CorruptionPoints(published, user, datasets, notes)


def describe_components(components: Mapping[str, Sequence[str]]) -> str:
    """``dimension = mean(A, B)`` per dimension, for the section's text."""
    parts = []
    for dim, comps in components.items():
        if comps:
            parts.append(f"{dim} = mean({', '.join(COMPONENTS[dim][c] for c in comps)})")
        else:
            parts.append(
                f"{dim} = mean({', '.join(COMPONENTS[dim].values())}) (published models only)"
            )
    return "; ".join(parts)
