"""Helpers for testing measures without a store or a model (robustlens's own tests and a
third-party research line's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["InMemoryArrays"]


class InMemoryArrays:
    """Duck-typed :class:`robustlens.store.StoredArrays`: labels, logits per view and extra
    labels held in memory, sample ids ``0..n-1``. Reading a view that was not given raises
    ``KeyError``: the measure read a view it did not request.

    Example:
        >>> a = InMemoryArrays([0, 1], {"clean": np.eye(2)}, {"texture_label": np.array([1, 0])})
        >>> a.logits("clean").argmax(1).tolist(), a.extra("texture_label").tolist()
        ([0, 1], [1, 0])
    """

    def __init__(
        self,
        labels: Any,
        logits: Mapping[str, np.ndarray],
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self._labels = np.asarray(labels, dtype=np.int64)
        self._logits = dict(logits)
        self._extras = dict(extras or {})

    def labels(self) -> np.ndarray:
        return self._labels

    def sample_ids(self) -> np.ndarray:
        return np.arange(len(self._labels))

    def extra(self, name: str) -> np.ndarray:
        return self._extras[name]

    def logits(self, view: str = "clean") -> np.ndarray:
        return self._logits[view]
