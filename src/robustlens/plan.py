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

from robustlens.config import DatasetEntry, StudyConfig
from robustlens.data.base import Dataset
from robustlens.data.derived import CorruptedDataset
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

    def dataset(self) -> Dataset:
        if self._ds is None:
            self._ds = self.open()
        return self._ds


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
    if layout.expands:
        return [
            DatasetSpec(ds.name, role, {**tags, **size_tag}, lambda d=ds: d)
            for ds, tags in layout.open(args)
        ]
    base = DatasetSpec(name, role, dict(size_tag), lambda: _opened(layout.open(args), entry))
    derived = []
    for corruption in entry.corruptions:
        for severity in entry.severities:
            derived.append(
                DatasetSpec(
                    f"{name}/corrupt/{corruption}/{severity}",
                    "corrupt",
                    {"corruption": corruption, "severity": severity, **size_tag},
                    lambda c=corruption, s=severity: CorruptedDataset(base.dataset(), c, s),
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
