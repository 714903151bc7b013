"""Executors run the engine part of a study: locally (default) or on a Ray cluster."""

from __future__ import annotations

from typing import Any


def get_executor(cfg: Any):
    if getattr(cfg, "executor", "local") == "ray":
        from robustlens.executors.ray_executor import RayExecutor

        return RayExecutor(address=cfg.ray_address)
    from robustlens.executors.local import LocalExecutor

    return LocalExecutor()
