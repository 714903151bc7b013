"""Planning: a study file resolved into datasets and models, and the views each engine pass needs.

``resolve_datasets`` and ``resolve_models`` turn the config's entries into lazily opened
datasets (with their roles) and lazily loaded models; ``plan_views`` takes the union of the
views the measures request on one dataset; ``plan_jobs`` turns that into engine jobs. The
study runner and every executor plan through this module and nothing else.

Class space: ``apply_class_spaces`` scores an on-disk dataset whose classes are some of the
models' (a folder of three ImageNet wnids, evaluated with ImageNet models) over the models'
whole class space (1000-way), by relabelling it into their class list
(:class:`robustlens.data.derived.ModelClassesDataset`); ``restrict_classes: true`` in the
study file keeps the argmax over the dataset's own classes, and the published protocols
(ImageNet-R/-A mask, ObjectNet mapping, cue-conflict categories) restrict either way.
``class_space`` states the result in a few words ("1000 classes", "200 classes: ImageNet-R
mask"), recorded per dataset in the study's plan.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlens.config import DatasetEntry, StudyConfig
from robustlens.data.base import ClassMapping, Dataset
from robustlens.data.derived import CorruptedDataset, ModelClassesDataset, widens_to
from robustlens.data.imagenet_info import imagenet_real_labels
from robustlens.data.layouts import LayoutArgs, get_layout
from robustlens.data.synthetic import SyntheticWorld, WorldConfig
from robustlens.engine import EngineJob
from robustlens.errors import ConfigError
from robustlens.measure import DatasetInfo, Measure
from robustlens.models.base import ModelAdapter
from robustlens.models.sources import ModelSpec, get_source
from robustlens.roles import world_role
from robustlens.store import Store

__all__ = [
    "DatasetSpec",
    "ModelSpec",
    "apply_class_spaces",
    "class_space",
    "load_model_classes",
    "plan_jobs",
    "plan_views",
    "resolve_datasets",
    "resolve_models",
    "world_from_config",
]


@dataclass
class DatasetSpec:
    """A dataset with its study role (built lazily: a dataset is opened when first used)."""

    name: str
    role: str
    tags: dict[str, Any]
    open: Callable[[], Dataset]
    _ds: Dataset | None = None
    #: the study file asks for the dataset's own classes (``restrict_classes: true``)
    restrict_classes: bool = False
    #: scored over the models' whole class space when its classes are some of theirs (an
    #: on-disk dataset's own entry; its derived corruptions follow it)
    model_class_space: bool = False

    def dataset(self) -> Dataset:
        if self._ds is None:
            self._ds = self.open()
        return self._ds

    def needs_model_classes(self) -> bool:
        """Whether the dataset's class space depends on the models' classes (an on-disk
        dataset without ``restrict_classes`` and without a published protocol; opens it)."""
        return self.model_class_space and not self.dataset().published_mapping()


def world_from_config(cfg: StudyConfig, store: Store) -> SyntheticWorld:
    """The synthetic world of a study (its ``world`` section; defaults when it has none)."""
    return SyntheticWorld(cfg.world or WorldConfig(), store)


def _check_unique(names: Sequence[str], what: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{what} names must be unique; duplicated: {dupes}")


def resolve_datasets(cfg: StudyConfig, store: Store) -> list[DatasetSpec]:
    specs: list[DatasetSpec] = []
    world = None
    for entry in cfg.datasets:
        if entry.world is not None:
            world = world or world_from_config(cfg, store)
            splits = world.split_names() if entry.world == "all" else list(entry.world)
            for split in splits:
                if split not in world.split_names():
                    raise ConfigError(
                        f"unknown world split {split!r}; "
                        f"available: {', '.join(world.split_names())}"
                    )
                role, tags = world_role(split)
                role = entry.role or role
                tags = {**tags, "image_size": world.config.image_size}
                specs.append(
                    DatasetSpec(f"world/{split}", role, tags, lambda s=split, w=world: w.dataset(s))
                )
        else:
            specs.extend(_layout_specs(entry))
    _check_unique([s.name for s in specs], "dataset")
    return specs


def _layout_specs(entry: DatasetEntry) -> list[DatasetSpec]:
    """The datasets of an on-disk entry: its layout's, then the derived corrupted copies."""
    layout = get_layout(entry.layout or "")
    size_tag = {"image_size": entry.size, "layout": layout.name}
    role = entry.role or layout.role
    name = entry.name or layout.name
    args = LayoutArgs(
        entry.root or "",
        entry.size,
        name,
        entry.mapping_file,
        follow_symlinks=entry.follow_symlinks,
        max_pixels=entry.max_pixels,
    )
    restrict, widen = entry.restrict_classes, not entry.restrict_classes
    if layout.expands:
        return [
            DatasetSpec(ds.name, role, {**tags, **size_tag}, lambda d=ds: d, None, restrict, widen)
            for ds, tags in layout.open(args)
        ]
    base = DatasetSpec(
        name, role, dict(size_tag), lambda: _opened(layout.open(args), entry), None, restrict, widen
    )
    derived = []
    for corruption in entry.corruptions:
        for severity in entry.severities:
            derived.append(
                DatasetSpec(
                    f"{name}/corrupt/{corruption}/{severity}",
                    "corrupt",
                    {"corruption": corruption, "severity": severity, **size_tag},
                    lambda c=corruption, s=severity: CorruptedDataset(base.dataset(), c, s),
                    restrict_classes=restrict,
                )
            )
    return [base, *derived]


def _opened(ds: Dataset, entry: DatasetEntry) -> Dataset:
    """The dataset with the entry's acceptable labels set (when it names some)."""
    if entry.acceptable_labels is not None:
        ds.set_acceptable_labels(_read_acceptable_labels(entry.acceptable_labels))  # type: ignore[attr-defined]
    return ds


def _read_acceptable_labels(source: str) -> dict[str, list[int]]:
    if source == "real":
        return imagenet_real_labels()
    fmt = (
        "a JSON object of file name (or path relative to the root) -> class indices, "
        'e.g. {"a.png": [281, 285]}'
    )
    try:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"acceptable_labels {source}: {exc}; expected {fmt}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(i, int) for i in v) for v in data.values()
    ):
        raise ConfigError(f"acceptable_labels {source}: expected {fmt}")
    return data


def load_model_classes(
    mspecs: Sequence[ModelSpec], keep: int = 0
) -> tuple[dict[str, tuple[str, ...]], dict[str, ModelAdapter]]:
    """Each model's class list (loading every model once), and the first ``keep`` models
    loaded (so that the study's first pass does not load them again)."""
    classes: dict[str, tuple[str, ...]] = {}
    loaded: dict[str, ModelAdapter] = {}
    for i, spec in enumerate(mspecs):
        model = spec.load()
        classes[spec.name] = tuple(model.classes)
        if i < keep:
            loaded[spec.name] = model
        del model
    return classes, loaded


def apply_class_spaces(
    dspecs: Sequence[DatasetSpec], model_classes: Mapping[str, Sequence[str]]
) -> list[str]:
    """Score each dataset whose classes are some of the models' over their whole class space.

    A dataset of an on-disk entry without ``restrict_classes: true`` and without a published
    protocol of its own, whose classes are some (by name) but not all of the models' classes,
    is replaced by :class:`ModelClassesDataset` (labels in model indices, fingerprint covering
    the class list); its derived corruptions follow. Datasets opened here stay open.

    Args:
        dspecs: the study's datasets (changed in place).
        model_classes: ``{model name: class list}`` of every model of the study.

    Returns:
        The names of the datasets relabelled.

    Raises:
        ConfigError: models with different class lists would need the dataset's labels in
            different class spaces (names the dataset, the models and both class counts).
    """
    lists: dict[tuple[str, ...], list[str]] = {}
    for model, classes in model_classes.items():
        lists.setdefault(tuple(classes), []).append(model)
    relabelled: list[str] = []
    for spec in dspecs:
        if not lists or not spec.needs_model_classes():
            continue
        ds = spec.dataset()
        wide = [c for c in lists if widens_to(ds, c)]
        if not wide:
            continue
        if len(lists) > 1:
            counts = "; ".join(
                f"{', '.join(models)}: {len(c)} classes" for c, models in lists.items()
            )
            raise ConfigError(
                f"dataset {spec.name!r} ({len(ds.classes)} classes) would be scored over each "
                f"model's whole class space, but the study's models have different class "
                f"lists ({counts}), and one dataset's labels live in one class space. Set "
                f"`restrict_classes: true` on dataset {spec.name!r} to score every model over "
                f"the dataset's {len(ds.classes)} classes only, or split the study so that the "
                "models of each study share one class list."
            )
        spec._ds = ModelClassesDataset(ds, wide[0])
        relabelled.append(spec.name)
    return relabelled


def class_space(mapping: ClassMapping, restrict_classes: bool = False) -> str:
    """The class space a dataset is scored in, in a few words (for plan, summary, report).

    >>> from robustlens.data.base import RESTRICTED
    >>> class_space(ClassMapping.identity(1000))
    '1000 classes'
    >>> class_space(ClassMapping.from_indices([3, 7, 9], RESTRICTED), restrict_classes=True)
    "3 classes: restricted to the dataset's classes (restrict_classes: true)"
    """
    text = mapping.summary
    if restrict_classes and mapping.restricted_by_name:
        text += " (restrict_classes: true)"
    return text


def resolve_models(cfg: StudyConfig) -> list[ModelSpec]:
    """The study's models, named and loaded lazily, through their sources' registry."""
    specs = [spec for m in cfg.models for spec in get_source(m.source).models(m, cfg)]
    _check_unique([s.name for s in specs], "model")
    return specs


def plan_views(
    measures: Sequence[Measure], info: DatasetInfo
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Union of the views the measures request on one dataset, and those needing features."""
    views: dict[str, bool] = {}
    for m in measures:
        for v, feats in m.reads(info).items():
            views[v] = views.get(v, False) or feats
    ordered = tuple(sorted(views, key=lambda v: (v != "clean", v)))
    return ordered, frozenset(v for v, f in views.items() if f)


def plan_jobs(
    models: Sequence[ModelAdapter], measures: Sequence[Measure], info: DatasetInfo
) -> list[EngineJob]:
    """One engine job per model: the views the measures need on dataset ``info``."""
    views, feature_views = plan_views(measures, info)
    if not views:
        return []
    return [EngineJob(m, views, feature_views) for m in models]
