"""Executors run the engine part of a study: locally (default) or on a Ray cluster."""

from __future__ import annotations

from typing import Any

from robustlens.executors.base import Executor
from robustlens.executors.local import LocalExecutor
from robustlens.executors.ray_executor import RayExecutor

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "get_executor"]


def get_executor(cfg: Any) -> Executor:
    """The executor a study config asks for (``executor: ray`` imports ray only then)."""
    if getattr(cfg, "executor", "local") == "ray":
        return RayExecutor(address=cfg.ray_address)
    return LocalExecutor()
