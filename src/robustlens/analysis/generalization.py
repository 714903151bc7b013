"""Seed 002's four generalization dimensions per model, and their correlation with biases.

Reference: P. Gavrikov and J. Keuper, "Can Biases in ImageNet Models Explain Generalization?",
CVPR 2024; the authors' code (``github.com/paulgavrikov/biases_vs_generalization``,
``code/plots.ipynb``) computes, from its table of top-1 accuracies::

    ID          = mean(imagenet, imagenet-v2, imagenet-real)
    Robustness  = mean(imagenet-a, imagenet-c, imagenet-cbar)
    Concepts    = mean(imagenet-sketch, imagenet-r, stylized)
    Adversarial = mean(PGD-40/low)

with ``DataFrame.mean(axis=1)``, which skips a missing value: a dimension is the mean of the
components that are present. :func:`dimensions` computes exactly this from any per-model table
of accuracies with one column per dataset; :func:`generalization_table` from a study's long
results frame. Each component is one number per model:

========================  =================  =================================================
dimension                 component          datasets (role; name as fallback)
========================  =================  =================================================
``in_distribution``       ``id``             top-1 on role ``id`` (ImageNet val, ``world/val``)
                          ``v2``             top-1 on role ``v2`` (ImageNet-V2, ``world/v2``)
                          ``real``           ``accuracy_real`` (ReaL labels) of role ``id``
``robustness``            ``natural``        top-1 on role ``natural`` (ImageNet-A; ObjectNet
                                             is not in the paper's dimension and left out)
                          ``corrupt``        role ``corrupt`` except C-bar: the plain mean over
                                             every corruption x severity dataset
                          ``corrupt_bar``    ImageNet-C-bar: the same mean over its datasets
``concepts``              ``sketch``         role ``sketch``
                          ``rendition``      role ``rendition`` (ImageNet-R)
                          ``stylized``       role ``stylized`` (Stylized-ImageNet)
``adversarial``           ``pgd``            ``pgd_accuracy`` (PGD-40, L-inf 0.5/255, the
                                             paper's low budget: the ``biases`` measure)
========================  =================  =================================================

How each component is aggregated, from the authors' code: ``eval_imagenet_c.py`` and
``eval_imagenet_cbar.py`` run every corruption at every severity and average the per-dataset
top-1 values with weight 1 each (``global_top1_meter.update(top1_meter.avg)``); in the
published ``raw-data/benchmark.csv`` ``top1_acc/imagenet-c`` is exactly the mean of the 95
columns of its 19 corruptions x 5 severities (the 15 standard ones and the 4 extra ones) and
``top1_acc/imagenet-cbar`` the mean of its 10 x 5. So the ``corrupt`` and ``corrupt_bar``
components are the plain mean over their datasets (each corruption x severity weighted
equally), and a dimension is the plain mean of its components (a mean of means, never a mean
over all datasets pooled). Where several datasets share a role (two ``id`` sets), the component
is their mean. A table may give a pre-averaged corruption column instead (e.g. a column
``imagenet_c`` with ImageNet-C's mean): it then counts as one dataset of the component.

A dimension is computed from the components present; the ones absent are named in
``attrs["missing"]`` (``{dimension: [component, ...]}``), and a component present for some
models but not for others is named per model in ``attrs["missing_by_model"]``
(``{dimension: {model: [component, ...]}}``). A dimension with no component is NaN. No bias
measure (the cue-conflict shape fraction, shape bias, ...) is ever part of a dimension: the
paper correlates biases with these dimensions, and a bias inside a dimension correlates with
itself (on the authors' table, putting the cue-conflict accuracy into Concepts in place of
Stylized-ImageNet moves Spearman(shape bias, Concepts) over their 48 ResNet-50s from 0.14 to
0.70).

Dataset roles come from ``roles`` (``{name: role}`` or ``{name: {"role": role, "tags": {...}}}``
as in a study's recorded datasets) or :func:`robustlens.roles.dataset_roles` infers them from
the names. ImageNet-C-bar and Stylized-ImageNet are recognised by role (``corrupt_bar``,
``stylized``) or, where the role says nothing more specific, by name: the ``imagenet_cbar`` and
``stylized_imagenet`` layouts, a ``cbar`` tag, a path segment ``cbar``/``corrupt_bar``/
``stylized``, or a C-bar corruption name (:data:`CBAR_CORRUPTIONS`, as the C-bar release spells
them, e.g. ``cocentric_sine_waves``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustlens._validation import check_frame
from robustlens.analysis.correlation import Method, correlation_table
from robustlens.errors import ValidationError
from robustlens.roles import dataset_roles
from robustlens.transforms.cbar import CBAR_CORRUPTIONS

__all__ = [
    "BIASES",
    "CBAR_CORRUPTIONS",
    "COMPONENTS",
    "DIMENSIONS",
    "bias_generalization_matrix",
    "bias_table",
    "dimension_components",
    "dimensions",
    "generalization_table",
    "missing_components",
]

DIMENSIONS: tuple[str, ...] = ("in_distribution", "robustness", "concepts", "adversarial")
#: the components of each dimension -> the dataset the paper uses for it
COMPONENTS: dict[str, dict[str, str]] = {
    "in_distribution": {"id": "ImageNet val", "v2": "ImageNet-V2", "real": "ImageNet-ReaL"},
    "robustness": {
        "natural": "ImageNet-A",
        "corrupt": "ImageNet-C",
        "corrupt_bar": "ImageNet-C-bar",
    },
    "concepts": {
        "sketch": "ImageNet-Sketch",
        "rendition": "ImageNet-R",
        "stylized": "Stylized-ImageNet",
    },
    "adversarial": {"pgd": "PGD-40 at the low budget"},
}
BIASES: tuple[str, ...] = (
    "shape_bias",
    "low_freq_bias",
    "high_freq_bias",
    "spectral_bias",
    "cb_bandwidth_octaves",
    "cb_center_cpi",
    "cb_peak_sensitivity",
)
_COLUMNS = ("model", "dataset", "measure", "name", "value")
_MAX_MODELS_NAMED = 5  # models named per missing component in missing_components()
# value name -> the measure that writes it (a table column ``dataset|measure.name``)
_VALUES = {"accuracy": "accuracy", "accuracy_real": "accuracy", "pgd_accuracy": "biases"}
# where the role alone decides (roles that are components of their own)
_ROLE_COMPONENT = {
    "id": "id",
    "v2": "v2",
    "natural": "natural",
    "corrupt_bar": "corrupt_bar",
    "sketch": "sketch",
    "rendition": "rendition",
    "stylized": "stylized",
}


def _check_results(results: Any) -> pd.DataFrame:
    return check_frame(
        results,
        "results",
        _COLUMNS,
        what="the long results DataFrame",
        hint="; pass Store.results() or StudyResult.results()",
    )


def _per_model(results: pd.DataFrame, measure: str, name: str) -> pd.DataFrame:
    """model x dataset table of one value (first value if duplicated)."""
    df = results[(results["measure"] == measure) & (results["name"] == name)]
    if df.empty:
        return pd.DataFrame()
    return df.pivot_table(
        index="model", columns="dataset", values="value", aggfunc="first", dropna=False
    ).astype(np.float64)


def _models(results: pd.DataFrame) -> pd.Index:
    return pd.Index(sorted(results["model"].dropna().unique()), name="model")


def _parse_column(column: Any) -> tuple[str, str] | None:
    """``(dataset, value name)`` of a table column, or ``None`` for a column not used.

    A plain name is a dataset's top-1 accuracy; ``dataset|measure.name`` (the study's
    ``results_wide`` export) or ``dataset|name`` gives ``accuracy``, ``accuracy_real`` or
    ``pgd_accuracy`` of ``dataset``.
    """
    column = str(column)
    if "|" not in column:
        return column, "accuracy"
    dataset, value = column.rsplit("|", 1)
    measure, _, name = value.rpartition(".")
    if name in _VALUES and measure in ("", _VALUES[name]):
        return dataset, name
    return None


def _tags(roles: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    entry = (roles or {}).get(name)
    tags = entry.get("tags") if isinstance(entry, Mapping) else None
    return tags if isinstance(tags, Mapping) else {}


def _component(name: str, role: str, tags: Mapping[str, Any]) -> str | None:
    """The component an accuracy on dataset ``name`` of ``role`` belongs to (``None``: none)."""
    if role in _ROLE_COMPONENT:
        if role == "natural" and name.split("/")[0] == "objectnet":
            return None  # natural, but not the adversarially filtered ImageNet-A
        return _ROLE_COMPONENT[role]
    if role not in ("corrupt", "other"):
        return None
    segments = name.split("/")
    corruption = str(tags.get("corruption", ""))
    if (
        tags.get("cbar")
        or segments[0] == "imagenet_cbar"
        or {"cbar", "corrupt_bar"} & set(segments)
        or corruption in CBAR_CORRUPTIONS
        or set(CBAR_CORRUPTIONS) & set(segments)
    ):
        return "corrupt_bar"
    if role == "corrupt":
        return "corrupt"
    if segments[0] == "stylized_imagenet" or "stylized" in segments:
        return "stylized"
    return None


def dimension_components(
    table: pd.DataFrame, roles: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """The ten components of seed 002's dimensions, one column each, one row per model.

    Each component is the mean over its datasets (NaN values skipped; NaN where the model has
    none); ``corrupt`` and ``corrupt_bar`` are the plain mean over every corruption x severity
    dataset, as the authors' code averages them. See the module docstring for which dataset
    feeds which component.

    Args:
        table: one row per model (the index, or a ``model`` column) and one column per
            dataset: a dataset name (its top-1 accuracy) or ``dataset|measure.name`` /
            ``dataset|name`` for ``accuracy``, ``accuracy_real`` (ReaL) and ``pgd_accuracy``,
            as in the study's ``results_wide`` export. Other columns are ignored.
        roles: dataset roles (see :func:`robustlens.roles.dataset_roles`); inferred from the
            names by default.

    Returns:
        DataFrame indexed by model with one column per component present, in the order of
        :data:`COMPONENTS`; ``attrs["columns"]`` maps each component to the table columns
        averaged into it.

    Example:
        >>> t = pd.DataFrame({"imagenet_val": [0.8], "imagenet_val|accuracy.accuracy_real": [0.9],
        ...                   "imagenet_c/fog/1": [0.6], "imagenet_c/fog/2": [0.4]},
        ...                  index=pd.Index(["m"], name="model"))
        >>> dimension_components(t).to_dict("records")
        [{'id': 0.8, 'real': 0.9, 'corrupt': 0.5}]
    """
    if not isinstance(table, pd.DataFrame):
        raise ValidationError(
            "table: expected a DataFrame with one row per model and one column per dataset, "
            f"got {type(table).__name__}"
        )
    if "model" in table.columns:
        table = table.set_index("model")
    parsed = {c: _parse_column(c) for c in table.columns}
    names = sorted({p[0] for p in parsed.values() if p is not None})
    role_of = dataset_roles(names, roles)
    columns: dict[str, list[Any]] = {}
    for column, p in parsed.items():
        if p is None:
            continue
        dataset, value = p
        role = role_of[dataset]
        if value == "pgd_accuracy":
            comp = "pgd"
        elif value == "accuracy_real":
            comp = "real" if role == "id" else None
        else:
            comp = _component(dataset, role, _tags(roles, dataset))
        if comp is not None:
            columns.setdefault(comp, []).append(column)
    order = [c for comps in COMPONENTS.values() for c in comps if c in columns]
    out = pd.DataFrame(index=table.index, dtype=np.float64)
    for comp in order:
        values = table[columns[comp]].apply(pd.to_numeric, errors="coerce").astype(np.float64)
        out[comp] = values.mean(axis=1, skipna=True)
    out.attrs["columns"] = {c: [str(x) for x in columns[c]] for c in order}
    return out


def dimensions(table: pd.DataFrame, roles: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Seed 002's four generalization dimensions from a per-model table of accuracies.

    ``in_distribution = mean(ImageNet val, ImageNet-V2, ImageNet-ReaL)``,
    ``robustness = mean(ImageNet-A, ImageNet-C, ImageNet-C-bar)``,
    ``concepts = mean(ImageNet-Sketch, ImageNet-R, Stylized-ImageNet)``,
    ``adversarial = PGD-40 robust accuracy at the low budget``; each term is a component of
    :func:`dimension_components` (ImageNet-C and -C-bar: the plain mean over their corruption x
    severity datasets), and a dimension is the mean of the components a model has (the
    authors' ``DataFrame.mean(axis=1)``). The synthetic world's counterparts count as the same
    components (``world/val``, ``world/v2``, ``world/corrupt/...``, ``world/sketch``, ...).
    No bias measure enters a dimension.

    Reference: Gavrikov and Keuper, CVPR 2024 (Sec. 3; ``code/plots.ipynb``,
    ``code/eval_imagenet_c.py`` and ``code/eval_imagenet_cbar.py`` of their release).

    Args:
        table: one row per model, one column per dataset (see :func:`dimension_components`);
            accuracies as fractions or percent (a dimension has the table's scale).
        roles: dataset roles (``{name: role}`` or ``{name: {"role": ..., "tags": ...}}``);
            inferred from the names by default. Name ImageNet-C-bar's datasets with the role
            ``corrupt_bar`` (or a ``cbar`` tag) and Stylized-ImageNet with ``stylized`` where
            their names do not say so.

    Returns:
        DataFrame indexed by model with columns :data:`DIMENSIONS`; ``attrs["components"]``
        maps each dimension to the ``"column:value"`` entries used, ``attrs["missing"]`` each
        dimension to the components absent from the table, ``attrs["missing_by_model"]`` each
        dimension to ``{model: [components]}`` for components the table has but a model lacks.

    Example:
        >>> t = pd.DataFrame({"world/val": [0.9, 0.8], "world/v2": [0.7, 0.6],
        ...                   "world/corrupt/fog/1": [0.5, 0.4], "world/sketch": [0.3, 0.2],
        ...                   "world/adversarial|biases.pgd_accuracy": [0.1, np.nan]},
        ...                  index=pd.Index(["a", "b"], name="model"))
        >>> d = dimensions(t)
        >>> d.round(3).to_dict("index")["a"]
        {'in_distribution': 0.8, 'robustness': 0.5, 'concepts': 0.3, 'adversarial': 0.1}
        >>> d.attrs["missing"]["concepts"], d.attrs["missing_by_model"]["adversarial"]
        (['rendition', 'stylized'], {'b': ['pgd']})
    """
    parts = dimension_components(table, roles)
    used = parts.attrs["columns"]
    out = pd.DataFrame(index=parts.index, columns=list(DIMENSIONS), dtype=np.float64)
    components: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    by_model: dict[str, dict[str, list[str]]] = {}
    for dim, comps in COMPONENTS.items():
        present = [c for c in comps if c in parts.columns]
        missing[dim] = [c for c in comps if c not in parts.columns]
        components[dim] = sorted(_label(col) for c in present for col in used[c])
        if present:
            out[dim] = parts[present].mean(axis=1, skipna=True)
        lacking = {
            str(m): [c for c in present if not np.isfinite(row[c])]
            for m, row in parts[present].iterrows()
        }
        by_model[dim] = {m: cs for m, cs in lacking.items() if cs}
    out.attrs["components"] = components
    out.attrs["missing"] = missing
    out.attrs["missing_by_model"] = by_model
    return out


def _label(column: str) -> str:
    """``dataset:value`` of a table column (as ``attrs["components"]`` lists it)."""
    dataset, value = _parse_column(column) or (column, "")
    return f"{dataset}:{value}"


def missing_components(table: pd.DataFrame) -> list[str]:
    """Lines naming the components the dimensions of :func:`dimensions` lack: one per
    dimension for the components no model has, one per component some models lack (naming at
    most five of them).

    Example:
        >>> t = dimensions(pd.DataFrame({"world/val": [0.9], "world/sketch": [0.5]}, index=["m"]))
        >>> for line in missing_components(t)[:3]:
        ...     print(line)
        in_distribution: v2 (ImageNet-V2), real (ImageNet-ReaL)
        robustness: none of natural (ImageNet-A), corrupt (ImageNet-C), corrupt_bar (ImageNet-C-bar)
        concepts: rendition (ImageNet-R), stylized (Stylized-ImageNet)
    """
    lines = []
    missing = table.attrs.get("missing", {})
    by_model = table.attrs.get("missing_by_model", {})
    for dim, comps in COMPONENTS.items():
        absent = list(missing.get(dim, []))
        names = ", ".join(f"{c} ({comps[c]})" for c in absent)
        if absent and len(absent) == len(comps):
            lines.append(f"{dim}: none of {names}")
        elif absent:
            lines.append(f"{dim}: {names}")
        lacking = by_model.get(dim) or {}
        for c in comps:
            models = [m for m, cs in lacking.items() if c in cs]
            if models:
                shown = ", ".join(models[:_MAX_MODELS_NAMED])
                more = len(models) - _MAX_MODELS_NAMED
                shown += f" and {more} more" if more > 0 else ""
                lines.append(f"{dim}: {c} ({comps[c]}) missing for {shown}")
    return lines


def generalization_table(
    results: pd.DataFrame,
    roles: Mapping[str, Any] | None = None,
    *,
    accuracy_measure: str = "accuracy",
    bias_measure: str = "biases",
) -> pd.DataFrame:
    """The four generalization dimensions of seed 002 from a study's long results, one row per
    model: :func:`dimensions` of the table of ``accuracy`` and ``accuracy_real`` (of
    ``accuracy_measure``) and ``pgd_accuracy`` (of ``bias_measure``) per dataset.

    Reference: Gavrikov and Keuper, CVPR 2024 (Sec. 3, generalization dimensions).

    Args:
        results: long results frame (model, dataset, measure, name, value).
        roles: dataset roles (see :func:`robustlens.roles.dataset_roles`); inferred from the
            names by default.
        accuracy_measure: the measure whose ``accuracy`` and ``accuracy_real`` values are used.
        bias_measure: the measure holding ``pgd_accuracy``.

    Returns:
        DataFrame indexed by model with columns :data:`DIMENSIONS` and the ``attrs`` of
        :func:`dimensions` (``components``, ``missing``, ``missing_by_model``).

    Example:
        >>> rows = [("m", "world/val", "accuracy", "accuracy", 0.9),
        ...         ("m", "world/v2", "accuracy", "accuracy", 0.7),
        ...         ("m", "world/corrupt/fog/1", "accuracy", "accuracy", 0.6),
        ...         ("m", "world/sketch", "accuracy", "accuracy", 0.5),
        ...         ("m", "world/cue_conflict", "biases", "shape_fraction", 0.2),
        ...         ("m", "world/adversarial", "biases", "pgd_accuracy", 0.3)]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> t = generalization_table(df)
        >>> t.round(3).to_dict("records")
        [{'in_distribution': 0.8, 'robustness': 0.6, 'concepts': 0.5, 'adversarial': 0.3}]
        >>> t.attrs["missing"]["concepts"]
        ['rendition', 'stylized']
    """
    results = _check_results(results)
    models = _models(results)
    frames = []
    for measure, name in (
        (accuracy_measure, "accuracy"),
        (accuracy_measure, "accuracy_real"),
        (bias_measure, "pgd_accuracy"),
    ):
        t = _per_model(results, measure, name)
        if t.shape[1]:
            suffix = f"|{_VALUES[name]}.{name}"
            frames.append(t.rename(columns=lambda d, s=suffix: f"{d}{s}"))
    table = pd.concat(frames, axis=1) if frames else pd.DataFrame()
    return dimensions(table.reindex(models), roles)


def bias_table(
    results: pd.DataFrame, biases: Sequence[str] = BIASES, *, measure: str = "biases"
) -> pd.DataFrame:
    """One row per model, one column per bias (mean over the datasets that report it).

    NaN values (a failed critical-band fit) are skipped in the mean; a model whose every value
    of a bias is NaN gets NaN. A bias absent from the results is an all-NaN column.

    Args:
        results: long results frame.
        biases: value names of the ``biases`` measure (default :data:`BIASES`).
        measure: the measure name.

    Returns:
        DataFrame indexed by model with one column per bias.

    Example:
        >>> df = pd.DataFrame([("m", "world/val", "biases", "low_freq_bias", 0.8)],
        ...                   columns=["model", "dataset", "measure", "name", "value"])
        >>> bias_table(df, ["low_freq_bias", "shape_bias"]).to_dict("records")
        [{'low_freq_bias': 0.8, 'shape_bias': nan}]
    """
    results = _check_results(results)
    if isinstance(biases, str):
        raise ValidationError(f"biases: expected a list of names, got the string {biases!r}")
    models = _models(results)
    out = pd.DataFrame(index=models, columns=list(biases), dtype=np.float64)
    for b in biases:
        t = _per_model(results, measure, b)
        if t.shape[1]:
            out[b] = t.reindex(models).mean(axis=1, skipna=True)
    return out


def bias_generalization_matrix(
    results: pd.DataFrame,
    roles: Mapping[str, Any] | None = None,
    biases: Sequence[str] = BIASES,
    dimensions: Sequence[str] = DIMENSIONS,
    method: Method = "spearman",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation across models of every bias with every generalization dimension.

    Rows of the correlated table are models (:func:`bias_table` joined with
    :func:`generalization_table`); each (bias, dimension) pair is computed by
    :func:`robustlens.analysis.correlation.correlate` on the models where both are finite
    (``n`` says how many). ``shown`` is the coefficient where ``p < alpha`` and 0 elsewhere
    (seed 002's heatmap convention); ``coefficient`` keeps the true value.

    Reference: Gavrikov et al., CVPR 2024 (Fig. 1: Spearman correlations, non-significant
    cells shown as 0).

    Args:
        results: long results frame.
        roles: dataset roles (see :func:`robustlens.roles.dataset_roles`).
        biases: bias value names (rows, ``x``).
        dimensions: dimensions (columns, ``y``), a subset of :data:`DIMENSIONS`.
        method: ``"spearman"`` (default, as the paper), ``"pearson"`` or ``"kendall"``.
        alpha: significance level.
        n_boot: bootstrap resamples for the confidence intervals.
        seed: bootstrap seed.

    Returns:
        Long DataFrame: x, y, coefficient, p_value, ci_low, ci_high, n, significant, shown,
        method (see :func:`robustlens.analysis.correlation.correlation_table`); its ``attrs``
        are those of :func:`generalization_table` (which components each dimension used and
        which it lacks).

    Example:
        >>> rows = []
        >>> for i, m in enumerate("abcde"):
        ...     rows += [(m, "world/val", "accuracy", "accuracy", 0.5 + 0.1 * i),
        ...              (m, "world/val", "biases", "low_freq_bias", 0.1 * i)]
        >>> df = pd.DataFrame(rows, columns=["model", "dataset", "measure", "name", "value"])
        >>> t = bias_generalization_matrix(df, biases=["low_freq_bias"],
        ...                                dimensions=["in_distribution"], n_boot=0)
        >>> t[["x", "y", "n", "significant"]].to_dict("records")
        [{'x': 'low_freq_bias', 'y': 'in_distribution', 'n': 5, 'significant': True}]
        >>> round(float(t["coefficient"].iloc[0]), 6), round(float(t["shown"].iloc[0]), 6)
        (1.0, 1.0)
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or isinstance(dimensions, str):
        raise ValidationError(
            f"dimensions: expected a list drawn from {list(DIMENSIONS)}, got {dimensions!r}"
        )
    bt = bias_table(results, biases)
    gt = generalization_table(results, roles)
    df = bt.join(pd.DataFrame(gt[list(dimensions)]), how="outer")
    df.attrs = {}
    out = correlation_table(
        df, list(biases), list(dimensions), method=method, alpha=alpha, n_boot=n_boot, seed=seed
    )
    out.attrs = {k: gt.attrs[k] for k in ("components", "missing", "missing_by_model")}
    return out
