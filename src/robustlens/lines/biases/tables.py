"""The tables of seed 002, built once and rendered by the report (HTML) and the terminal (rich).

Every function returns a :class:`robustlens.tables.Table` (or the plain data a table and a
figure share); :mod:`robustlens.lines.biases.section` calls ``.to_html()`` and
:mod:`robustlens.lines.biases.commands` prints ``.to_rich()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from robustlens.analysis.generalization import (
    BIASES,
    COMPONENTS,
    DIMENSIONS,
    missing_components,
)
from robustlens.formatting import number, significant
from robustlens.tables import Table

__all__ = [
    "BIAS_COLUMNS",
    "augment",
    "bias_models_table",
    "by_dataset",
    "correlation_matrix_table",
    "critical_band_failures",
    "critical_band_rows",
    "generalization_dimensions_table",
    "missing_rows",
    "per_category_table",
    "shape_bias_comparison",
]

MEASURE = "biases"

#: the columns of the per-model bias table (the biases, the fit flag and PGD accuracy)
BIAS_COLUMNS = (*BIASES, "cb_fit_ok", "pgd_accuracy")


def augment(config: Mapping[str, Any] | None) -> str:
    """The training augmentation of a model from its config (zoo members record it).

    Example:
        >>> augment({"member": {"augment": "texrand"}}), augment({}), augment(None)
        ('texrand', '', '')
    """
    config = config or {}
    member = config.get("member") or {}
    return str(member.get("augment") or config.get("augment") or "")


def by_dataset(artifacts: Mapping[str, Mapping[str, Any]], part: str) -> dict[str, dict[str, Any]]:
    """``{dataset: {model: artifact}}`` of one part of the ``biases`` artifacts.

    Args:
        artifacts: ``{model: {measure: artifacts}}`` (a study's or the report context's).
        part: ``"spectral"``, ``"critical_band"``, ``"shape_bias"`` or ``"pgd"``.

    Example:
        >>> by_dataset({"m": {"biases": {"pgd": {"adv": {"pgd_accuracy": 0.1}}}}}, "pgd")
        {'adv': {'m': {'pgd_accuracy': 0.1}}}
    """
    out: dict[str, dict[str, Any]] = {}
    for model, by_measure in sorted(artifacts.items()):
        for ds, art in ((by_measure or {}).get(MEASURE, {}) or {}).get(part, {}).items():
            out.setdefault(ds, {})[model] = art
    return out


def critical_band_failures(
    artifacts: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, str, str]]:
    """(model, dataset, reason) of every failed critical-band fit, by model."""
    failed = [
        (model, ds, str(art.get("reason")))
        for ds, by_model in by_dataset(artifacts, "critical_band").items()
        for model, art in by_model.items()
        if not art.get("ok")
    ]
    return sorted(failed, key=lambda f: f[0])


def shape_bias_comparison(values: pd.Series, augments: Mapping[str, str]) -> str:
    """Mean shape bias of the texture-randomized models vs the others, with their counts.

    Example:
        >>> shape_bias_comparison(pd.Series({"a": 0.6, "b": 0.2, "c": 0.4}), {"a": "texrand"})
        'texture-randomized 0.600 (n=1) vs others 0.300 (n=2)'
    """
    tex = [m for m in values.index if augments.get(str(m)) == "texrand"]
    rest = [m for m in values.index if m not in tex]
    return (
        f"texture-randomized {number(values[tex].mean())} (n={len(tex)}) vs "
        f"others {number(values[rest].mean())} (n={len(rest)})"
    )


def bias_models_table(biases: pd.DataFrame, augments: Mapping[str, str]) -> Table:
    """One row per model: its augmentation and every column of :data:`BIAS_COLUMNS`.

    Args:
        biases: :func:`robustlens.analysis.generalization.bias_table` of ``BIAS_COLUMNS``.
        augments: ``{model: augmentation}``.
    """
    rows = [
        [str(m), augments.get(str(m), ""), *(row[c] for c in BIAS_COLUMNS)]
        for m, row in biases.iterrows()
    ]
    return Table("biases (seed 002)", ["model", "augment", *BIAS_COLUMNS], rows)


def generalization_dimensions_table(dimensions: pd.DataFrame) -> Table:
    """One row per model, one column per generalization dimension; the caption counts the
    values each dimension averages and names the components it lacks (a dimension is the mean
    of the components present, as seed 002 computes it).

    Args:
        dimensions: :func:`robustlens.analysis.generalization.generalization_table` (or
            :func:`~robustlens.analysis.generalization.dimensions`).

    Example:
        >>> from robustlens.analysis.generalization import dimensions
        >>> d = dimensions(pd.DataFrame({"world/val": [0.9], "world/v2": [0.8]}, index=["m"]))
        >>> print(generalization_dimensions_table(d).caption)  # doctest: +NORMALIZE_WHITESPACE
        component values per dimension: in_distribution 2, robustness 0, concepts 0,
        adversarial 0. Missing: in_distribution: real (ImageNet-ReaL); robustness: none of
        natural (ImageNet-A), corrupt (ImageNet-C), corrupt_bar (ImageNet-C-bar); concepts:
        none of sketch (ImageNet-Sketch), rendition (ImageNet-R), stylized (Stylized-ImageNet);
        adversarial: none of pgd (PGD-40 at the low budget)
    """
    comps = dimensions.attrs.get("components", {})
    counts = ", ".join(f"{d} {len(comps.get(d, []))}" for d in DIMENSIONS)
    rows = [[str(m), *(row[d] for d in DIMENSIONS)] for m, row in dimensions.iterrows()]
    missing = missing_components(dimensions)
    note = f"Missing: {'; '.join(missing)}" if missing else "No component missing"
    return Table(
        "generalization dimensions (seed 002)",
        ["model", *DIMENSIONS],
        rows,
        caption=f"component values per dimension: {counts}. {note}",
    )


def missing_rows(dimensions: pd.DataFrame) -> pd.DataFrame:
    """The components each dimension lacks, one row each (for the CSV next to the table).

    Columns ``dimension, component, dataset, model``; ``model`` is empty where no model has
    the component, else the model that lacks it.

    Example:
        >>> from robustlens.analysis.generalization import dimensions
        >>> d = dimensions(pd.DataFrame({"world/val": [0.9, None]}, index=["a", "b"]))
        >>> missing_rows(d).head(3).to_dict("records")[-1]
        {'dimension': 'in_distribution', 'component': 'id', 'dataset': 'ImageNet val', 'model': 'b'}
    """
    rows = []
    for dim, names in COMPONENTS.items():
        for c in dimensions.attrs.get("missing", {}).get(dim, []):
            rows.append((dim, c, names[c], ""))
        for model, cs in (dimensions.attrs.get("missing_by_model", {}).get(dim) or {}).items():
            rows.extend((dim, c, names[c], str(model)) for c in cs)
    return pd.DataFrame(rows, columns=["dimension", "component", "dataset", "model"])


def correlation_matrix_table(matrix: pd.DataFrame, alpha: float) -> Table:
    """Bias x dimension: coefficient, p and n of each pair; ``*`` marks p < ``alpha``.

    Args:
        matrix: :func:`robustlens.analysis.generalization.bias_generalization_matrix`.
        alpha: its significance level (for the caption).
    """
    method = matrix["method"].iloc[0] if len(matrix) else "spearman"
    rows = []
    for b in BIASES:
        cells = []
        for d in DIMENSIONS:
            r = matrix[(matrix["x"] == b) & (matrix["y"] == d)].iloc[0]
            coefficient = number(r["coefficient"], 2) + ("*" if r["significant"] else "")
            cells.append(f"{coefficient} (p={number(r['p_value'], 3)}, n={int(r['n'])})")
        rows.append([b, *cells])
    return Table(
        f"{method} correlation, bias x dimension (coefficient, p, n)",
        ["bias", *DIMENSIONS],
        rows,
        caption=f"*: p < {alpha}; in the heatmap, cells with p >= {alpha} are shown as 0",
    )


def critical_band_rows(
    by_model: Mapping[str, Mapping[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    """Columns and text rows of the critical-band fits: bandwidth, centre and peak
    sensitivity per model; a failed fit gives its reason.

    Args:
        by_model: ``{model: critical-band artifact}`` of one dataset.

    Example:
        >>> art = {"ok": True, "bandwidth_octaves": 2.354, "centre_cpi": 4.0,
        ...        "peak_sensitivity": 5.7, "frequency_unit": "cycles per image (32 px)"}
        >>> critical_band_rows({"m": art, "n": {"ok": False, "reason": "flat"}})[1]
        [['m', '2.35', '4', '5.70', 'ok'], ['n', '-', '-', '-', 'failed: flat']]
    """
    unit = ""
    rows = []
    for model, art in by_model.items():
        unit = art.get("frequency_unit") or unit
        if art.get("ok"):
            c = art.get("centre_cpi")
            centre = significant(c, 3)
            bandwidth = number(art.get("bandwidth_octaves"), 2)
            rows.append([model, bandwidth, centre, number(art.get("peak_sensitivity"), 2), "ok"])
        else:
            rows.append([model, "-", "-", "-", f"failed: {art.get('reason')}"])
    columns = ["model", "bandwidth (octaves)", f"centre ({unit})", "peak sensitivity", "fit"]
    return columns, rows


def per_category_table(dataset: str, by_model: Mapping[str, Mapping[str, Any]]) -> Table | None:
    """Shape bias per shape category and model (``None`` without categories).

    Args:
        dataset: the cue-conflict dataset (for the title).
        by_model: ``{model: shape-bias artifact}``.
    """
    cats = sorted({c for a in by_model.values() for c in (a.get("per_category") or {})})
    if not cats:
        return None
    rows = [
        [model, *((a.get("per_category") or {}).get(c) for c in cats)]
        for model, a in by_model.items()
    ]
    return Table(f"per-category shape bias ({dataset})", ["model", *cats], rows, digits=2)
