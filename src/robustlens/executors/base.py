"""What an executor is: it runs the engine jobs of a study, planned here once for all."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from robustlens.engine import Engine, EngineJob, EngineReport
from robustlens.measure import DatasetInfo, Measure
from robustlens.models.base import ModelAdapter
from robustlens.plan import DatasetSpec, plan_jobs

#: one dataset and the engine jobs (model + views) the measures need on it
Work = Sequence[tuple[DatasetSpec, list[EngineJob]]]


class Executor(ABC):
    """Runs the engine part of a study; subclasses say where the jobs run."""

    def run(
        self,
        engine: Engine,
        dspecs: Sequence[DatasetSpec],
        models: Sequence[ModelAdapter],
        measures: Sequence[Measure],
        infos: Mapping[str, DatasetInfo],
    ) -> list[EngineReport]:
        """Plan the jobs of every dataset (:func:`robustlens.plan.plan_jobs`) and run them.

        Datasets no measure needs are left out; one report per dataset that ran.
        """
        work = []
        for ds in dspecs:
            jobs = plan_jobs(models, measures, infos[ds.name])
            if jobs:
                work.append((ds, jobs))
        return self.run_jobs(engine, work, infos)

    @abstractmethod
    def run_jobs(
        self, engine: Engine, work: Work, infos: Mapping[str, DatasetInfo]
    ) -> list[EngineReport]:
        """Run the planned jobs of each dataset, writing into ``engine.store``."""
