"""ImageNet-C's headline numbers for a study: mCE and relative mCE per model.

Reference: D. Hendrycks, T. Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019. The arithmetic is
:func:`robustlens.metrics.corruption_error.mce` / ``relative_mce``; this module gathers a
study's per-dataset accuracies into the errors they take: ``E[s, c] = 1 - accuracy`` on the
dataset of corruption ``c`` at severity ``s`` (tags of the study's plan), the clean error on the
study's ``id`` dataset.

mCE is shown only for a set that has all 15 ImageNet-C corruptions at severities 1..5 (anything
less is not ImageNet-C's mCE and is named as missing). The baseline is AlexNet's published
errors for ImageNet-class sets, or a model of the study named with the accuracy measure's
``mce_baseline`` option (on the synthetic world, a zoo member).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from robustlens.metrics.corruption_error import mce, relative_mce
from robustlens.roles import corrupt_group
from robustlens.tables import Table
from robustlens.transforms.corruptions import IMAGENET_C_CORRUPTIONS

__all__ = ["CorruptionErrors", "corruption_errors_by_group", "mce_table"]

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class CorruptionErrors:
    """One corrupted set of a study: its clean dataset and each model's errors."""

    group: str
    clean_dataset: str | None
    #: {model: {corruption: [error at severity 1..5]}} (only complete corruptions)
    errors: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    clean_errors: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    imagenet: bool = False


def corruption_errors_by_group(
    results: pd.DataFrame, datasets: Mapping[str, Mapping[str, Any]]
) -> list[CorruptionErrors]:
    """Errors per corrupted set (``imagenet_c``, ``world/corrupt``, ...) from long results.

    Args:
        results: long results (model, dataset, measure, name, value).
        datasets: ``{name: {"role": ..., "tags": {...}}}`` as the study recorded them.

    Example:
        >>> rows = [("m", "world/val", 0.9)] + [
        ...     ("m", f"world/corrupt/{c}/{s}", 0.5) for c in ("fog",) for s in (1, 2, 3, 4, 5)]
        >>> res = pd.DataFrame([(m, d, "accuracy", "accuracy", v) for m, d, v in rows],
        ...                    columns=["model", "dataset", "measure", "name", "value"])
        >>> info = {"world/val": {"role": "id", "tags": {}}} | {
        ...     f"world/corrupt/fog/{s}": {"role": "corrupt",
        ...     "tags": {"corruption": "fog", "severity": s}} for s in (1, 2, 3, 4, 5)}
        >>> [g] = corruption_errors_by_group(res, info)
        >>> g.group, g.clean_dataset, g.errors["m"]["fog"], round(g.clean_errors["m"], 3)
        ('world/corrupt', 'world/val', [0.5, 0.5, 0.5, 0.5, 0.5], 0.1)
        >>> len(g.missing)
        14
    """
    acc = results[(results["measure"] == "accuracy") & (results["name"] == "accuracy")]
    value = {(r.model, r.dataset): float(r.value) for r in acc.itertuples()}
    models = list(dict.fromkeys(acc["model"]))
    ids = [d for d, i in datasets.items() if i.get("role") == "id"]
    groups: dict[str, dict[tuple[str, int], str]] = {}
    layouts: dict[str, set[str]] = {}
    for d, info in datasets.items():
        tags = info.get("tags") or {}
        if info.get("role") != "corrupt" or "corruption" not in tags:
            continue
        g = corrupt_group(d, tags)
        groups.setdefault(g, {})[(str(tags["corruption"]), int(tags["severity"]))] = d
        layouts.setdefault(g, set()).add(str(tags.get("layout", "")))
    out = []
    for g, sets in groups.items():
        base = g.split("/corrupt")[0]
        clean = base if base in ids else (ids[0] if len(ids) == 1 else None)
        item = CorruptionErrors(
            g, clean, imagenet=bool(layouts[g] & {"imagenet_c", "imagenet_val"})
        )
        complete = [c for c in IMAGENET_C_CORRUPTIONS if all((c, s) in sets for s in SEVERITIES)]
        item.missing = [c for c in IMAGENET_C_CORRUPTIONS if c not in complete]
        for m in models:
            errs = {
                c: [1.0 - value[(m, sets[(c, s)])] for s in SEVERITIES]
                for c in complete
                if all((m, sets[(c, s)]) in value for s in SEVERITIES)
            }
            if errs:
                item.errors[m] = errs
            if clean is not None and (m, clean) in value:
                item.clean_errors[m] = 1.0 - value[(m, clean)]
        out.append(item)
    return out


def mce_table(
    group: CorruptionErrors, baseline_model: str | None = None
) -> tuple[Table | None, str]:
    """mCE and relative mCE per model of one corrupted set, and a note saying how.

    ``(None, why)`` when the set lacks some of ImageNet-C's 15 corruptions or has no baseline.
    """
    if group.missing:
        return None, (
            f"{group.group}: mCE needs ImageNet-C's 15 corruptions at severities 1-5; missing "
            f"{', '.join(group.missing)}"
        )
    baseline: dict[str, list[float]] | None = None
    base_clean: float | None = None
    if baseline_model is not None:
        if baseline_model not in group.errors:
            return None, (
                f"{group.group}: the mCE baseline {baseline_model!r} has no errors on this set; "
                f"models: {', '.join(group.errors)}"
            )
        baseline = group.errors[baseline_model]
        base_clean = group.clean_errors.get(baseline_model)
        how = f"normalised by {baseline_model}"
    elif group.imagenet:
        how = "normalised by AlexNet's published errors"
    else:
        return None, (
            f"{group.group}: no mCE baseline for a set that is not ImageNet-C; name a model of "
            "the study with measure_options: {accuracy: {mce_baseline: NAME}}"
        )
    rows: list[Sequence[Any]] = []
    for m, errs in group.errors.items():
        clean = group.clean_errors.get(m)
        rel = (
            relative_mce(errs, clean, baseline, base_clean)
            if clean is not None and (baseline is None or base_clean is not None)
            else None
        )
        rows.append([m, mce(errs, baseline), rel, None if clean is None else 100 * clean])
    note = (
        f"{group.group}: mean corruption error over ImageNet-C's 15 corruptions x 5 "
        f"severities, {how} (percent; the baseline scores 100; lower is better)"
    )
    table = Table(
        f"Corruption error on {group.group}",
        ["model", "mCE", "relative mCE", "clean error (%)"],
        rows,
        digits=1,
        caption=note,
    )
    return table, note
