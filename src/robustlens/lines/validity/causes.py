"""The causes planted in each zoo model, read from its config.

A zoo model's config (``plan.json``'s ``models`` entry, :attr:`ReportContext.models`) carries
the causes its training planted under ``planted``::

    {"mark_rate": 0.5, "texture_randomization": 0.0, "rotation_augmentation": 0.0,
     "grayscale_augmentation": 0.2, "corruption_augmentation": "none" | "noise" | "blur" |
     "mixed", "generated_fraction": 0.0, "epochs": 8, "width": 32, "arch": "cnn"}

Configs written before that key existed hold the recipe under ``member`` (``augment`` one of
``none``, ``standard``, ``strong``, ``texrand``; ``mark_rate``, ``epochs``, ``width``,
``arch``, ``generated``, ``generated_ratio``); :func:`planted_causes` derives the same keys from
them, from what that recipe did in training (``robustlens.models.zoo``):

* ``texrand`` refilled the object with a random texture with probability 0.8, so
  ``texture_randomization = 0.8`` (0 otherwise);
* ``strong`` applied noise, blur or contrast corruptions: ``corruption_augmentation = "mixed"``
  (``"none"`` otherwise);
* ``standard``, ``strong`` and ``texrand`` turned 20 % of the images gray:
  ``grayscale_augmentation = 0.2`` (0 for ``none``); no recipe rotated:
  ``rotation_augmentation = 0``;
* ``mark_rate`` ``None`` meant the world's rate: the config's ``world_mark_rate``, else the
  world's default of that time, 0.8;
* ``generated`` set with ``generated_ratio`` r (r generated images per real one):
  ``generated_fraction = r / (1 + r)``.

Models without either (a pretrained timm model, say) have no planted causes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from robustlens.models.planted import PLANTED_KEYS

__all__ = [
    "CORRUPTION_LEVELS",
    "PLANTED_KEYS",
    "cause_table",
    "corruption_level",
    "planted_causes",
]

#: corruption augmentation as an ordinal cause: none < one kind (noise or blur) < mixed
CORRUPTION_LEVELS = {"none": 0, "noise": 1, "blur": 1, "mixed": 2}
#: probability with which the old ``texrand`` recipe swapped the object's texture
_OLD_TEXRAND = 0.8
#: fraction of images the old ``standard`` augmentation turned gray
_OLD_GRAY = 0.2
#: the world's default mark rate when configs without ``planted`` were written
_OLD_WORLD_MARK_RATE = 0.8


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def planted_causes(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The planted causes of a model (:data:`PLANTED_KEYS`), or ``None`` for a non-zoo model.

    ``config["planted"]`` (or ``config["member"]["planted"]``) when present, else derived from
    the old recipe keys (see the module doc).

    Example:
        >>> p = planted_causes({"member": {"augment": "texrand", "mark_rate": None, "epochs": 8,
        ...                                "width": 32, "arch": "cnn"}})
        >>> p["texture_randomization"], p["corruption_augmentation"], p["mark_rate"]
        (0.8, 'none', 0.8)
        >>> planted_causes({"member": {"augment": "strong", "mark_rate": 0.0}})["mark_rate"]
        0.0
        >>> planted_causes({"source": "timm"}) is None
        True
    """
    if not isinstance(config, Mapping):
        return None
    member = config.get("member")
    member = member if isinstance(member, Mapping) else None
    planted = config.get("planted")
    if not isinstance(planted, Mapping) and member is not None:
        planted = member.get("planted")
    if isinstance(planted, Mapping):
        return {k: planted.get(k) for k in PLANTED_KEYS}
    if member is None:
        return None
    augment = str(member.get("augment", "standard"))
    rate = member.get("mark_rate")
    if rate is None:
        rate = config.get("world_mark_rate", _OLD_WORLD_MARK_RATE)
    ratio = _float(member.get("generated_ratio", 1.0))
    return {
        "mark_rate": _float(rate),
        "texture_randomization": _OLD_TEXRAND if augment == "texrand" else 0.0,
        "rotation_augmentation": 0.0,
        "grayscale_augmentation": 0.0 if augment == "none" else _OLD_GRAY,
        "corruption_augmentation": "mixed" if augment == "strong" else "none",
        "generated_fraction": ratio / (1.0 + ratio) if member.get("generated") else 0.0,
        "epochs": member.get("epochs"),
        "width": member.get("width"),
        "arch": member.get("arch", config.get("arch")),
    }


def corruption_level(kind: Any) -> float:
    """The ordinal of a corruption augmentation (:data:`CORRUPTION_LEVELS`); NaN if unknown.

    Example:
        >>> corruption_level("none"), corruption_level("blur"), corruption_level("mixed")
        (0.0, 1.0, 2.0)
    """
    return float(CORRUPTION_LEVELS.get(str(kind), np.nan))


def cause_table(models: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model with planted causes: the :data:`PLANTED_KEYS` columns, and
    ``corruption_level`` (:func:`corruption_level`). Models without causes are left out.

    Example:
        >>> t = cause_table({"a": {"member": {"augment": "strong", "mark_rate": 0.5}},
        ...                  "b": {"source": "timm"}})
        >>> t.index.tolist(), float(t.loc["a", "corruption_level"])
        (['a'], 2.0)
    """
    rows = {m: p for m, cfg in models.items() if (p := planted_causes(cfg)) is not None}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(PLANTED_KEYS))
    table.index.name = "model"
    for key in PLANTED_KEYS:
        if key not in ("corruption_augmentation", "arch"):
            table[key] = pd.to_numeric(table[key], errors="coerce")
    table["corruption_level"] = [corruption_level(k) for k in table["corruption_augmentation"]]
    return table
