"""In-distribution vs natural-shift accuracy per model, and ER against the shipped baselines.

For every shifted dataset of the study (roles ``v2``, ``sketch``, ``rendition``, ``natural``)
the measure reports the pair of accuracies that effective robustness (Taori et al., NeurIPS
2020; Bansal & Grover 2023 for models trained on generated data) is built on:

* ``acc_ood``: top-1 accuracy on the shifted set (through its class mapping);
* ``acc_id``: top-1 accuracy on the in-distribution (role ``id``) set, *restricted
  consistently to the shifted set's classes*. When both sets map onto the model's outputs in
  the same way (the synthetic world, ImageNet-V2, -Sketch) this is the plain ID accuracy.
  When the shifted set covers a subset of classes (ImageNet-R/-A: 200-class mask; ObjectNet:
  113 classes -> 125 indices), only ID images of those classes count and predictions are
  taken through the shifted set's mapping (e.g. the argmax over the 200 ImageNet-R logits):
  the "ImageNet accuracy on R's 200 classes" the shipped ImageNet-R baseline was fitted on;
* ``n_id``: how many ID images that restricted accuracy uses; ``gap`` =
  :func:`~robustlens.metrics.effective_robustness.relative_robustness` (``acc_ood - acc_id``).

When the ID set is ImageNet (its classes are the 1000 wnids) and a shifted set is one of the
shipped baselines' shifts (``imagenet_v2``, ``imagenet_sketch``, ``imagenet_r``,
``objectnet``; taken from the dataset's ``layout`` tag, else its name, or the option
``baseline_map={dataset: shift}``), it also reports ``er_shipped_logit`` and
``er_shipped_probit``: ER against the shipped ``IMAGENET_BASELINES``
(:mod:`robustlens.metrics.effective_robustness`), so a single real model's ER needs no
zoo. ER against a baseline fitted over a zoo is cross-model and lives in
:mod:`robustlens.lines.robustness.analysis`.

Artifacts per model: the ID dataset, per shift the restriction used, and the model's recipe
(``model_config``: source, ``member``) that the analysis uses to tell standard,
augmented and generated-data models apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from robustlens.data.base import ClassMapping
from robustlens.data.imagenet_info import imagenet_wnids
from robustlens.errors import ConfigError
from robustlens.measure import (
    DatasetContext,
    DatasetInfo,
    Measure,
    MeasureOutput,
    dataset_predictions,
)
from robustlens.metrics.effective_robustness import (
    IMAGENET_SHIFTS,
    TRANSFORMS,
    effective_robustness,
    imagenet_baseline,
    relative_robustness,
)
from robustlens.roles import NATURAL_SHIFT_ROLES

#: dataset roles treated as natural distribution shifts of the ``id`` dataset: the shifted
#: roles but synthetic corruptions (``v2``, ``sketch``, ``rendition``, ``natural``)
SHIFT_ROLES = NATURAL_SHIFT_ROLES


def shift_key(name: str, tags: Mapping[str, Any] | None = None) -> str | None:
    """The shipped-baseline shift a dataset stands for, from its ``layout`` tag or its name.

    ``imagenet_v2_threshold0.7`` -> ``imagenet_v2``; ``world/sketch`` -> None.

    Example:
        >>> shift_key("imagenet_v2_threshold0.7"), shift_key("x", {"layout": "objectnet"})
        ('imagenet_v2', 'objectnet')
        >>> shift_key("world/sketch") is None
        True
    """
    for cand in ((tags or {}).get("layout"), name):
        if not cand:
            continue
        key = str(cand).strip().lower().replace("-", "_")
        for shift in IMAGENET_SHIFTS:
            if key == shift or key.startswith(shift + "_"):
                return shift
    return None


def restrict_id_to_shift(
    id_logits: np.ndarray,
    id_labels: np.ndarray,
    id_mapping: ClassMapping,
    shift_mapping: ClassMapping,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """ID predictions and labels in the shifted set's class space (Taori et al. 2020, app. B).

    ID class ``c`` belongs to shift class ``s`` when its model outputs are among ``s``'s
    (``id_mapping.targets[c]`` is a subset of ``shift_mapping.targets[s]``); ID images of
    classes without such an ``s`` are dropped. Predictions are the argmax of the ID logits
    through ``shift_mapping`` (for ImageNet-R: over the 200 R logits only).

    Returns:
        (predictions, labels, kept, restricted): shift-space predictions and labels of the
        kept ID images, the boolean mask of kept images, and whether anything differs from
        plain ID accuracy (False when both mappings are the same).
    """
    id_labels = np.asarray(id_labels, dtype=np.int64)
    if id_mapping.targets == shift_mapping.targets and id_mapping.reduce == shift_mapping.reduce:
        _, pred = dataset_predictions(id_logits, id_mapping)
        return pred, id_labels, np.ones(len(id_labels), bool), False
    owner: dict[int, int] = {}
    for s, outs in enumerate(shift_mapping.targets):
        for o in outs:
            owner.setdefault(int(o), s)
    to_shift = np.full(id_mapping.n_classes, -1, dtype=np.int64)
    for c, outs in enumerate(id_mapping.targets):
        owners = {owner.get(int(o), -1) for o in outs}
        if len(owners) == 1 and -1 not in owners:
            to_shift[c] = owners.pop()
    labels = to_shift[id_labels] if len(id_labels) else id_labels
    kept = labels >= 0
    if not kept.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64), kept, True
    _, pred = dataset_predictions(np.asarray(id_logits)[kept], shift_mapping)
    return pred, labels[kept], kept, True


class RobustnessMeasure(Measure):
    """ID and OOD accuracy per natural shift, the gap, and ER against shipped baselines.

    Options (``measure_options: {robustness: {...}}``):
        id_dataset: name of the in-distribution dataset (default: the only ``id`` dataset).
        baseline_map: ``{dataset name: shift}`` naming the shipped baseline of a dataset
            explicitly (shifts: ``imagenet_v2``, ``imagenet_sketch``, ``imagenet_r``,
            ``objectnet``); use it for a dataset whose name does not say its layout.
        shipped: report ``er_shipped_*`` where a shipped baseline applies (default True).
    """

    name = "robustness"
    description = "ID vs OOD accuracy on natural shifts; ER against the shipped ImageNet baselines"
    paper = (
        "Taori et al., Measuring Robustness to Natural Distribution Shifts in Image "
        "Classification, NeurIPS 2020"
    )

    def __init__(
        self,
        id_dataset: str | None = None,
        baseline_map: Mapping[str, str] | None = None,
        shipped: bool = True,
    ) -> None:
        self.id_dataset = id_dataset
        self.baseline_map = dict(baseline_map or {})
        bad = {d: s for d, s in self.baseline_map.items() if s not in IMAGENET_SHIFTS}
        if bad:
            raise ConfigError(
                f"robustness.baseline_map: unknown shifts {bad}; valid: {list(IMAGENET_SHIFTS)}"
            )
        self.shipped = shipped

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        if dataset.role == "id" or dataset.role in SHIFT_ROLES:
            return {"clean": False}
        return {}

    def _id_name(self, datasets: Mapping[str, DatasetInfo]) -> str:
        if self.id_dataset is not None:
            if self.id_dataset not in datasets:
                raise ConfigError(
                    f"robustness.id_dataset {self.id_dataset!r} is not a dataset of the study; "
                    f"datasets: {sorted(datasets)}"
                )
            return self.id_dataset
        ids = sorted(n for n, i in datasets.items() if i.role == "id")
        if not ids:
            raise ConfigError(
                "measure 'robustness' needs an in-distribution dataset (role 'id', e.g. "
                "world/val or an imagenet_val layout); the study has none"
            )
        if len(ids) > 1:
            raise ConfigError(
                f"measure 'robustness': several datasets have role 'id' ({ids}); choose one "
                "with measure_options: {robustness: {id_dataset: NAME}}"
            )
        return ids[0]

    def _shipped_key(self, info: DatasetInfo, id_is_imagenet: bool) -> str | None:
        if not self.shipped:
            return None
        if info.name in self.baseline_map:
            return self.baseline_map[info.name]
        return shift_key(info.name, info.tags) if id_is_imagenet else None

    def compute_datasets(self, data: Mapping[str, DatasetContext], out: MeasureOutput) -> None:
        """Relate the ID dataset (found once) to every shifted dataset the measure requested."""
        id_name = self._id_name({name: d.info for name, d in data.items()})
        id_data = data[id_name]
        shifts = {
            d.name: self._compare(id_data, d, out)
            for d in data.values()
            if d.info.role in SHIFT_ROLES
        }
        out.artifacts = {
            "id_dataset": id_name,
            "shifts": shifts,
            "model_config": _recipe(id_data.model.config),
        }

    def _compare(
        self, id_data: DatasetContext, shift: DatasetContext, out: MeasureOutput
    ) -> dict[str, Any]:
        """Add one shift's values to ``out``; return its artifact record."""
        _, pred_ood = shift.predictions("clean")
        labels_ood = shift.arrays.labels()
        pred_id, labels_id, _, restricted = restrict_id_to_shift(
            id_data.arrays.logits("clean"), id_data.arrays.labels(), id_data.mapping, shift.mapping
        )
        acc_id, acc_ood = _accuracy(pred_id, labels_id), _accuracy(pred_ood, labels_ood)
        ok = np.isfinite(acc_id) and np.isfinite(acc_ood)
        name = shift.name
        out.values[(name, "acc_id")] = acc_id
        out.values[(name, "acc_ood")] = acc_ood
        out.values[(name, "n_id")] = float(len(labels_id))
        out.values[(name, "gap")] = (
            float(relative_robustness(acc_id, acc_ood)) if ok else float("nan")
        )
        record: dict[str, Any] = {
            "role": shift.info.role,
            "id_dataset": id_data.name,
            "acc_id": acc_id,
            "acc_ood": acc_ood,
            "n_id": len(labels_id),
            "n_ood": len(labels_ood),
            "id_restricted": bool(restricted),
            "mapping": shift.mapping.description,
            "shift_key": None,
        }
        key = self._shipped_key(shift.info, _is_imagenet_classes(id_data.info.classes))
        if key is not None and ok:
            record["shift_key"] = key
            record["shipped"] = {}
            for t in TRANSFORMS:
                b = imagenet_baseline(key, t)
                er = float(effective_robustness(acc_id, acc_ood, b))
                out.values[(name, f"er_shipped_{t}")] = er
                record["shipped"][t] = {"slope": b.slope, "intercept": b.intercept, "er": er}
        return record


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy; NaN without images."""
    return float((pred == labels).mean()) if len(labels) else float("nan")


def _recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a model config that say how it was trained (JSON-able)."""
    keep = ("source", "arch", "member", "tags", "generated", "weights_source")
    return {k: config[k] for k in keep if k in config}


def _is_imagenet_classes(classes: tuple[str, ...] | list[str]) -> bool:
    if len(classes) != 1000:
        return False
    try:
        return list(classes) == imagenet_wnids()
    except Exception:  # timm metadata unavailable: fall back to the wnid format
        return all(c.startswith("n") and c[1:].isdigit() for c in classes)
