"""The measure contract, and the registries of measures and research lines.

A *measure* declares which views it needs on which dataset and computes numbers from the
arrays the engine stored; it never runs a model. A *research line* (a package under
``robustlens.lines`` or any installed package) bundles the measures of one line of work with
its report sections and command-line commands, and is found through the Python entry-point
group ``robustlens.lines``::

    [project.entry-points."robustlens.lines"]
    invariance = "robustlens.lines.invariance:LINE"

The core (config, plan, engine, store, study runner, report page, CLI) only ever asks these
registries; it never names a line. A line that fails to import is an error naming it.
"""

from __future__ import annotations

import inspect
import json
import traceback
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydantic

from robustlens.data.base import ClassMapping
from robustlens.errors import ConfigError, RobustlensError
from robustlens.roles import ROLES, is_labelled
from robustlens.store import StoredArrays

__all__ = [
    "ENTRY_POINT_GROUP",
    "ROLES",
    "DatasetContext",
    "DatasetInfo",
    "Line",
    "LineLoadError",
    "Measure",
    "MeasureOutput",
    "ModelInfo",
    "Section",
    "available_measures",
    "dataset_predictions",
    "get_line",
    "get_measure",
    "lines",
    "measure_options_model",
    "register_line",
    "register_measure",
    "validate_measure_options",
]

ENTRY_POINT_GROUP = "robustlens.lines"


@dataclass(frozen=True)
class DatasetInfo:
    """What measures know about a dataset of the study (never its pixels)."""

    name: str
    fingerprint: str
    role: str
    classes: tuple[str, ...]
    tags: Mapping[str, Any] = field(default_factory=dict)  # e.g. corruption, severity
    #: number of samples (``None`` where not known, e.g. a hand-built info)
    size: int | None = None

    @property
    def chance(self) -> float:
        return 1.0 / max(1, len(self.classes))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    fingerprint: str
    classes: tuple[str, ...]
    config: Mapping[str, Any] = field(default_factory=dict)
    weight: np.ndarray | None = None  # last linear layer (K, D), for neural PCA
    bias: np.ndarray | None = None


@dataclass
class MeasureOutput:
    """Numbers per dataset (``(dataset, name) -> value``), per-sample arrays, and extras."""

    values: dict[tuple[str, str], float] = field(default_factory=dict)
    per_sample: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)  # curves, components, fits


@dataclass(frozen=True)
class DatasetContext:
    """One dataset as a measure's per-dataset computation sees it."""

    model: ModelInfo
    info: DatasetInfo
    arrays: StoredArrays
    mapping: ClassMapping

    @property
    def name(self) -> str:
        return self.info.name

    def predictions(self, view: str = "clean") -> tuple[np.ndarray, np.ndarray]:
        """Dataset-space probabilities and predictions of ``view`` (see
        :func:`dataset_predictions`)."""
        return dataset_predictions(self.arrays.logits(view), self.mapping)


class Measure(ABC):
    """A measure: which views it needs on which dataset, and how to compute from arrays.

    Most measures compute each dataset on its own: they implement :meth:`requests` and
    :meth:`compute_dataset`, and the base class loops over the datasets. A measure that
    relates datasets (calibrating on ``id``, comparing with a shift) overrides
    :meth:`compute_datasets` instead.

    Options are the keyword arguments of ``__init__``; :func:`get_measure` checks them
    against their annotations before the measure is built.
    """

    name: ClassVar[str] = "measure"
    description: ClassVar[str] = ""
    #: the paper whose protocol the measure follows (recorded with its results)
    paper: ClassVar[str] = ""
    #: whether the measure needs no labels, and so may read an unlabelled dataset (role
    #: ``unlabeled``); every other measure is kept off such datasets by :meth:`reads`, so a
    #: measure cannot score predictions against labels that do not exist
    label_free: ClassVar[bool] = False

    @abstractmethod
    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        """Views needed on ``dataset`` -> whether penultimate features are needed too.

        An empty dict means the measure does not use this dataset.
        """

    def reads(self, dataset: DatasetInfo) -> dict[str, bool]:
        """What the study gives the measure on ``dataset``: :meth:`requests`, except nothing on
        an unlabelled dataset unless the measure is :attr:`label_free`."""
        if not self.label_free and not is_labelled(dataset.role):
            return {}
        return self.requests(dataset)

    def options(self) -> dict[str, Any] | None:
        """The measure's settings as plain JSON values, or ``None`` if some are not plain."""
        try:
            text = json.dumps(
                {k: v for k, v in vars(self).items() if not k.startswith("_")},
                sort_keys=True,
                default=_plain,
            )
        except TypeError:
            return None
        return json.loads(text)

    def protocol(self) -> dict[str, Any]:
        """What the numbers of this measure mean: its name, paper and every parameter."""
        return {
            "measure": self.name,
            "description": self.description,
            "paper": self.paper,
            "parameters": self.options() or {},
        }

    def compute_dataset(self, data: DatasetContext, out: MeasureOutput) -> None:
        """Add one dataset's numbers, per-sample columns and artifacts to ``out``."""
        raise NotImplementedError(
            f"measure {self.name!r} implements neither compute_dataset nor compute"
        )

    def compute(
        self,
        model: ModelInfo,
        datasets: Mapping[str, DatasetInfo],
        arrays: Mapping[str, StoredArrays],
        mappings: Mapping[str, ClassMapping],
    ) -> MeasureOutput:
        """Compute the measure for one model from the arrays of every dataset it requested."""
        out = MeasureOutput()
        data = {
            name: DatasetContext(model, info, arrays[name], mappings[name])
            for name, info in datasets.items()
            if self.reads(info)
        }
        self.compute_datasets(data, out)
        return out

    def compute_datasets(self, data: Mapping[str, DatasetContext], out: MeasureOutput) -> None:
        """Every requested dataset of one model, in study order.

        One at a time through :meth:`compute_dataset` by default; a measure that relates
        datasets (calibrating on ``id``, comparing with a shift) overrides this.
        """
        for d in data.values():
            self.compute_dataset(d, out)


def _plain(x: Any) -> Any:
    if isinstance(x, tuple | set | frozenset):
        return sorted(x) if isinstance(x, set | frozenset) else list(x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not a plain value: {type(x).__name__}")


def dataset_predictions(logits: np.ndarray, mapping: ClassMapping) -> tuple[np.ndarray, np.ndarray]:
    """Dataset-space probabilities and predictions from model logits and the class mapping.

    For masks the logits of the mapped outputs are re-normalised with a softmax (the
    ImageNet-R/-A protocol); for ``mean`` mappings the averaged probabilities are
    re-normalised over the categories.
    """
    scores = mapping.dataset_scores(logits)
    if mapping.reduce == "mean":
        probs = scores / np.clip(scores.sum(axis=1, keepdims=True), 1e-12, None)
    else:
        z = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(z)
        probs /= probs.sum(axis=1, keepdims=True)
    return probs, probs.argmax(axis=1)


# ----------------------------------------------------------------------------- lines
@dataclass(frozen=True)
class Section:
    """A report section of a line: ``render(ctx) -> HTML fragment | None``; lower order first.

    ``ctx`` is a :class:`robustlens.report.context.ReportContext`.
    """

    title: str
    render: Callable[[Any], str | None]
    order: int = 100


@dataclass(frozen=True)
class Line:
    """A research line: its measures, report sections and command-line commands.

    Attributes:
        name: the line's name (the entry point's name).
        title: one line for listings.
        measures: measure classes; each is registered under its ``name``.
        sections: report sections.
        commands: ``register(app)`` callables that add typer commands to the CLI.
        papers: the papers the line implements, for the report and the exports.
        summaries: ``summary(ctx) -> Table | None`` callables (``ctx`` a report context) whose
            tables end the demo's printed summary.
    """

    name: str
    title: str
    measures: Sequence[type[Measure]] = ()
    sections: Sequence[Section] = ()
    commands: Sequence[Callable[[Any], None]] = ()
    papers: Sequence[str] = ()
    summaries: Sequence[Callable[[Any], Any]] = ()


class LineLoadError(RobustlensError, ImportError):
    """A research line's entry point could not be loaded."""


_LINES: dict[str, Line] = {}
_MEASURES: dict[str, type[Measure]] = {}
_MEASURE_LINE: dict[str, str] = {}
_DISCOVERED = False


def register_line(line: Line) -> Line:
    """Register a research line and its measures (explicitly, or from an entry point)."""
    for cls in line.measures:
        owner = _MEASURE_LINE.get(cls.name)
        if owner is not None and owner != line.name:
            raise ConfigError(
                f"measure {cls.name!r} of line {line.name!r} is already registered by line "
                f"{owner!r}"
            )
    _LINES[line.name] = line
    for cls in line.measures:
        _MEASURES[cls.name] = cls
        _MEASURE_LINE[cls.name] = line.name
    return line


def register_measure(name: str) -> Callable[[type[Measure]], type[Measure]]:
    """Register one measure class outside a line (a quick experiment in a script)."""

    def deco(cls: type[Measure]) -> type[Measure]:
        cls.name = name
        _MEASURES[name] = cls
        return cls

    return deco


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in _LINES:
            continue
        try:
            line = ep.load()
        except Exception as exc:
            _DISCOVERED = False
            raise LineLoadError(
                f"research line {ep.name!r} ({ep.value}) failed to import: {exc!r}\n"
                f"{traceback.format_exc(limit=3)}"
            ) from exc
        if not isinstance(line, Line):
            _DISCOVERED = False
            raise LineLoadError(
                f"research line {ep.name!r} ({ep.value}) is a {type(line).__name__}, "
                "not a robustlens.measure.Line"
            )
        register_line(line)


def lines() -> list[Line]:
    """Every registered research line, by name."""
    _discover()
    return [_LINES[n] for n in sorted(_LINES)]


def get_line(name: str) -> Line:
    _discover()
    if name not in _LINES:
        raise ConfigError(f"unknown research line {name!r}; available: {', '.join(sorted(_LINES))}")
    return _LINES[name]


def available_measures() -> list[str]:
    _discover()
    return sorted(_MEASURES)


def _measure_class(name: str) -> type[Measure]:
    _discover()
    if name not in _MEASURES:
        raise ConfigError(
            f"unknown measure {name!r}; available: {', '.join(sorted(_MEASURES)) or 'none'}"
        )
    return _MEASURES[name]


def measure_options_model(cls: type[Measure]) -> type[pydantic.BaseModel]:
    """A pydantic model of a measure's options, made from its ``__init__`` signature.

    Annotations written as strings (``from __future__ import annotations``) are resolved, so a
    wrong type is an error too; one that cannot be resolved accepts any value.
    """
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    fields: dict[str, Any] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, Any)
        default = p.default if p.default is not inspect.Parameter.empty else ...
        fields[p.name] = (annotation, default)
    return pydantic.create_model(
        f"{cls.__name__}Options",
        __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )


def validate_measure_options(name: str, options: Mapping[str, Any]) -> None:
    """Check ``options`` against measure ``name``'s options; an error names the bad key."""
    cls = _measure_class(name)
    model = measure_options_model(cls)
    allowed = ", ".join(model.model_fields) or "none"
    try:
        model(**dict(options))
    except pydantic.ValidationError as exc:
        problems = []
        for e in exc.errors():
            key = ".".join(str(x) for x in e["loc"])
            if e["type"] == "extra_forbidden":
                problems.append(f"unknown option {key!r}")
            else:
                problems.append(f"{key}: {e['msg']}")
        raise ConfigError(
            f"measure_options.{name}: {'; '.join(problems)}; allowed options: {allowed}"
        ) from None


def get_measure(name: str, **options: Any) -> Measure:
    """Build measure ``name`` with ``options`` (checked first)."""
    validate_measure_options(name, options)
    return _measure_class(name)(**options)
