"""Study configuration (YAML), validated where it is read.

Unknown keys and wrong types are errors, and so is every name the study file gives that
robustlens does not know: ``measures:`` against the measure registry, each measure's
``measure_options`` against its own options, dataset ``layout:`` and ``role:`` against the
layout registry and the known roles, and each model entry against the keys of its ``source``
(one entry model per source, :mod:`robustlens.models.sources`). Every error is a
:class:`~robustlens.errors.ConfigError` whose message names the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robustlens.data.layouts import available_layouts, get_layout
from robustlens.data.synthetic import WorldConfig
from robustlens.errors import ConfigError
from robustlens.measure import available_measures, validate_measure_options
from robustlens.models.sources import available_sources, entry_problems, source_entries
from robustlens.models.zoo import ZooMember
from robustlens.published import SOURCES
from robustlens.roles import check_role, is_labelled
from robustlens.transforms.corruptions import CORRUPTIONS

__all__ = [
    "DatasetEntry",
    "EngineSection",
    "GeneratedSection",
    "ModelEntry",
    "StudyConfig",
    "ZooSection",
    "load_config",
    "parse_config",
    "read_config_data",
]


def _known(what: str, names: list[str], known: Sequence[str]) -> list[str]:
    """``names`` if each is in ``known``, else an error naming the unknown and the known."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; available: {', '.join(known) or 'none'}")
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratedSection(_Strict):
    """Real + generated training (seed 004): a world generator and matched "-gen" twins."""

    dir: str = "generated"  # generator and its images, relative to the zoo directory
    train_steps: int = Field(240, ge=1)
    sample_steps: int = Field(25, ge=1)
    n_per_class: int = Field(300, ge=1)
    ratio: float = Field(1.0, gt=0)
    twins: list[str] = Field(default_factory=lambda: ["cnn32-standard", "resnet16-standard"])


class ZooSection(_Strict):
    dir: str = "zoo"
    members: Literal["default"] | list[ZooMember] = "default"
    epochs_scale: float = 1.0
    workers: int = 2
    generated: GeneratedSection | None = None


#: one model entry: the entry model of its ``source`` (:mod:`robustlens.models.sources`)
ModelEntry = Annotated[Union[source_entries()], Field(discriminator="source")]  # noqa: UP007


class DatasetEntry(_Strict):
    """A world split selection, or an on-disk dataset in a registered layout
    (:mod:`robustlens.data.layouts`). ``role`` overrides the role of the split or layout."""

    name: str | None = None
    world: Literal["all"] | list[str] | None = None
    layout: str | None = None
    root: str | None = None
    role: str | None = None
    size: int = 224
    mapping_file: str | None = None
    # labels that also count as correct: "real" (ImageNet ReaL, imagenet_val) or a JSON file
    # of file name or relative path -> class indices
    acceptable_labels: str | None = None
    # derived ImageNet-C-style sets, corrupted at load time (when no -C copy is on disk)
    corruptions: list[str] = Field(default_factory=list)
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5]
    )
    # folder scans: symlinked directories are skipped unless asked (each scanned once, by
    # resolved path); images above max_pixels are refused undecoded (None: PIL's limit)
    follow_symlinks: bool = False
    max_pixels: int | None = Field(None, ge=0)
    # class space: by default a folder whose classes are some of the model's (ImageNet wnid
    # folders) is scored over all of the model's classes (1000-way); true restricts the argmax
    # to the dataset's own classes. Published protocols (ImageNet-R/-A mask, ObjectNet
    # mapping, cue-conflict categories) restrict either way.
    restrict_classes: bool = False

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, layout: str | None) -> str | None:
        return None if layout is None else get_layout(layout).name

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str | None) -> str | None:
        return None if role is None else check_role(role)

    @field_validator("corruptions")
    @classmethod
    def _known_corruptions(cls, corruptions: list[str]) -> list[str]:
        return _known("corruptions", corruptions, list(CORRUPTIONS))

    @model_validator(mode="after")
    def _one_kind(self) -> DatasetEntry:
        if (self.world is None) == (self.layout is None):
            raise ValueError("a dataset entry needs exactly one of 'world' or 'layout'")
        if self.layout is None:
            if self.restrict_classes:
                raise ValueError(
                    "restrict_classes applies to on-disk datasets (layout:); the world's "
                    "splits always have the world's classes"
                )
            return self
        layout = get_layout(self.layout)
        folders = ("imagefolder", "unlabeled")
        if self.layout not in folders and (self.follow_symlinks or self.max_pixels is not None):
            raise ValueError(
                f"follow_symlinks and max_pixels apply to layouts {' and '.join(folders)}, "
                f"not {self.layout!r}"
            )
        if not is_labelled(layout.role):
            _check_unlabeled(self)
        for key in layout.needs:
            if not getattr(self, key):
                raise ValueError(f"dataset layout {self.layout!r} needs {key!r}")
        if self.acceptable_labels == "real" and not layout.real_labels:
            real = [n for n in available_layouts() if get_layout(n).real_labels]
            raise ValueError(
                f"acceptable_labels: real (ImageNet ReaL) applies to layout {' or '.join(real)}, "
                f"not {self.layout!r}; give a JSON file of file -> class indices instead"
            )
        if layout.expands:
            for key in ("acceptable_labels", "corruptions"):
                if getattr(self, key):
                    raise ValueError(f"{key} is not supported for layout {self.layout!r}")
        return self


def _check_unlabeled(entry: DatasetEntry) -> None:
    """An unlabelled layout's datasets stay unlabelled: no labelled role, no label options."""
    if entry.role is not None and is_labelled(entry.role):
        raise ValueError(
            f"layout {entry.layout!r} has no labels, so its role cannot be {entry.role!r} "
            "(a labelled role would score predictions against labels that do not exist); "
            "leave role unset"
        )
    for key in ("acceptable_labels", "mapping_file", "corruptions"):
        if getattr(entry, key):
            raise ValueError(
                f"{key} does not apply to layout {entry.layout!r}: its images have no labels"
            )


class EngineSection(_Strict):
    batch_size: int = Field(256, ge=1)
    shard_size: int = Field(2048, ge=1)
    num_workers: int | None = None
    device: str = "auto"
    models_per_pass: int = Field(32, ge=1)
    #: autocast to bfloat16 (None: on CUDA only)
    amp: bool | None = None
    #: channels-last inputs and weights (None: on; faster for convolutions on CPU and GPU)
    channels_last: bool | None = None
    #: on CUDA, decode JPEG files on the device (pixels differ from PIL's by about one level,
    #: so off by default; a file the device refuses falls back to PIL)
    gpu_decode: bool = False
    #: run each backbone with its conv-BatchNorm pairs folded into single convs (the same
    #: function up to float rounding, faster); off: every model's own forward, bit for bit
    #: (for arrays computed from then on: like device and amp, it is not part of their key)
    fold_batchnorm: bool = True


class PublishedEntry(_Strict):
    """A published per-model table to place the study's models among (see
    :func:`robustlens.published.load_published`): a shipped table's name or a path."""

    source: str
    format: Literal["testbed", "bvg", "robustbench"] | None = None

    @property
    def shipped(self) -> bool:
        return self.source in SOURCES and self.format is None

    @model_validator(mode="after")
    def _shipped_or_a_path(self) -> PublishedEntry:
        # a bare word is meant as a shipped table; a path is checked when it is read
        looks_like_path = "/" in self.source or "." in self.source
        if not self.shipped and self.format is None and not looks_like_path:
            raise ValueError(
                f"published: unknown table {self.source!r}; shipped: {', '.join(SOURCES)} "
                "(or give a path to a newer copy, with format:)"
            )
        return self


class StudyConfig(_Strict):
    name: str = "study"
    store: str = ".robustlens/store"
    output: str = "robustlens-out"
    world: WorldConfig | None = None
    zoo: ZooSection | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    datasets: list[DatasetEntry] = Field(default_factory=list)
    measures: list[str] = Field(default_factory=lambda: ["accuracy"])
    measure_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    engine: EngineSection = EngineSection()
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    #: published zoos the report places the study's models among (shipped names or paths)
    published: list[PublishedEntry] = Field(default_factory=list)

    @field_validator("published", mode="before")
    @classmethod
    def _published_entries(cls, entries: Any) -> Any:
        if not isinstance(entries, list):
            return entries
        return [{"source": e} if isinstance(e, str) else e for e in entries]

    @field_validator("measures")
    @classmethod
    def _known_measures(cls, measures: list[str]) -> list[str]:
        return _known("measures", measures, available_measures())

    @model_validator(mode="after")
    def _options_of_known_measures(self) -> StudyConfig:
        # Options of a measure that `measures:` leaves out are still checked: a command such
        # as `robustlens spurious` runs the study file with its own measures and reads them.
        _known("measure_options", list(self.measure_options), available_measures())
        for name, options in self.measure_options.items():
            validate_measure_options(name, options)
        return self


def _is_branch(part: Any) -> bool:
    """A location part pydantic adds for a union member (``list[str]``, ``literal['all']``)."""
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _problem(err: Mapping[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{key}: unknown key"
    if err["type"] == "value_error":
        return f"{key}: {msg}" if key else msg
    if err["type"] == "union_tag_invalid":
        return f"{key}.source: unknown model source {err['ctx']['tag']!r}; {_sources()}"
    if err["type"] == "union_tag_not_found":
        return f"{key}.source: missing; {_sources()}"
    return f"{key}: {msg} (got {err.get('input')!r})"


def _sources() -> str:
    return f"known sources: {', '.join(available_sources())}"


def _without_branches(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Errors of a value that fits no member of a union (``world: all`` or a list of splits)
    as one error per key ("Input should be 'all' or a valid list"); when some member's errors
    lie below the key (an item of the list), only those are kept."""
    plain: list[dict[str, Any]] = []
    merged: dict[tuple, dict[str, Any]] = {}
    for e in errors:
        loc = tuple(p for p in e["loc"] if not _is_branch(p))
        if len(loc) == len(e["loc"]):
            plain.append(dict(e))
        elif loc not in merged:
            merged[loc] = {**e, "loc": loc}
        elif str(e["msg"]).startswith("Input should be "):
            merged[loc]["msg"] += " or " + str(e["msg"]).removeprefix("Input should be ")
    deepest = [
        e
        for loc, e in merged.items()
        if not any(len(d) > len(loc) and d[: len(loc)] == loc for d in merged)
    ]
    return plain + deepest


def _problems(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """pydantic errors in words, each naming its key; a model entry's errors are described by
    its source (unknown keys with the allowed ones, required keys)."""
    by_entry: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    out: list[str] = []
    for err in _without_branches(errors):
        loc = err["loc"]
        if len(loc) >= 3 and loc[0] == "models" and isinstance(loc[1], int):
            by_entry.setdefault((f"models.{loc[1]}", str(loc[2])), []).append(
                {**err, "loc": loc[3:]}
            )
        else:
            out.append(_problem(err))
    for (where, source), errs in by_entry.items():
        out += [f"{where} (source {source}): {p}" for p in entry_problems(source, errs)]
    return out


def parse_config(
    data: dict[str, Any], source: str = "<dict>", base_dir: Path | None = None
) -> StudyConfig:
    """Validate a config dict; relative paths are resolved against ``base_dir``.

    Raises:
        ConfigError: one line per problem, each naming its key (one line in all for one).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"study config {source} must be a mapping, got {type(data).__name__}")
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc.errors())
        if len(problems) == 1:
            raise ConfigError(f"invalid study config {source}: {problems[0]}") from None
        raise ConfigError(
            f"invalid study config {source}:\n" + "\n".join(f"  {p}" for p in problems)
        ) from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_paths(cfg: StudyConfig, base: Path) -> StudyConfig:
    def r(p: str | None) -> str | None:
        if p is None:
            return None
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base / q))

    update: dict[str, Any] = {"store": r(cfg.store), "output": r(cfg.output)}
    if cfg.zoo is not None:
        update["zoo"] = cfg.zoo.model_copy(update={"dir": r(cfg.zoo.dir)})
    update["models"] = [
        m.model_copy(update={f: r(getattr(m, f)) for f in m.path_fields}) for m in cfg.models
    ]
    update["datasets"] = [
        d.model_copy(update={"root": r(d.root), "mapping_file": r(d.mapping_file)})
        for d in cfg.datasets
    ]
    update["published"] = [
        p
        if p.source in SOURCES and p.format is None
        else p.model_copy(update={"source": r(p.source)})
        for p in cfg.published
    ]
    return cfg.model_copy(update=update)


def read_config_data(path: str | Path) -> dict[str, Any]:
    """The YAML mapping of a study file (not validated yet)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"study config {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"study config {path} is not valid YAML: {exc}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Read and validate a YAML study file (``overrides`` replace top-level keys first)."""
    data = read_config_data(path)
    if overrides:
        data = {**data, **overrides}
    return parse_config(data, str(path), base_dir=Path(path).parent.resolve())
