"""The local executor: one engine pass per dataset, all models of the chunk in that pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from robustlens.engine import Engine, EngineReport
from robustlens.measure import DatasetInfo, Measure
from robustlens.models.base import ModelAdapter
from robustlens.plan import DatasetSpec, plan_jobs


class LocalExecutor:
    def run(
        self,
        engine: Engine,
        dspecs: Sequence[DatasetSpec],
        models: Sequence[ModelAdapter],
        measures: Sequence[Measure],
        infos: Mapping[str, DatasetInfo],
    ) -> list[EngineReport]:
        reports = []
        for ds in dspecs:
            jobs = plan_jobs(models, measures, infos[ds.name])
            if jobs:
                reports.append(engine.run(ds.dataset(), jobs))
        return reports
