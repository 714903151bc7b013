"""Executors run the engine part of a study: locally (default) or on a Ray cluster."""

from __future__ import annotations

from typing import Any

from robustlens.executors.local import LocalExecutor


def get_executor(cfg: Any) -> Any:
    if getattr(cfg, "executor", "local") == "ray":
        # ray is an optional dependency: its executor is imported only when asked for
        from robustlens.executors.ray_executor import RayExecutor

        return RayExecutor(address=cfg.ray_address)
    return LocalExecutor()
