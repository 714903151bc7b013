"""The local executor: one engine pass per dataset, all models of the chunk in that pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from robustlens.engine import Engine, EngineJob, EngineReport
from robustlens.measures.base import DatasetInfo, Measure
from robustlens.models.base import ModelAdapter


def plan_jobs(
    models: Sequence[ModelAdapter], measures: Sequence[Measure], info: DatasetInfo
) -> list[EngineJob]:
    from robustlens.study import plan_views

    views, feature_views = plan_views(measures, info)
    if not views:
        return []
    return [EngineJob(m, views, feature_views) for m in models]


class LocalExecutor:
    def run(
        self,
        engine: Engine,
        dspecs: Sequence[Any],
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
