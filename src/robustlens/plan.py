"""Planning: a study file resolved into datasets and models, and the views each engine pass needs.

``resolve_datasets`` and ``resolve_models`` turn the config's entries into lazily opened
datasets (with their roles) and lazily loaded models; ``plan_views`` takes the union of the
views the measures request on one dataset; ``plan_jobs`` turns that into engine jobs. The
study runner and every executor plan through this module and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlens.config import DatasetEntry, ModelEntry, StudyConfig
from robustlens.data import imagenet
from robustlens.data.base import Dataset
from robustlens.data.derived import CorruptedDataset
from robustlens.data.imagefolder import ImageFolderDataset
from robustlens.data.imagenet_info import imagenet_real_labels
from robustlens.data.synthetic import SyntheticWorld, WorldConfig
from robustlens.engine import EngineJob
from robustlens.errors import ConfigError
from robustlens.measure import DatasetInfo, Measure
from robustlens.models.base import ModelAdapter
from robustlens.models.pretrained import load_model
from robustlens.models.zoo import load_zoo_model, zoo_members_in
from robustlens.roles import LAYOUT_ROLES, world_role
from robustlens.store import Store


@dataclass
class DatasetSpec:
    """A dataset with its study role (built lazily: a dataset is opened when first used)."""

    name: str
    role: str
    tags: dict[str, Any]
    open: Callable[[], Dataset]
    _ds: Dataset | None = None

    def dataset(self) -> Dataset:
        if self._ds is None:
            self._ds = self.open()
        return self._ds


@dataclass
class ModelSpec:
    name: str
    load: Callable[[], ModelAdapter]


def world_from_config(cfg: StudyConfig, store: Store):
    section = cfg.world.model_dump() if cfg.world is not None else {}
    return SyntheticWorld(WorldConfig(**section), store)


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
                tags = {**tags, "image_size": world.config.image_size}
                specs.append(
                    DatasetSpec(f"world/{split}", role, tags, lambda s=split, w=world: w.dataset(s))
                )
        else:
            specs.extend(_layout_specs(entry))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"dataset names must be unique; duplicated: {dupes}")
    return specs


def _layout_specs(entry: DatasetEntry) -> list[DatasetSpec]:
    layout, root, size = entry.layout, entry.root, entry.size
    size_tag = {"image_size": size, "layout": layout}
    role = entry.role or LAYOUT_ROLES[layout or "imagefolder"]
    name = entry.name or layout or "dataset"
    if layout == "imagenet_c":
        out = []
        for ds in imagenet.imagenet_c(root, size=size):
            _, c, s = ds.name.split("/")[-3:]
            out.append(
                DatasetSpec(
                    ds.name,
                    "corrupt",
                    {"corruption": c, "severity": int(s), **size_tag},
                    lambda d=ds: d,
                )
            )
        return out
    openers: dict[str, Callable[[], Dataset]] = {
        "imagefolder": lambda: ImageFolderDataset(root, size=size, name=name),
        "imagenet_val": lambda: imagenet.imagenet_val(root, size=size, name=name),
        "imagenet_r": lambda: imagenet.imagenet_r(root, size=size),
        "imagenet_a": lambda: imagenet.imagenet_a(root, size=size),
        "imagenet_sketch": lambda: imagenet.imagenet_sketch(root, size=size),
        "imagenet_v2": lambda: imagenet.imagenet_v2(root, size=size, name=name),
        "objectnet": lambda: imagenet.objectnet(root, entry.mapping_file, size=size),
        "cue_conflict": lambda: imagenet.cue_conflict(root, entry.mapping_file, size=size),
        "spurious_imagenet": lambda: imagenet.spurious_imagenet(root, size=size),
    }
    opener = openers[layout]
    if entry.acceptable_labels is not None:
        opener = _with_acceptable_labels(opener, entry)
    base = DatasetSpec(name, role, dict(size_tag), opener)
    derived = []
    for corruption in entry.corruptions:
        for severity in entry.severities:
            derived.append(
                DatasetSpec(
                    f"{name}/corrupt/{corruption}/{severity}",
                    "corrupt",
                    {"corruption": corruption, "severity": severity, **size_tag},
                    lambda c=corruption, s=severity: _corrupted(base.dataset(), c, s),
                )
            )
    return [base, *derived]


def _with_acceptable_labels(open_: Callable[[], Dataset], entry: DatasetEntry):
    """Wrap a dataset opener so the dataset carries the entry's acceptable labels."""
    source = entry.acceptable_labels
    if source == "real" and entry.layout != "imagenet_val":
        raise ConfigError(
            f"acceptable_labels: real (ImageNet ReaL) applies to layout imagenet_val, not "
            f"{entry.layout!r}; give a JSON file of file -> class indices instead"
        )
    if entry.layout == "imagenet_c":
        raise ConfigError("acceptable_labels is not supported for layout imagenet_c")

    def opened() -> Dataset:
        ds = open_()
        ds.set_acceptable_labels(_read_acceptable_labels(source))  # type: ignore[attr-defined]
        return ds

    return opened


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


def _corrupted(base: Dataset, corruption: str, severity: int) -> Dataset:
    return CorruptedDataset(base, corruption, severity)


def resolve_models(cfg: StudyConfig) -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    for m in cfg.models:
        if m.source == "zoo":
            zoo_dir = m.path or (cfg.zoo.dir if cfg.zoo else None)
            if zoo_dir is None:
                raise ConfigError(
                    "a model entry with source 'zoo' needs 'path' (the zoo directory)"
                )
            paths = zoo_members_in(zoo_dir)
            if not paths:
                raise ConfigError(
                    f"zoo directory {zoo_dir} holds no checkpoints; run `robustlens zoo train`"
                )
            specs += [ModelSpec(p.stem, lambda p=p: load_zoo_model(p)) for p in paths]
        elif m.source == "zoo_checkpoint":
            specs.append(
                ModelSpec(m.name or Path(m.path or "").stem, lambda m=m: load_zoo_model(m.path))
            )
        else:
            specs.append(
                ModelSpec(
                    m.name or (m.arch or m.variant or m.source), lambda m=m: _load_external(m)
                )
            )
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"model names must be unique; duplicated: {dupes}")
    return specs


def _load_external(m: ModelEntry) -> ModelAdapter:
    spec = {k: v for k, v in m.model_dump().items() if v is not None}
    return load_model(spec)


def plan_views(
    measures: Sequence[Measure], info: DatasetInfo
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Union of the views the measures request on one dataset, and those needing features."""
    views: dict[str, bool] = {}
    for m in measures:
        for v, feats in m.requests(info).items():
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
