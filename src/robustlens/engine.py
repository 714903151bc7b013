"""The engine: one pass over a dataset runs every requested view through every model.

For one dataset and a list of jobs (model + views), the engine walks the dataset shard by
shard. A shard whose arrays are all in the store is skipped without decoding; otherwise each
image of the shard is decoded once, every view of every model that still needs the shard is
applied to the decoded batch on tensors, and logits (and, where asked, penultimate features)
are written to the store shard by shard. It counts images decoded and forward passes run, so
that "a second identical run runs no forward pass" can be checked, not assumed.

A model whose outputs are not finite (NaN or infinite logits) on some sample of a dataset is
*failed* on that dataset: the engine keeps running it to count the samples, stores none of its
arrays for that dataset (so nothing wrong is cached, and a fixed model is simply computed
again), and reports it (:attr:`EngineReport.failed`); the other models are unaffected.

The engine never computes a metric; measures read what it stored.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robustlens.console import StageProgress
from robustlens.data.base import ArrayDataset, ClassMapping, Dataset
from robustlens.errors import ConfigError
from robustlens.models.base import ModelAdapter
from robustlens.store import META_VIEW, ArrayKey, Store
from robustlens.views import ViewContext, parse_view


@dataclass(frozen=True)
class EngineJob:
    """One model on one dataset: the views to run and the views whose features to keep."""

    model: ModelAdapter
    views: tuple[str, ...] = ("clean",)
    feature_views: frozenset[str] = frozenset({"clean"})


@dataclass
class EngineReport:
    """What a run did: the counters that tests and benchmarks read."""

    dataset: str
    images: int = 0
    images_decoded: int = 0
    forward_passes: int = 0  # images x views actually run through a model
    shards_total: int = 0
    shards_computed: int = 0
    shards_cached: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: models whose outputs were not finite: ``{model: {"samples": n, "of": N, "views": [..],
    #: "reason": "..."}}``; nothing of theirs was stored for this dataset
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        failed = f", {len(self.failed)} model(s) failed" if self.failed else ""
        return (
            f"{self.dataset}: {self.images_decoded} images decoded, {self.forward_passes} forward "
            f"passes, {self.shards_computed} shards computed / {self.shards_cached} cached, "
            f"{len(self.skipped)} skipped{failed}, {self.seconds:.2f}s"
        )


@dataclass
class _Run:
    """What every shard of one :meth:`Engine.run` shares."""

    dataset: Dataset
    jobs: Sequence[EngineJob]
    models: list[ModelAdapter]
    mappings: dict[int, ClassMapping]
    keys: dict[tuple[int, str], ArrayKey]
    meta_key: ArrayKey
    n_shards: int
    report: EngineReport
    bar: StageProgress | None
    acceptable: np.ndarray | None  # every sample's acceptable labels, when meta is missing
    #: per failed model (job index): indices of the samples with non-finite outputs, and views
    bad: dict[int, tuple[set[int], set[str]]] = field(default_factory=dict)


DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | None = None) -> torch.device:
    """The torch device a study's ``engine.device`` names, checked against this machine.

    Raises:
        ConfigError: an unknown device (``tpu``), or one this machine does not have (``cuda``
            without a CUDA GPU, ``cuda:3`` with one GPU, ``mps`` off Apple silicon).

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    robustlens.errors.ConfigError: engine.device: unknown device 'tpu'; expected auto, cpu, ...
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(device).strip().lower()
    kind, colon, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (colon and not index.isdigit()):
        raise ConfigError(f"engine.device: unknown device {device!r}; expected {DEVICES}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"engine.device is {device!r} but this machine has no usable CUDA GPU "
                "(torch.cuda.is_available() is False); use device: auto (CUDA when present) "
                "or cpu"
            )
        if colon and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"engine.device is {device!r} but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s) (cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"engine.device is {device!r} but MPS is not available on this machine")
    return torch.device(text)


class _SafeItems(torch.utils.data.Dataset):
    """Dataset items for a DataLoader; a corrupt file becomes a recorded skip, not a crash."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        idx = self.indices[i]
        try:
            s = self.dataset.load(idx)
        except Exception as exc:
            item = getattr(exc, "item", None) or getattr(exc, "path", None)
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            return ("skip", idx, str(item or f"{self.dataset.name}[{idx}]"), reason)
        return ("ok", idx, s)


def _collate(items: list) -> dict:
    ok = [it for it in items if it[0] == "ok"]
    skipped = [(it[2], it[3]) for it in items if it[0] == "skip"]
    if not ok:
        return {"images": None, "skipped": skipped}
    samples = [it[2] for it in ok]
    extras = {k: torch.tensor([s.extras[k] for s in samples]) for k in samples[0].extras}
    return {
        "images": torch.from_numpy(np.stack([s.image for s in samples])),
        "labels": torch.tensor([s.label for s in samples], dtype=torch.int64),
        "sample_ids": torch.tensor([s.sample_id for s in samples], dtype=torch.int64),
        "index": torch.tensor([it[1] for it in ok], dtype=torch.int64),
        "extras": extras,
        "skipped": skipped,
    }


class Engine:
    """Runs views through models and writes logits and features to the store.

    Args:
        store: where arrays go.
        batch_size: images per forward pass.
        shard_size: images per stored shard (the unit of caching and resuming).
        num_workers: DataLoader workers for file-backed datasets (``None``: 2 if the machine
            has more than 2 cores, else 0). In-memory datasets are sliced directly.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        amp: autocast in bfloat16 on CUDA (default on CUDA, off on CPU).
        channels_last: feed models channels-last tensors (default on). On CPU this alone makes
            the zoo CNNs and EfficientNet-Lite about 1.5-2x faster than NCHW-contiguous input,
            because oneDNN's convolutions work in NHWC; views such as rotations and filters
            otherwise hand the model whichever layout their last operation produced.
        progress: show a progress bar.
    """

    def __init__(
        self,
        store: Store,
        batch_size: int = 256,
        shard_size: int = 2048,
        num_workers: int | None = None,
        device: str | None = "auto",
        amp: bool | None = None,
        channels_last: bool | None = None,
        progress: bool = False,
    ) -> None:
        if batch_size < 1 or shard_size < 1:
            raise ValueError(
                f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}"
            )
        self.store = store
        self.batch_size = batch_size
        self.shard_size = shard_size
        self.num_workers = (
            (2 if (os.cpu_count() or 1) > 2 else 0) if num_workers is None else num_workers
        )
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if amp is None else amp
        self.channels_last = True if channels_last is None else channels_last
        self.progress = progress
        #: shards finished (computed or found in the store) by every run of this engine so far
        self.shards_done = 0

    # ---------------------------------------------------------------- batching
    def _batches(self, dataset: Dataset, start: int, stop: int) -> Iterator[dict]:
        if isinstance(dataset, ArrayDataset):
            labels, ids, extras = dataset.labels(), dataset.sample_ids(), dataset.extra_labels()
            for b in range(start, stop, self.batch_size):
                e = min(b + self.batch_size, stop)
                yield {
                    "images": torch.from_numpy(np.array(dataset.images[b:e], copy=True)),
                    "labels": torch.from_numpy(np.array(labels[b:e])),
                    "sample_ids": torch.from_numpy(np.array(ids[b:e])),
                    "index": torch.arange(b, e, dtype=torch.int64),
                    "extras": {k: torch.from_numpy(np.array(v[b:e])) for k, v in extras.items()},
                    "skipped": [],
                }
            return
        loader = torch.utils.data.DataLoader(
            _SafeItems(dataset, range(start, stop)),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        yield from loader

    # ---------------------------------------------------------------- run
    def run(self, dataset: Dataset, jobs: Sequence[EngineJob]) -> EngineReport:
        """Compute every missing (model, view) shard of ``dataset``; return the counters."""
        t0 = time.perf_counter()
        n = len(dataset)
        report = EngineReport(dataset=dataset.name, images=n)
        if n == 0:
            raise ValueError(f"dataset {dataset.name!r} is empty")
        dfp = dataset.fingerprint()
        n_shards = math.ceil(n / self.shard_size)
        report.shards_total = n_shards
        mappings: dict[int, ClassMapping] = {
            i: dataset.class_mapping(job.model.classes) for i, job in enumerate(jobs)
        }  # raises ClassMismatchError naming both class counts before any work is done
        for job in jobs:
            for v in job.views:
                parse_view(v)  # unknown views fail before any work is done
        meta_key = ArrayKey("", dfp, META_VIEW)
        keys = {
            (i, v): ArrayKey(job.model.fingerprint(), dfp, v)
            for i, job in enumerate(jobs)
            for v in job.views
        }
        done = self.store.completed_shards_many([meta_key, *keys.values()])
        for (i, v), key in keys.items():
            if v in jobs[i].feature_views:
                # a shard cached by a run that kept no features is not done for this one
                done[key] &= self.store.shards_with_array(key, "features")
        self.store.register(dfp, "dataset", dataset.name, {"n": n, "classes": len(dataset.classes)})
        for job in jobs:
            self.store.register(job.model.fingerprint(), "model", job.model.name, job.model.config)
        # files the dataset left out when it was indexed (zero bytes, symlinks not followed,
        # duplicates): recorded with the decoding failures, so every run lists them
        self.store.put_skipped(dfp, getattr(dataset, "skipped", None) or [])

        todo_shards = [
            s
            for s in range(n_shards)
            if s not in done[meta_key] or any(s not in done[k] for k in keys.values())
        ]
        report.shards_cached = n_shards - len(todo_shards)
        self.shards_done += report.shards_cached
        if not todo_shards:
            report.seconds = time.perf_counter() - t0
            report.skipped = self.store.skipped(dfp)
            return report

        models = self._prepare_models(jobs)
        # in dataset order; each meta shard keeps the rows of the samples it holds
        acceptable = (
            dataset.acceptable_labels()
            if any(s not in done[meta_key] for s in todo_shards)
            else None
        )
        bar = self._progress_bar(
            dataset.name, sum(min(self.shard_size, n - s * self.shard_size) for s in todo_shards)
        )
        run = _Run(
            dataset, jobs, models, mappings, keys, meta_key, n_shards, report, bar, acceptable
        )
        try:
            for s in todo_shards:
                needed = {
                    i: [v for v in job.views if s not in done[keys[(i, v)]]]
                    for i, job in enumerate(jobs)
                }
                self._run_shard(run, s, needed, s not in done[meta_key])
                report.shards_computed += 1
                self.shards_done += 1
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        self._drop_failed(run)
        report.skipped = self.store.skipped(dfp)
        report.seconds = time.perf_counter() - t0
        return report

    def _drop_failed(self, run: _Run) -> None:
        """Forget every array of a failed model on this dataset and describe the failure."""
        for i, (samples, views) in sorted(run.bad.items()):
            job = run.jobs[i]
            for v in job.views:
                self.store.drop_key(run.keys[(i, v)])
            n_bad, n = len(samples), len(run.dataset)
            shown = ", ".join(sorted(views))
            run.report.failed[job.model.name] = {
                "samples": n_bad,
                "of": n,
                "views": sorted(views),
                "reason": (
                    f"non-finite logits (NaN or inf) on {n_bad} of {n} samples of "
                    f"{run.dataset.name} (view {shown})"
                ),
            }

    def _prepare_models(self, jobs: Sequence[EngineJob]) -> list[ModelAdapter]:
        models = []
        for job in jobs:
            m = job.model.to(self.device).eval()
            if self.channels_last:
                m = m.to(memory_format=torch.channels_last)
            models.append(m)
        return models

    def _progress_bar(self, name: str, total: int) -> StageProgress | None:
        if not self.progress:
            return None
        return StageProgress(name, total=total, unit="images").__enter__()

    def _forward(self, model: ModelAdapter, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.amp
            else contextlib.nullcontext()
        )
        with torch.no_grad(), ctx:
            logits, feats = model.forward_with_features(x)
        return logits.float(), feats.float()

    def _run_shard(
        self, run: _Run, shard: int, needed: dict[int, list[str]], need_meta: bool
    ) -> None:
        """Run the ``needed`` views of every model on one shard and store what they give."""
        dataset, jobs, models, report, bar = run.dataset, run.jobs, run.models, run.report, run.bar
        start, stop = shard * self.shard_size, min((shard + 1) * self.shard_size, len(dataset))
        outs: dict[tuple[int, str], dict[str, list[np.ndarray]]] = {
            (i, v): {"logits": [], "features": [], "index": []}
            for i, views in needed.items()
            for v in views
        }
        meta: dict[str, list[np.ndarray]] = {"index": [], "labels": [], "sample_ids": []}
        skipped: list[tuple[str, str]] = []
        non_blocking = self.device.type == "cuda"
        for batch in self._batches(dataset, start, stop):
            skipped.extend(batch["skipped"])
            if batch["images"] is None:
                continue
            imgs = batch["images"]
            report.images_decoded += len(imgs)
            x = (
                imgs.to(self.device, non_blocking=non_blocking)
                .permute(0, 3, 1, 2)
                .float()
                .div_(255)
            )
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            ids = batch["sample_ids"]
            idx = batch["index"].numpy()
            meta["index"].append(idx)
            meta["labels"].append(batch["labels"].numpy())
            meta["sample_ids"].append(ids.numpy())
            for k, v in batch["extras"].items():
                meta.setdefault(k, []).append(v.numpy())
            # view-major order: a view that does not need the model is computed once per batch
            # and shared by every model that asked for it; one view is in memory at a time
            for v in dict.fromkeys(v for views in needed.values() for v in views):
                view = parse_view(v)
                users = [i for i, views in needed.items() if v in views]
                shared = None if view.needs_model else view(x, ViewContext(ids))
                for i in users:
                    job, model = jobs[i], models[i]
                    if shared is None:
                        targets = run.mappings[i].targets
                        labels_model = torch.tensor(
                            [targets[int(y)][0] for y in batch["labels"]], device=self.device
                        )
                        xv = view(x, ViewContext(ids, labels_model, model))
                    else:
                        xv = shared
                    if self.channels_last and xv.dim() == 4:
                        xv = xv.contiguous(memory_format=torch.channels_last)
                    logits, feats = self._forward(model, xv)
                    report.forward_passes += len(xv)
                    finite = torch.isfinite(logits).all(dim=1)
                    if not bool(finite.all()):
                        samples, views = run.bad.setdefault(i, (set(), set()))
                        samples.update(idx[~finite.cpu().numpy()].tolist())
                        views.add(v)
                    if i in run.bad:
                        continue  # nothing of a failed model is kept
                    o = outs[(i, v)]
                    o["logits"].append(logits.cpu().numpy())
                    o["index"].append(idx)
                    if v in job.feature_views:
                        o["features"].append(feats.cpu().numpy())
            if bar is not None:
                bar.advance(len(imgs))
        if skipped:
            self.store.put_skipped(run.meta_key.dataset_fp, skipped)
        for (i, v), o in outs.items():
            if i in run.bad:
                continue
            arrays = {k: np.concatenate(a) for k, a in o.items() if a}
            if not arrays:  # every image of the shard was skipped
                arrays = {
                    "index": np.zeros(0, np.int64),
                    "logits": np.zeros((0, jobs[i].model.n_classes), np.float32),
                }
            self.store.put_shard(run.keys[(i, v)], shard, run.n_shards, arrays)
        if need_meta:
            arrays = {k: np.concatenate(a) for k, a in meta.items() if a}
            if not arrays:
                arrays = {
                    "index": np.zeros(0, np.int64),
                    "labels": np.zeros(0, np.int64),
                    "sample_ids": np.zeros(0, np.int64),
                }
            if run.acceptable is not None:
                arrays["acceptable"] = run.acceptable[arrays["index"]]
            self.store.put_shard(run.meta_key, shard, run.n_shards, arrays)
