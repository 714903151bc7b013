"""The local executor: one engine pass per dataset, all models of the chunk in that pass."""

from __future__ import annotations

from collections.abc import Mapping

from robustlens.engine import Engine, EngineReport
from robustlens.executors.base import Executor, Work
from robustlens.measure import DatasetInfo


class LocalExecutor(Executor):
    def run_jobs(
        self, engine: Engine, work: Work, infos: Mapping[str, DatasetInfo]
    ) -> list[EngineReport]:
        # each dataset's last shards are written while the next one computes
        with engine.deferred_writes():
            return [engine.run(ds.dataset(), jobs) for ds, jobs in work]
