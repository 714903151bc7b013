"""Effective robustness across a zoo: baselines fitted over standard models, matched pairs.

Taori et al. (NeurIPS 2020) observe that, on logit axes, the OOD accuracy of standard-trained
models is close to a linear function of their in-distribution accuracy; a model's effective
robustness (ER) is its OOD accuracy above that line. Bansal & Grover (2023) ask whether
training on real + generated images raises ER; the clean comparison is between a model
trained with generated data and its *matched* real-only twin (same recipe otherwise).

* :func:`zoo_effective_robustness` fits one baseline per shift over the zoo's standard
  models and returns every model's ER and relative robustness (``acc_ood - acc_id``).
* :func:`matched_pairs` finds (generated-data model, real-only twin) pairs from recipes.
* :func:`er_pairs_table` lines the two up per shift (``delta_er = er_gen - er_real``).

Inputs are the study's long results table (the ``robustness`` measure's ``acc_id`` and
``acc_ood`` per model and shifted dataset) and ``{model: config}``, where a zoo model's config
holds its recipe under ``"member"`` (:class:`~robustlens.models.zoo.ZooMember` as a dict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustlens.errors import FitError, ValidationError
from robustlens.metrics.effective_robustness import (
    Baseline,
    effective_robustness,
    fit_baseline,
    relative_robustness,
)

__all__ = [
    "STANDARD_AUGMENTS",
    "er_pairs_table",
    "is_generated",
    "is_standard",
    "matched_pairs",
    "models_config_from_artifacts",
    "robustness_points",
    "zoo_effective_robustness",
]

#: augmentations that count as standard training for the default baseline
STANDARD_AUGMENTS = ("none", "standard")
#: recipe fields that may differ between a generated-data model and its real-only twin
_TWIN_FREE = ("name", "generated", "generated_ratio", "tags")


def _member(config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    member = (config or {}).get("member")
    return member if isinstance(member, Mapping) else None


def is_generated(config: Mapping[str, Any] | None) -> bool:
    """Whether a model trained on generated data (zoo ``member.generated`` set, or tagged).

    Example:
        >>> is_generated({"member": {"generated": "/gen"}}), is_generated({"member": {}})
        (True, False)
    """
    member = _member(config)
    if member is not None and member.get("generated"):
        return True
    tags = (member or {}).get("tags") or (config or {}).get("tags") or ()
    return "generated" in tags


def is_standard(config: Mapping[str, Any] | None) -> bool:
    """Default baseline membership: no generated data and augment in :data:`STANDARD_AUGMENTS`.

    Models without a zoo recipe (e.g. pretrained timm models) count as standard unless they
    are tagged ``generated``: pass ``baseline_models`` to choose explicitly.

    Example:
        >>> is_standard({"member": {"augment": "standard", "generated": None}})
        True
        >>> is_standard({"member": {"augment": "texrand", "generated": None}})
        False
    """
    if is_generated(config):
        return False
    member = _member(config)
    if member is None:
        return True
    return member.get("augment", "standard") in STANDARD_AUGMENTS


def models_config_from_artifacts(
    artifacts: Mapping[str, Mapping[str, Any]],
    configs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{model: config}`` from study artifacts (the ``robustness`` measure saves recipes).

    ``configs`` (the study's ``{model: config}``) adds models without artifacts and replaces
    a saved recipe by the full config where that config holds the zoo recipe (``member``).

    Example:
        >>> arts = {"a": {"robustness": {"model_config": {"member": {"name": "a"}}}}}
        >>> models_config_from_artifacts(arts, {"a": {"source": "zoo"}, "b": {"source": "timm"}})
        {'a': {'member': {'name': 'a'}}, 'b': {'source': 'timm'}}
    """
    out: dict[str, Any] = {}
    for model, per_measure in artifacts.items():
        cfg = (per_measure.get("robustness") or {}).get("model_config")
        if cfg is not None:
            out[model] = cfg
    for model, cfg in (configs or {}).items():
        if isinstance(cfg, Mapping) and ("member" in cfg or model not in out):
            out[model] = cfg
    return out


def robustness_points(results: pd.DataFrame) -> pd.DataFrame:
    """(model, shift, acc_id, acc_ood) rows from the long results table.

    Raises:
        ValidationError: the table has no ``robustness`` rows (the measure did not run).
    """
    need = {"model", "dataset", "measure", "name", "value"}
    missing = need - set(results.columns)
    if missing:
        raise ValidationError(
            f"results: expected the long results table with columns {sorted(need)}, "
            f"missing {sorted(missing)}"
        )
    df = results[
        (results["measure"] == "robustness") & (results["name"].isin(["acc_id", "acc_ood"]))
    ]
    if df.empty:
        raise ValidationError(
            "results hold no 'robustness' measure values (acc_id, acc_ood); run the study with "
            "measures: [accuracy, robustness]"
        )
    wide = df.pivot_table(
        index=["model", "dataset"], columns="name", values="value", aggfunc="first"
    ).reset_index()
    wide = wide.rename(columns={"dataset": "shift"})
    wide.columns.name = None
    return wide.dropna(subset=["acc_id", "acc_ood"])[["model", "shift", "acc_id", "acc_ood"]]


def zoo_effective_robustness(
    results: pd.DataFrame,
    models_config: Mapping[str, Mapping[str, Any]],
    transform: str = "logit",
    baseline_models: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, dict[str, Baseline]]:
    """ER of every model against a baseline fitted over the zoo's standard models.

    Per shift: ``fit_baseline`` (least squares of T(acc_ood) on T(acc_id), T = logit or
    probit; Taori et al. 2020) over the baseline models, then for every model
    ``er = acc_ood - T^-1(slope * T(acc_id) + intercept)`` and ``relative_robustness =
    acc_ood - acc_id``.

    Args:
        results: long results table (model, dataset, measure, name, value) with the
            ``robustness`` measure's ``acc_id`` and ``acc_ood``.
        models_config: ``{model: config}``; zoo configs carry ``member`` (the recipe).
        transform: ``"logit"`` or ``"probit"``.
        baseline_models: models to fit the line on (default: :func:`is_standard` ones).

    Returns:
        ``(table, baselines)``: one row per (model, shift) with ``acc_id``, ``acc_ood``,
        ``baseline_acc`` (the line's prediction), ``er``, ``relative_robustness``,
        ``in_baseline``, ``generated`` and ``transform``; and ``{shift: Baseline}`` (with
        ``r2`` and ``n``). A shift whose line cannot be fitted (fewer than 2 baseline models,
        or all at the same ID accuracy) has no baseline and NaN ER.

    Example:
        >>> res = pd.DataFrame([
        ...     (m, "s", "robustness", k, v) for m, a, b in
        ...     [("a", 0.5, 0.268941), ("b", 0.731059, 0.5), ("c", 0.880797, 0.731059),
        ...      ("g", 0.731059, 0.6)] for k, v in (("acc_id", a), ("acc_ood", b))],
        ...     columns=["model", "dataset", "measure", "name", "value"])
        >>> cfg = {m: {"member": {"augment": "standard", "generated": None}} for m in "abc"}
        >>> cfg["g"] = {"member": {"augment": "standard", "generated": "/gen"}}
        >>> table, lines = zoo_effective_robustness(res, cfg)
        >>> round(lines["s"].slope, 3), round(lines["s"].intercept, 3)
        (1.0, -1.0)
        >>> er = table.set_index("model")["er"]
        >>> round(float(er["g"]), 3), bool(er[["a", "b", "c"]].abs().max() < 1e-5)
        (0.1, True)
    """
    points = robustness_points(results)
    points = points.assign(generated=[is_generated(models_config.get(m)) for m in points["model"]])
    if baseline_models is None:
        chosen = {m for m in points["model"].unique() if is_standard(models_config.get(m))}
    else:
        chosen = set(baseline_models)
        unknown = sorted(chosen - set(points["model"]))
        if unknown:
            raise ValidationError(
                f"baseline_models {unknown} have no robustness results; models with results: "
                f"{sorted(points['model'].unique())}"
            )
    points = points.assign(in_baseline=points["model"].isin(chosen))
    baselines: dict[str, Baseline] = {}
    frames = []
    for shift, grp in points.groupby("shift", sort=True):
        base = grp[grp["in_baseline"]]
        grp = grp.copy()
        try:
            line = fit_baseline(base["acc_id"].to_numpy(), base["acc_ood"].to_numpy(), transform)
        except FitError:
            line = None
        a_id, a_ood = grp["acc_id"].to_numpy(float), grp["acc_ood"].to_numpy(float)
        if line is not None:
            baselines[str(shift)] = line
            grp["baseline_acc"] = np.asarray(line.predict(a_id), dtype=float).reshape(-1)
            grp["er"] = np.asarray(effective_robustness(a_id, a_ood, line), float).reshape(-1)
        else:
            grp["baseline_acc"] = np.nan
            grp["er"] = np.nan
        grp["relative_robustness"] = np.asarray(relative_robustness(a_id, a_ood)).reshape(-1)
        frames.append(grp)
    table = pd.concat(frames, ignore_index=True)
    table["transform"] = transform
    cols = [
        "model",
        "shift",
        "acc_id",
        "acc_ood",
        "baseline_acc",
        "er",
        "relative_robustness",
        "in_baseline",
        "generated",
        "transform",
    ]
    return table[cols].sort_values(["shift", "model"]).reset_index(drop=True), baselines


def _twin_key(member: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in member.items() if k not in _TWIN_FREE))


def matched_pairs(models_config: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(generated-data model, real-only twin) pairs: same zoo recipe but for data source.

    A twin's recipe equals the generated model's in every field except ``name``,
    ``generated``, ``generated_ratio`` and ``tags``, and it uses no generated data. With
    several candidates the one whose name is the generated model's name minus a ``-gen``
    suffix wins, else the first by name. Models without a twin are left out.

    Example:
        >>> base = {"arch": "cnn", "width": 8, "augment": "standard", "generated": None}
        >>> cfg = {"cnn8": {"member": {**base, "name": "cnn8"}},
        ...        "cnn8-gen": {"member": {**base, "name": "cnn8-gen", "generated": "/g"}},
        ...        "cnn16": {"member": {**base, "name": "cnn16", "width": 16}}}
        >>> matched_pairs(cfg)
        [('cnn8-gen', 'cnn8')]
    """
    real: dict[tuple, list[str]] = {}
    gens: list[tuple[str, tuple]] = []
    for name, cfg in models_config.items():
        member = _member(cfg)
        if member is None:
            continue
        key = _twin_key(member)
        if is_generated(cfg):
            gens.append((name, key))
        else:
            real.setdefault(key, []).append(name)
    pairs = []
    for name, key in sorted(gens):
        cands = sorted(real.get(key, []))
        if not cands:
            continue
        stem = name[: -len("-gen")] if name.endswith("-gen") else None
        pairs.append((name, stem if stem in cands else cands[0]))
    return pairs


def er_pairs_table(
    er_table: pd.DataFrame,
    pairs: Sequence[tuple[str, str]] | None = None,
    models_config: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Generated-data models next to their real-only twins, per shift.

    Args:
        er_table: the first output of :func:`zoo_effective_robustness`.
        pairs: (generated, real) model pairs (default: :func:`matched_pairs` of
            ``models_config``).
        models_config: needed when ``pairs`` is None.

    Returns:
        One row per (pair, shift): ``shift``, ``generated``, ``real``, ``acc_id_gen``,
        ``acc_id_real``, ``acc_ood_gen``, ``acc_ood_real``, ``er_gen``, ``er_real`` and
        ``delta_er = er_gen - er_real`` (positive: generated data raised ER), plus
        ``delta_acc_ood``.
    """
    if pairs is None:
        if models_config is None:
            raise ValidationError("er_pairs_table: pass pairs or models_config")
        pairs = matched_pairs(models_config)
    cols = [
        "shift",
        "generated",
        "real",
        "acc_id_gen",
        "acc_id_real",
        "acc_ood_gen",
        "acc_ood_real",
        "er_gen",
        "er_real",
        "delta_er",
        "delta_acc_ood",
    ]
    idx = er_table.set_index(["model", "shift"])
    rows = []
    for gen, real in pairs:
        for shift in sorted(er_table["shift"].unique()):
            if (gen, shift) not in idx.index or (real, shift) not in idx.index:
                continue
            g, r = idx.loc[(gen, shift)], idx.loc[(real, shift)]
            rows.append(
                {
                    "shift": shift,
                    "generated": gen,
                    "real": real,
                    "acc_id_gen": g["acc_id"],
                    "acc_id_real": r["acc_id"],
                    "acc_ood_gen": g["acc_ood"],
                    "acc_ood_real": r["acc_ood"],
                    "er_gen": g["er"],
                    "er_real": r["er"],
                    "delta_er": g["er"] - r["er"],
                    "delta_acc_ood": g["acc_ood"] - r["acc_ood"],
                }
            )
    return pd.DataFrame(rows, columns=cols)
