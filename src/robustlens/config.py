"""Study configuration (YAML), validated with pydantic: unknown keys and wrong types are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robustlens.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldSection(_Strict):
    seed: int = 0
    n_classes: int = 10
    image_size: int = 32
    n_train_per_class: int = 300
    n_val_per_class: int = 60
    n_shift_per_class: int = 30
    texture_correlation: float = 0.9
    mark_rate: float = 0.8
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)


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
    members: Literal["default"] | list[dict[str, Any]] = "default"
    epochs_scale: float = 1.0
    workers: int = 2
    generated: GeneratedSection | None = None


class ModelEntry(_Strict):
    """One model (``source`` timm/torchvision/efficientnet_lite/module/zoo_checkpoint) or a zoo."""

    name: str | None = None
    source: Literal["zoo", "zoo_checkpoint", "timm", "torchvision", "efficientnet_lite", "module"]
    path: str | None = None  # zoo dir or checkpoint / weights file
    arch: str | None = None
    variant: str | None = None
    factory: str | None = None
    classes: list[str] | None = None
    num_classes: int | None = None
    trust_pickle: bool = False


class DatasetEntry(_Strict):
    """A world split selection, or an on-disk dataset in a named layout."""

    name: str | None = None
    world: Literal["all"] | list[str] | None = None
    layout: (
        Literal[
            "imagefolder",
            "imagenet_val",
            "imagenet_c",
            "imagenet_r",
            "imagenet_a",
            "imagenet_sketch",
            "imagenet_v2",
            "objectnet",
            "cue_conflict",
            "spurious_imagenet",
        ]
        | None
    ) = None
    root: str | None = None
    role: str | None = None
    size: int = 224
    mapping_file: str | None = None
    # labels that also count as correct: "real" (ImageNet ReaL, imagenet_val) or a JSON file
    # of file name or relative path -> class indices
    acceptable_labels: str | None = None
    # derived ImageNet-C-style sets, corrupted at load time (when no -C copy is on disk)
    corruptions: list[str] = Field(default_factory=list)
    severities: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])

    @model_validator(mode="after")
    def _one_kind(self) -> DatasetEntry:
        if (self.world is None) == (self.layout is None):
            raise ValueError("a dataset entry needs exactly one of 'world' or 'layout'")
        if self.layout is not None and not self.root:
            raise ValueError(f"dataset layout {self.layout!r} needs 'root'")
        return self


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


class StudyConfig(_Strict):
    name: str = "study"
    store: str = ".robustlens/store"
    output: str = "robustlens-out"
    world: WorldSection | None = None
    zoo: ZooSection | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    datasets: list[DatasetEntry] = Field(default_factory=list)
    measures: list[str] = Field(default_factory=lambda: ["accuracy"])
    measure_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    engine: EngineSection = EngineSection()
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None


def _format_pydantic(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key")
        else:
            lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid study config {source}:\n" + "\n".join(lines)


def parse_config(
    data: dict[str, Any], source: str = "<dict>", base_dir: Path | None = None
) -> StudyConfig:
    """Validate a config dict; relative paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"study config {source} must be a mapping, got {type(data).__name__}")
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_pydantic(exc, source)) from None
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
    update["models"] = [m.model_copy(update={"path": r(m.path)}) for m in cfg.models]
    update["datasets"] = [
        d.model_copy(update={"root": r(d.root), "mapping_file": r(d.mapping_file)})
        for d in cfg.datasets
    ]
    return cfg.model_copy(update=update)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> StudyConfig:
    """Read and validate a YAML study file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"study config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"study config {path} is not valid YAML: {exc}") from None
    if overrides:
        data = {**data, **overrides}
    return parse_config(data, str(path), base_dir=path.parent.resolve())
