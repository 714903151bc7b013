"""The measure contract and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustlens.data.base import ClassMapping
from robustlens.engine import StoredArrays
from robustlens.errors import ConfigError

#: roles a dataset can play in a study; measures choose datasets by role
ROLES = (
    "train",
    "id",
    "v2",
    "corrupt",
    "sketch",
    "cue_conflict",
    "spurious",
    "rendition",
    "adversarial",
    "natural",
    "other",
)


@dataclass(frozen=True)
class DatasetInfo:
    """What measures know about a dataset of the study (never its pixels)."""

    name: str
    fingerprint: str
    role: str
    classes: tuple[str, ...]
    tags: Mapping[str, Any] = field(default_factory=dict)  # e.g. corruption, severity

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


class Measure(ABC):
    """A measure: which views it needs on which dataset, and how to compute from arrays."""

    name: str = "measure"
    description: str = ""

    @abstractmethod
    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        """Views needed on ``dataset`` -> whether penultimate features are needed too.

        An empty dict means the measure does not use this dataset.
        """

    @abstractmethod
    def compute(
        self,
        model: ModelInfo,
        datasets: Mapping[str, DatasetInfo],
        arrays: Mapping[str, StoredArrays],
        mappings: Mapping[str, ClassMapping],
    ) -> MeasureOutput:
        """Compute the measure for one model from the arrays of every dataset it requested."""


_MEASURES: dict[str, Callable[..., Measure]] = {}


def register_measure(name: str) -> Callable[[Callable[..., Measure]], Callable[..., Measure]]:
    def deco(factory: Callable[..., Measure]) -> Callable[..., Measure]:
        _MEASURES[name] = factory
        return factory

    return deco


def _load_builtin() -> None:
    import importlib

    for mod in (
        "classification",
        "invariance",
        "label_free",
        "clustering",
        "biases",
        "spurious",
        "robustness",
    ):
        try:
            importlib.import_module(f"robustlens.measures.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"robustlens.measures.{mod}":
                raise


def available_measures() -> list[str]:
    _load_builtin()
    return sorted(_MEASURES)


def get_measure(name: str, **options: Any) -> Measure:
    _load_builtin()
    if name not in _MEASURES:
        raise ConfigError(f"unknown measure {name!r}; available: {', '.join(sorted(_MEASURES))}")
    return _MEASURES[name](**options)


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
