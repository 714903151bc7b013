"""The Ray executor: (dataset, models) engine jobs as Ray tasks; the driver commits results.

Each task runs the same :class:`~robustlens.engine.Engine` into a private scratch store on its
worker and returns the shard arrays; the driver writes them into the study's store. The store
therefore never has concurrent writers across machines, keys and numbers are those of a local
run, and a task whose worker dies is retried by Ray (``max_retries``). Shards already in the
study's store are skipped by the workers' engines only when the store is on shared storage;
otherwise the driver filters finished jobs before submitting them. Skipped files and failed
models (non-finite outputs, stored nowhere) come back in each task's report, as locally.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

import torch

from robustlens.engine import Engine, EngineJob, EngineReport
from robustlens.errors import RobustlensError
from robustlens.executors.base import Executor, Work
from robustlens.measure import DatasetInfo
from robustlens.store import ENGINE_VERSION, META_VIEW, ArrayKey, Store


def _run_job(
    dataset: Any,
    jobs: list[EngineJob],
    engine_kwargs: dict[str, Any],
    threads: int,
    engine_version: str = ENGINE_VERSION,
) -> tuple[EngineReport, list[tuple[ArrayKey, int, int, dict]], list[tuple[str, str]]]:
    """Worker side: run the engine into a scratch store and return what it wrote."""
    if engine_version != ENGINE_VERSION:
        # a node with other pixel or view code would store arrays the driver never finds
        raise RobustlensError(
            f"this Ray worker runs robustlens pixel/view code {ENGINE_VERSION}, the driver "
            f"{engine_version}; install the same robustlens version on every node"
        )
    torch.set_num_threads(threads)  # as many threads as CPUs the task holds: no oversubscription
    with tempfile.TemporaryDirectory(prefix="robustlens-ray-") as tmp:
        scratch = Store(tmp)
        report = Engine(scratch, **engine_kwargs).run(dataset, jobs)
        dfp = dataset.fingerprint()
        keys = [ArrayKey("", dfp, META_VIEW)] + [
            ArrayKey(j.model.fingerprint(), dfp, v) for j in jobs for v in j.views
        ]
        shards = [
            (key, shard, n_shards, arrays)
            for key in keys
            for shard, n_shards, arrays in scratch.shard_arrays(key)
        ]
        return report, shards, scratch.skipped(dfp)


class RayExecutor(Executor):
    """Run engine jobs on a Ray cluster (``address=None`` starts a local one)."""

    def __init__(
        self, address: str | None = None, max_retries: int = 3, num_cpus_per_task: float = 1.0
    ) -> None:
        try:
            import ray  # optional dependency: ray (the robustlens[ray] extra)
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("the Ray executor needs ray: pip install 'robustlens[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        self.max_retries = max_retries
        self.num_cpus = num_cpus_per_task

    def run_jobs(
        self, engine: Engine, work: Work, infos: Mapping[str, DatasetInfo]
    ) -> list[EngineReport]:
        ray = self.ray
        use_gpu = engine.device.type == "cuda"
        remote = ray.remote(_run_job).options(
            max_retries=self.max_retries,
            retry_exceptions=False,
            num_cpus=self.num_cpus,
            num_gpus=1 if use_gpu else 0,
        )
        engine_kwargs = {
            "batch_size": engine.batch_size,
            "shard_size": engine.shard_size,
            "num_workers": 0,
            "device": str(engine.device) if use_gpu else "cpu",
            "amp": engine.amp and use_gpu,
            "channels_last": engine.channels_last,
            "gpu_decode": engine.gpu_decode and use_gpu,
            "fold_batchnorm": engine.fold_batchnorm,
        }
        pending = {}
        reports: list[EngineReport] = []
        for ds, jobs in work:
            dfp = infos[ds.name].fingerprint
            keys = [ArrayKey(j.model.fingerprint(), dfp, v) for j in jobs for v in j.views]
            # answered from the store: nothing to send
            if all(engine.store.has(k) for k in keys) and engine.store.has(
                ArrayKey("", dfp, META_VIEW)
            ):
                dataset = ds.dataset()
                engine.store.put_skipped(dfp, getattr(dataset, "skipped", None) or [])
                reports.append(
                    EngineReport(
                        dataset=ds.name,
                        images=len(dataset),
                        shards_cached=1,
                        shards_total=1,
                        skipped=engine.store.skipped(dfp),
                    )
                )
                engine.shards_done += 1
                continue
            ref = remote.remote(
                ds.dataset(), jobs, engine_kwargs, max(1, int(self.num_cpus)), ENGINE_VERSION
            )
            pending[ref] = (ds.name, dfp)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            _, dfp = pending.pop(ref)
            report, shards, skipped = ray.get(ref)
            for key, shard, n_shards, arrays in shards:
                engine.store.put_shard(key, shard, n_shards, arrays)
            engine.store.put_skipped(dfp, skipped)
            report.skipped = engine.store.skipped(dfp)
            engine.shards_done += report.shards_total
            reports.append(report)
        return reports
