"""The engine: one pass over a dataset runs every requested view through every model.

For one dataset and a list of jobs (model + views), the engine walks the dataset shard by
shard. A shard whose arrays are all in the store is skipped without decoding; otherwise each
image of the shard is decoded once, every view of every model that still needs the shard is
applied to the decoded batch on tensors, and logits (and, where asked, penultimate features)
are written to the store shard by shard. It counts images decoded and forward passes run, so
that "a second identical run runs no forward pass" can be checked, not assumed.

Each model sees an image folder as its own evaluation pipeline would decode it: a model with
an ``eval_transform`` (timm's ``resolve_data_config``, a torchvision preset) gets the files
decoded at that transform (resize, crop, interpolation;
:meth:`~robustlens.data.imagefolder.FileListDataset.with_transform`), a model without one the
dataset's own decode. The jobs of one dataset are grouped by the pixels they need
(:func:`decode_groups`): one decode pass per distinct transform, shared by every model and
view of the group. Arrays are keyed by the model's fingerprint, which covers its transform,
so arrays decoded differently never mix. In-memory datasets (the synthetic world) are sliced
as they are, for every model.

Files are decoded by DataLoader worker processes (``num_workers``; by default 2 for a
file-backed dataset), which decode the next batches while the models run on the current one
(``prefetch_factor`` batches each, one loader for all the shards of a pass; pinned memory
on CUDA). On CUDA, JPEG files can be decoded on the device instead (``gpu_decode=True``,
:func:`torchvision.io.decode_jpeg`): the workers only read the bytes, and the resize and crop
run on the device; the pixels then differ from PIL's by a few levels, so it is off unless
asked for.

Where a model preprocesses and runs as :class:`ModelAdapter` does, the engine runs an
inference copy of its backbone in which each eval-mode ``BatchNorm2d`` that directly follows a
``Conv2d`` is folded into the conv (:class:`~robustlens.models.folding.BatchNormFolding`):
the same function up to float rounding, as another device or thread count gives, in one
pass over the activations instead of two (in ``bench/study_overhead.py`` on a 2-core CPU,
4 zoo models, 3 of them with BatchNorm: 11 % less time in forward passes). The folded
weights are recomputed from the model's own tensors on every run; the copy is traced again
when a module the trace read changed (an attribute, a parameter object, a submodule), and
checked against the backbone on the first images it sees; ``fold_batchnorm=False`` runs
every model's own forward.

A model whose outputs are not finite (NaN or infinite logits) on some sample of a dataset is
*failed* on that dataset: the engine keeps running it to count the samples, stores none of its
arrays for that dataset (so nothing wrong is cached, and a fixed model is simply computed
again), and reports it (:attr:`EngineReport.failed`); the other models are unaffected.

The engine never computes a metric; measures read what it stored.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
import warnings
import weakref
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from robustlens.console import StageProgress
from robustlens.data.base import ArrayDataset, ClassMapping, Dataset
from robustlens.data.derived import ModelClassesDataset
from robustlens.data.imagefolder import EvalTransform, FileListDataset
from robustlens.errors import ConfigError, ValidationError
from robustlens.models.base import ModelAdapter
from robustlens.models.folding import BatchNormFolding
from robustlens.store import META_VIEW, ArrayKey, ShardWriter, Store
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
    images_decoded: int = 0  # summed over decode passes: one pass per distinct transform
    decode_passes: int = 0  # passes over (part of) the files, one per distinct transform
    forward_passes: int = 0  # images x views actually run through a model
    shards_total: int = 0
    shards_computed: int = 0
    shards_cached: int = 0
    seconds: float = 0.0
    #: of ``seconds``, the time in the models' forward passes (a normalization shared by
    #: models that preprocess alike included; on a GPU, up to the check of the logits, which
    #: waits for the device): the rest is the engine's own cost, views and decoding included
    forward_seconds: float = 0.0
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
    writer: ShardWriter  # commits each finished shard while the next one computes
    #: per job, the :meth:`ModelAdapter.preprocess_key` under which its input may be shared
    #: with other models of a view, or ``None`` where it preprocesses on its own
    share_keys: dict[int, tuple | None]
    #: per job, the BatchNorm-folded copy of its model's backbone to run, or ``None``
    backbones: dict[int, torch.nn.Module | None]
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


@dataclass
class DecodeGroup:
    """The jobs of one run whose models see the same pixels, decoded once for all of them.

    Attributes:
        dataset: the dataset as the group's models see it (decoded at their transform).
        jobs: indices of the group's jobs in the run's job list.
    """

    dataset: Dataset
    jobs: list[int]


def decode_groups(dataset: Dataset, jobs: Sequence[EngineJob]) -> list[DecodeGroup]:
    """Group the jobs of one dataset by the pixels their models need.

    A dataset of image files (:class:`~robustlens.data.imagefolder.FileListDataset`, or one
    that relabels such a dataset and passes the two methods on) is decoded at each model's
    ``eval_transform`` (``with_transform``); models whose transforms give the same pixels
    (``decoding``: same resize, crop and interpolation, whatever their mean and std), and
    models without a transform where it equals the dataset's own decode, share one group.
    Any other dataset (in-memory arrays, corruptions made on the fly) is one group: every
    model sees it as it is.

    Returns:
        The groups in order of their first job; one group (with no jobs) for no jobs.
    """
    convert = getattr(dataset, "with_transform", None)
    decoding = getattr(dataset, "decoding", None)
    if convert is None or decoding is None:
        return [DecodeGroup(dataset, list(range(len(jobs))))]
    groups: dict[Hashable, DecodeGroup] = {}
    for i, job in enumerate(jobs):
        transform = getattr(job.model, "eval_transform", None)
        key = decoding(transform)
        if key not in groups:
            groups[key] = DecodeGroup(convert(transform), [])
        groups[key].jobs.append(i)
    return list(groups.values()) or [DecodeGroup(dataset, [])]


# ------------------------------------------------------------------------------------ loading
#: how a worker hands a JPEG to the device decoder: its bytes, undecoded
_RAW = "jpeg"


class _SafeItems(torch.utils.data.Dataset):
    """Dataset items for a DataLoader; a corrupt file becomes a recorded skip, not a crash.

    Items are indexed by dataset index (the loader's batch sampler names them). With
    ``files`` (the image files behind ``dataset``, see :func:`device_files`), a JPEG file
    that the device decoder takes (RGB or grey, within the pixel limit) is not decoded: its
    bytes are returned for :class:`_CudaDecoder`.
    """

    def __init__(self, dataset: Dataset, files: FileListDataset | None = None) -> None:
        self.dataset = dataset
        self.files = files
        if files is not None:  # labels and ids come from the index, not from a decoded sample
            self.labels = dataset.labels()
            self.ids = dataset.sample_ids()
            self.extras = dataset.extra_labels()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        if self.files is not None:
            data = _jpeg_bytes(self.files, idx)
            if data is not None:
                extras = {k: int(v[idx]) for k, v in self.extras.items()}
                return (_RAW, idx, data, int(self.labels[idx]), int(self.ids[idx]), extras)
        try:
            s = self.dataset.load(idx)
        except Exception as exc:
            item = getattr(exc, "item", None) or getattr(exc, "path", None)
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            return ("skip", idx, str(item or f"{self.dataset.name}[{idx}]"), reason)
        return ("ok", idx, s)


def _jpeg_bytes(files: FileListDataset, idx: int) -> torch.Tensor | None:
    """The bytes of sample ``idx`` when the device decoder can take it, else ``None``."""
    path = files.path(idx)
    try:
        with Image.open(path) as img:  # the header only: format, mode, size
            fmt, mode, (w, h) = img.format, img.mode, img.size
        limit = files.max_pixels if files.max_pixels is not None else Image.MAX_IMAGE_PIXELS
        if fmt != "JPEG" or mode not in ("RGB", "L") or (limit and w * h > limit):
            return None
        data = Path(path).read_bytes()
    except Exception:  # unreadable: the CPU decode names the reason
        return None
    # a file that does not end with the end-of-image marker may be truncated: PIL's strict
    # decode says so (the device decoder might fill in the missing rows)
    if not data.endswith(b"\xff\xd9"):
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _collate(items: list) -> dict:
    ok = [it for it in items if it[0] == "ok"]
    raw = [it for it in items if it[0] == _RAW]
    skipped = [(it[2], it[3]) for it in items if it[0] == "skip"]
    if not ok and not raw:
        return {"images": None, "skipped": skipped}
    # samples decoded by the worker first, in dataset order, then the JPEGs still to decode
    # (:func:`_device_decoded` puts every row back in dataset order)
    rows = [(it[1], it[2].label, it[2].sample_id, it[2].extras) for it in ok]
    rows += [(it[1], it[3], it[4], it[5]) for it in raw]
    keys = list(rows[0][3])
    return {
        "images": torch.from_numpy(np.stack([it[2].image for it in ok])) if ok else None,
        "jpegs": [it[2] for it in raw],
        "labels": torch.tensor([r[1] for r in rows], dtype=torch.int64),
        "sample_ids": torch.tensor([r[2] for r in rows], dtype=torch.int64),
        "index": torch.tensor([r[0] for r in rows], dtype=torch.int64),
        "extras": {k: torch.tensor([r[3][k] for r in rows]) for k in keys},
        "skipped": skipped,
    }


#: interpolations the device resize reproduces (with antialiasing, as PIL resamples)
_DEVICE_MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest-exact"}


@lru_cache(maxsize=8)
def cuda_jpeg_decoding(device: str) -> bool:
    """Whether :func:`torchvision.io.decode_jpeg` decodes on ``device`` (a CUDA device):
    tried once on a tiny JPEG."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return False
    import torchvision.io  # lazy: only the CUDA decode needs torchvision (a second to import)

    try:
        with _quiet():
            probe = torchvision.io.encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8))
            out = torchvision.io.decode_jpeg([probe], device=device)
        return tuple(out[0].shape) == (3, 8, 8)
    except Exception:
        return False


def device_files(dataset: Dataset) -> FileListDataset | None:
    """The image files whose decode is ``dataset``'s pixels (the dataset itself, or the base
    of a relabelled one), when a device decode can reproduce it: a ``crop: center`` decode
    without a border, with an interpolation the device has. ``None`` otherwise (other
    datasets, corruptions made on the fly, protocol crops)."""
    files = dataset.base if isinstance(dataset, ModelClassesDataset) else dataset
    if not isinstance(files, FileListDataset) or files.crop != "center" or files.border:
        return None
    return files if device_transform(files).interpolation in _DEVICE_MODES else None


def device_transform(files: FileListDataset) -> EvalTransform:
    """The transform a file list decodes at (its model's, or its own ``crop: center``)."""
    return files.transform or EvalTransform.imagenet(files.size, files.interpolation)


class _CudaDecoder:
    """JPEG bytes -> the transform's uint8 (B, size, size, 3) batch, on a CUDA device."""

    def __init__(self, transform: EvalTransform, device: torch.device) -> None:
        self.t = transform
        self.device = device

    def resize_and_crop(self, img: torch.Tensor) -> torch.Tensor:
        """One decoded (3, H, W) uint8 image as the transform's (size, size, 3) input."""
        t = self.t
        h, w = img.shape[-2:]
        nw, nh = t.resized_shape(w, h)
        if (nw, nh) != (w, h):
            mode = _DEVICE_MODES[t.interpolation]
            x = img[None].float()
            x = F.interpolate(
                x,
                size=(nh, nw),
                mode=mode,
                **({} if mode == "nearest-exact" else {"align_corners": False, "antialias": True}),
            )
            img = x[0].round_().clamp_(0, 255).to(torch.uint8)
        s = t.size
        if s > nh or s > nw:  # CenterCrop / CenterCropOrPad padding
            fill = torch.tensor(t.fill() or (0, 0, 0), dtype=torch.uint8, device=img.device)
            padded = fill.view(3, 1, 1).expand(3, max(nh, s), max(nw, s)).clone()
            top, left = max(s - nh, 0) // 2, max(s - nw, 0) // 2
            padded[:, top : top + nh, left : left + nw] = img
            img, (nh, nw) = padded, padded.shape[-2:]
        top, left = round((nh - s) / 2.0), round((nw - s) / 2.0)
        return img[:, top : top + s, left : left + s].permute(1, 2, 0)

    def __call__(self, jpegs: list[torch.Tensor]) -> torch.Tensor:
        import torchvision.io  # lazy: see cuda_jpeg_decoding

        with _quiet():
            images = torchvision.io.decode_jpeg(
                jpegs, mode=torchvision.io.ImageReadMode.RGB, device=self.device
            )
        return torch.stack([self.resize_and_crop(img) for img in images])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torchvision >= 0.29 warns on every decode that torchcodec will take its place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _device_decoded(
    batch: dict, decoder: _CudaDecoder, device: torch.device, dataset: Dataset
) -> dict:
    """A collated batch with its JPEGs decoded on the device, rows back in dataset order.

    A file the device decoder refuses fails the batch's call; the batch is then decoded file
    by file, and a file refused alone is decoded on the CPU (a skip, with PIL's reason, when
    that fails too).
    """
    cpu = batch["images"]
    n_cpu = 0 if cpu is None else len(cpu)
    jpegs, index = batch["jpegs"], batch["index"]
    skipped = list(batch["skipped"])
    try:
        decoded: list[torch.Tensor | None] = list(decoder(jpegs))
    except Exception:
        decoded = []
        for data, idx in zip(jpegs, index[n_cpu:].tolist(), strict=True):
            try:
                decoded.append(decoder([data])[0])
                continue
            except Exception:
                item = _SafeItems(dataset)[idx]
            if item[0] == "ok":
                decoded.append(torch.from_numpy(item[2].image).to(device))
            else:
                decoded.append(None)
                skipped.append((item[2], item[3]))
    rows = [*range(n_cpu), *(n_cpu + k for k, d in enumerate(decoded) if d is not None)]
    images = [*(cpu.to(device) if cpu is not None else []), *(d for d in decoded if d is not None)]
    if not images:
        return {"images": None, "skipped": skipped}
    keep = torch.tensor(rows, dtype=torch.int64)
    order = keep[torch.argsort(index[keep])]
    out = dict(batch, jpegs=[], skipped=skipped)
    out["images"] = torch.stack(images)[torch.argsort(index[keep]).to(device)]
    for k in ("labels", "sample_ids", "index"):
        out[k] = batch[k][order]
    out["extras"] = {k: v[order] for k, v in batch["extras"].items()}
    return out


def _preprocesses_as_adapter(model: ModelAdapter) -> bool:
    """Whether ``model`` preprocesses and runs as :class:`ModelAdapter` does (a subclass may
    not), so that its input may be shared with another adapter of the same preprocess key."""
    kind = type(model)
    return isinstance(model, ModelAdapter) and all(
        getattr(kind, name) is getattr(ModelAdapter, name)
        for name in ("preprocess", "preprocess_key", "forward_with_features")
    )


def _runs_as_adapter(model: ModelAdapter) -> bool:
    """Whether ``model`` computes its outputs as :class:`ModelAdapter` does, from its
    ``backbone`` and ``head``, so that another module may run in place of the backbone."""
    return _preprocesses_as_adapter(model) and (
        type(model).forward_preprocessed is ModelAdapter.forward_preprocessed
    )


@dataclass
class _Folded:
    """A backbone's BatchNorm folding, and whether its outputs were checked against the
    backbone's own."""

    folding: BatchNormFolding
    verified: bool = False


#: the folded copy may differ from the backbone by float rounding (TF32 convolutions on CUDA
#: among them); a copy that computes something else differs by the size of the features
FOLDING_TOLERANCE = 1e-2
#: images of the first batch a folded copy runs that the backbone sees too
FOLDING_CHECK_IMAGES = 4


def _same_features(own: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Whether ``theirs`` is ``own`` up to :data:`FOLDING_TOLERANCE` of its largest finite
    value, non-finite in the same places (a model with NaN features has a folded copy with
    NaN features: that is the model's failure, which the engine reports, not the copy's)."""
    if own.shape != theirs.shape:
        return False
    finite = torch.isfinite(own)
    if not torch.equal(finite, torch.isfinite(theirs)):
        return False
    own, theirs = own[finite], theirs[finite]
    scale = float(own.abs().max()) if own.numel() else 0.0
    return bool(((own - theirs).abs() <= FOLDING_TOLERANCE * scale).all())


def _prepared(model: torch.nn.Module, device: torch.device, channels_last: bool) -> bool:
    """Whether ``model`` is in eval mode with every tensor on ``device`` (and every 4-D one
    channels-last when asked): what :meth:`Engine._prepare_models` would make of it."""
    index = device.index
    if index is None and device.type == "cuda":
        index = torch.cuda.current_device()  # where ``.to("cuda")`` would put it
    layout = torch.channels_last
    # one walk over the modules, reading each one's own tensors: ``parameters()`` and
    # ``buffers()`` would walk the tree twice more (this runs for every model and dataset)
    for mod in model.modules():
        if mod.training:
            return False
        for t in itertools.chain(mod._parameters.values(), mod._buffers.values()):
            if t is None:  # a registered but unset parameter or buffer (``bias=False``)
                continue
            if t.device.type != device.type or (index is not None and t.device.index != index):
                return False
            if channels_last and t.dim() == 4 and not t.is_contiguous(memory_format=layout):
                return False
    return True


class Engine:
    """Runs views through models and writes logits and features to the store.

    Args:
        store: where arrays go.
        batch_size: images per forward pass.
        shard_size: images per stored shard (the unit of caching and resuming).
        num_workers: DataLoader worker processes that decode a file-backed dataset while the
            models run (``None``: 2, or 1 on a single core); 0 decodes in the main process,
            between forward passes. In-memory datasets are sliced directly.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        amp: autocast in bfloat16 on CUDA (default on CUDA, off on CPU).
        channels_last: feed models channels-last tensors (default on). On CPU this alone makes
            the zoo CNNs and EfficientNet-Lite about 1.5-2x faster than NCHW-contiguous input,
            because oneDNN's convolutions work in NHWC; views such as rotations and filters
            otherwise hand the model whichever layout their last operation produced.
        progress: show a progress bar.
        prefetch_factor: batches each worker decodes ahead.
        gpu_decode: on a CUDA device, decode JPEG files on the device
            (:func:`torchvision.io.decode_jpeg`) and resize them there; files it cannot take
            (other formats, CMYK, a protocol crop) are decoded by the workers as usual. Off by
            default: the device's pixels differ from PIL's by a few levels.
        background_writes: commit finished shards on a background thread while the next
            batches compute (:class:`~robustlens.store.ShardWriter`). ``None`` (default): on
            an accelerator, not on the CPU, where the models use every core and a writing
            thread beside them slowed them by more than the writes cost.
        fold_batchnorm: run each model's backbone with its conv-BatchNorm pairs folded
            into single convs (default on; see the module docstring). Off: every model's own
            forward, bit for bit. Like the device and AMP, it is not part of an array's key:
            arrays already in the store are served as they are.
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
        prefetch_factor: int = 2,
        gpu_decode: bool = False,
        background_writes: bool | None = None,
        fold_batchnorm: bool = True,
    ) -> None:
        if batch_size < 1 or shard_size < 1:
            raise ValueError(
                f"batch_size and shard_size must be >= 1, got {batch_size}, {shard_size}"
            )
        self.store = store
        self.batch_size = batch_size
        self.shard_size = shard_size
        self.num_workers = min(2, os.cpu_count() or 1) if num_workers is None else num_workers
        self.prefetch_factor = prefetch_factor
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        self.amp = cuda if amp is None else amp
        self.channels_last = True if channels_last is None else channels_last
        self.gpu_decode = gpu_decode and cuda and cuda_jpeg_decoding(str(self.device))
        self.background_writes = (
            self.device.type != "cpu" if background_writes is None else background_writes
        )
        self.progress = progress
        self.fold_batchnorm = fold_batchnorm
        # per backbone module: its folding (None: nothing to fold, untraceable, or failed its
        # check); weak, so that a model the caller dropped is not kept alive
        self._foldings: weakref.WeakKeyDictionary[torch.nn.Module, _Folded | None] = (
            weakref.WeakKeyDictionary()
        )
        #: shards finished (computed or found in the store) by every run of this engine so far
        self.shards_done = 0
        self._writer: ShardWriter | None = None
        self._queued_datasets: set[str] = set()  # fingerprints with shards still queued
        self._deferring = 0  # depth of :meth:`deferred_writes` blocks

    # ---------------------------------------------------------------- writing
    def flush(self) -> None:
        """Wait until every shard this engine computed is committed to the store; raise the
        first error writing one of them (``StoreError``: disk full, read-only, ...)."""
        writer, self._writer = self._writer, None
        self._queued_datasets.clear()
        if writer is not None:
            writer.close()

    def _abandon_writes(self) -> None:
        """On an error or Ctrl-C: let the shards already queued be written (they are finished
        work), raising nothing, so that the first error is the one the caller hears of."""
        writer, self._writer = self._writer, None
        self._queued_datasets.clear()
        if writer is not None:
            writer.settle()
            with contextlib.suppress(BaseException):
                writer.close()

    @contextlib.contextmanager
    def deferred_writes(self) -> Iterator[None]:
        """Within this block, :meth:`run` may return while its last shards are still being
        written: with the models on an accelerator they are committed on a background thread
        while the next dataset computes; on the CPU the shards finished within a second are
        committed together (:class:`~robustlens.store.ShardWriter`), across datasets. Leaving
        the block waits for all of them (and raises the first error). A study runs hundreds
        of small datasets; each would otherwise wait for its own last writes.

        A dataset run again within the block first waits for its own queued shards, so
        nothing is computed twice; an image-folder dataset decoded by worker processes
        waits for all of them before the workers start (no thread is mid-write at a fork).
        """
        self._deferring += 1
        try:
            yield
        except BaseException:
            self._deferring -= 1
            self._abandon_writes()
            raise
        self._deferring -= 1
        if not self._deferring:
            self.flush()

    # ---------------------------------------------------------------- batching
    def _ranges(self, shards: Sequence[int], n: int) -> list[tuple[int, int]]:
        return [(s * self.shard_size, min((s + 1) * self.shard_size, n)) for s in shards]

    def _batches(self, dataset: Dataset, ranges: Sequence[tuple[int, int]]) -> Iterator[dict]:
        """The batches of every ``[start, stop)`` range in order; no batch spans two ranges.

        A file-backed dataset is read by one DataLoader for all the ranges, so its workers
        start once and keep decoding ahead across shard boundaries.
        """
        bs = self.batch_size
        if isinstance(dataset, ArrayDataset):
            labels, ids, extras = dataset.labels(), dataset.sample_ids(), dataset.extra_labels()
            for start, stop in ranges:
                for b in range(start, stop, bs):
                    e = min(b + bs, stop)
                    yield {
                        "images": torch.from_numpy(np.array(dataset.images[b:e], copy=True)),
                        "labels": torch.from_numpy(np.array(labels[b:e])),
                        "sample_ids": torch.from_numpy(np.array(ids[b:e])),
                        "index": torch.arange(b, e, dtype=torch.int64),
                        "extras": {
                            k: torch.from_numpy(np.array(v[b:e])) for k, v in extras.items()
                        },
                        "skipped": [],
                    }
            return
        files = device_files(dataset) if self.gpu_decode else None
        batches = [
            list(range(b, min(b + bs, stop)))
            for start, stop in ranges
            for b in range(start, stop, bs)
        ]
        workers = self.num_workers
        if workers and self._writer is not None:
            self._writer.flush()  # forked workers must not inherit a thread mid-write
        loader = torch.utils.data.DataLoader(
            _SafeItems(dataset, files),
            batch_sampler=batches,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=self.prefetch_factor if workers else None,
            persistent_workers=False,
        )
        decoder = None if files is None else _CudaDecoder(device_transform(files), self.device)
        for batch in loader:
            if decoder is not None and batch.get("jpegs"):
                batch = _device_decoded(batch, decoder, self.device, dataset)
            yield batch

    def _shard_batches(
        self, dataset: Dataset, shards: Sequence[int]
    ) -> Iterator[tuple[int, Iterator[dict]]]:
        """``(shard, its batches)`` for every shard in order, from one stream of batches; each
        shard's batches must be consumed before the next shard's."""
        n, bs = len(dataset), self.batch_size
        ranges = self._ranges(shards, n)
        stream = self._batches(dataset, ranges)
        for s, (start, stop) in zip(shards, ranges, strict=True):
            yield s, itertools.islice(stream, math.ceil((stop - start) / bs))

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
        # the model's fingerprint covers its eval_transform: arrays decoded at different
        # transforms never share a key, and the dataset part stays the dataset's own
        keys = {
            (i, v): ArrayKey(job.model.fingerprint(), dfp, v)
            for i, job in enumerate(jobs)
            for v in job.views
        }
        if dfp in self._queued_datasets:  # this dataset's last shards may still be queued
            self.flush()
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
            if not self._deferring:
                self.flush()
            report.seconds = time.perf_counter() - t0
            report.skipped = self.store.skipped(dfp)
            return report

        passes = self._plan(decode_groups(dataset, jobs), jobs, todo_shards, done, keys, meta_key)
        models = self._prepare_models(jobs)
        # in dataset order; each meta shard keeps the rows of the samples it holds
        acceptable = (
            dataset.acceptable_labels()
            if any(s not in done[meta_key] for s in todo_shards)
            else None
        )
        bar = self._progress_bar(
            dataset.name,
            sum(min(self.shard_size, n - s * self.shard_size) for _, work in passes for s in work),
        )
        if self._writer is None:
            self._writer = ShardWriter(self.store, background=self.background_writes)
        run = _Run(
            dataset,
            jobs,
            models,
            mappings,
            keys,
            meta_key,
            n_shards,
            report,
            bar,
            acceptable,
            self._writer,
            {
                i: m.preprocess_key() if _preprocesses_as_adapter(m) else None
                for i, m in enumerate(models)
            },
            {i: self._folded_backbone(m) for i, m in enumerate(models)},
        )
        last = {s: p for p, (_, work) in enumerate(passes) for s in work}  # its last pass
        self._queued_datasets.add(dfp)
        try:
            for p, (group, work) in enumerate(passes):
                report.decode_passes += 1
                for s, batches in self._shard_batches(group.dataset, list(work)):
                    needed, need_meta = work[s]
                    self._run_shard(run, s, needed, need_meta, batches)
                    if last[s] == p:
                        report.shards_computed += 1
                        self.shards_done += 1
            if run.bad or not self._deferring:
                self.flush()  # a failed model's arrays are dropped after they are all written
        except BaseException:
            self._abandon_writes()
            raise
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
        self._drop_failed(run)
        report.skipped = self.store.skipped(dfp)
        report.seconds = time.perf_counter() - t0
        return report

    @staticmethod
    def _plan(
        groups: list[DecodeGroup],
        jobs: Sequence[EngineJob],
        todo_shards: Sequence[int],
        done: dict[ArrayKey, set[int]],
        keys: dict[tuple[int, str], ArrayKey],
        meta_key: ArrayKey,
    ) -> list[tuple[DecodeGroup, dict[int, tuple[dict[int, list[str]], bool]]]]:
        """The decode passes of a run: per group, ``{shard: (views needed per job, whether
        the pass writes the shard's meta)}`` for the shards it must decode.

        A shard's meta (labels, ids) is written by the first pass that decodes the shard
        anyway, or by the first pass alone when no model needs the shard.
        """
        needed = [
            {
                s: {
                    i: vs
                    for i in g.jobs
                    if (vs := [v for v in jobs[i].views if s not in done[keys[(i, v)]]])
                }
                for s in todo_shards
            }
            for g in groups
        ]
        meta_by = {}
        for s in todo_shards:
            if s not in done[meta_key]:
                meta_by[s] = next((k for k, ns in enumerate(needed) if ns[s]), 0)
        passes = []
        for k, g in enumerate(groups):
            work = {
                s: (needed[k][s], meta_by.get(s) == k)
                for s in todo_shards
                if needed[k][s] or meta_by.get(s) == k
            }
            if work:
                passes.append((g, work))
        return passes

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
            m = job.model
            # moving a module walks and re-creates every tensor (about 1 ms for a small model,
            # once per model and dataset); a model already as needed is used as it is
            if not _prepared(m, self.device, self.channels_last):
                m = m.to(self.device).eval()
                if self.channels_last:
                    m = m.to(memory_format=torch.channels_last)
            models.append(m)
        return models

    def _folded_backbone(self, model: ModelAdapter) -> torch.nn.Module | None:
        """The BatchNorm-folded copy of ``model``'s backbone to run this time, its weights
        recomputed from the model's current ones; ``None``: run the model as it is."""
        if not self.fold_batchnorm or not _runs_as_adapter(model):
            return None
        backbone = model.backbone
        folded = self._foldings.get(backbone, ...)
        if folded is ... or (folded is not None and not folded.folding.matches(backbone)):
            folding = BatchNormFolding.of(backbone)
            folded = self._foldings[backbone] = None if folding is None else _Folded(folding)
        return None if folded is None else folded.folding.refresh()

    def _checked(
        self, model: ModelAdapter, folded: torch.nn.Module | None, inputs: torch.Tensor
    ) -> torch.nn.Module | None:
        """``folded`` if it gives ``model``'s backbone features on the first images of
        ``inputs`` (checked on the first batch it sees), else ``None``: a copy that does
        not is dropped, with a warning."""
        state = None if folded is None else self._foldings.get(model.backbone)
        if state is None:
            return None
        if state.verified:
            return folded
        # in float32 whatever the engine's autocast: a check of the trace, not of bfloat16;
        # each side gets its own copy, as a backbone may write into its input
        sample = inputs[:FOLDING_CHECK_IMAGES].float()
        with (
            torch.autocast(self.device.type, enabled=False)
            if self.amp
            else contextlib.nullcontext()
        ):
            own = model.backbone(sample.clone()).float()
            theirs = folded(sample.clone()).float()
        if _same_features(own, theirs):
            state.verified = True
            return folded
        self._foldings[model.backbone] = None
        warnings.warn(
            f"model {model.name!r}: its backbone with BatchNorm folded into the convolutions "
            "does not give the backbone's own features (the trace missed part of what its "
            "forward does); it runs unfolded",
            RuntimeWarning,
            stacklevel=2,
        )
        return None

    def _progress_bar(self, name: str, total: int) -> StageProgress | None:
        if not self.progress:
            return None
        return StageProgress(name, total=total, unit="images").__enter__()

    def _forward(
        self,
        model: ModelAdapter,
        x: torch.Tensor,
        prepared: dict | None = None,
        key: tuple | None = None,
        backbone: torch.nn.Module | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and features of ``x``. ``prepared``: what the models of one view made of
        ``x`` so far, by :meth:`ModelAdapter.preprocess_key` (``key``, that of ``model``, or
        ``None`` where it preprocesses on its own); a model that preprocesses as an earlier one
        did starts from its tensor (the same operations on the same pixels: the same tensor),
        instead of normalizing the batch once more. ``backbone``: the folded copy of the
        model's backbone to run in its place (see :meth:`_folded_backbone`)."""
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if self.amp
            else contextlib.nullcontext()
        )
        with torch.no_grad(), ctx:
            if prepared is None or key is None:
                if backbone is None:
                    logits, feats = model.forward_with_features(x)
                else:
                    inputs = model.preprocess(x)
                    backbone = self._checked(model, backbone, inputs)
                    logits, feats = model.forward_preprocessed(inputs, backbone)
            else:
                inputs = prepared.get(key)
                if inputs is None:
                    inputs = prepared[key] = model.preprocess(x)
                backbone = self._checked(model, backbone, inputs)
                version = inputs._version
                logits, feats = model.forward_preprocessed(inputs, backbone)
                if inputs._version != version:
                    # the model wrote into its input: the next one must not start from that
                    del prepared[key]
        return logits.float(), feats.float()

    def _run_shard(
        self,
        run: _Run,
        shard: int,
        needed: dict[int, list[str]],
        need_meta: bool,
        batches: Iterator[dict],
    ) -> None:
        """Run the ``needed`` views of every model on one shard's decoded ``batches`` and
        store what they give (and the shard's meta when ``need_meta``)."""
        jobs, models, report, bar = run.jobs, run.models, run.report, run.bar
        outs: dict[tuple[int, str], dict[str, list[np.ndarray]]] = {
            (i, v): {"logits": [], "features": [], "index": []}
            for i, views in needed.items()
            for v in views
        }
        meta: dict[str, list[np.ndarray]] = {"index": [], "labels": [], "sample_ids": []}
        skipped: list[tuple[str, str]] = []
        non_blocking = self.device.type == "cuda"
        for batch in batches:
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
            # a batch may take minutes (every model under every view): the bar moves after
            # each forward pass by its share of the batch, so that a log hears from it
            passes = sum(len(views) for views in needed.values())
            start, done = (bar.done if bar is not None else 0.0), 0
            # view-major order: a view that does not need the model is computed once per batch
            # and shared by every model that asked for it; one view is in memory at a time
            memo: dict = {}  # what views of this batch compute alike (see ViewContext.shared)
            for v in dict.fromkeys(v for views in needed.values() for v in views):
                view = parse_view(v)
                users = [i for i, views in needed.items() if v in views]
                shared = None if view.needs_model else view(x, ViewContext(ids, memo=memo))
                if shared is not None and self.channels_last and shared.dim() == 4:
                    # once per batch, not once per model that shares the view
                    shared = shared.contiguous(memory_format=torch.channels_last)
                prepared: dict | None = None if shared is None else {}
                for i in users:
                    job, model = jobs[i], models[i]
                    if shared is None:
                        targets = run.mappings[i].targets
                        if bool((batch["labels"] < 0).any()):
                            # an unlabelled image has no class to attack or to target: -1
                            # would silently index the last class
                            raise ValidationError(
                                f"view {v!r} needs each image's label, but dataset "
                                f"{run.dataset.name!r} has unlabelled images; request it only "
                                "on labelled datasets"
                            )
                        labels_model = torch.tensor(
                            [targets[int(y)][0] for y in batch["labels"]], device=self.device
                        )
                        ctx = ViewContext(
                            ids, labels_model, model, batch["index"], len(run.dataset), memo
                        )
                        xv = view(x, ctx)
                        if self.channels_last and xv.dim() == 4:
                            xv = xv.contiguous(memory_format=torch.channels_last)
                    else:
                        xv = shared
                    t_forward = time.perf_counter()
                    logits, feats = self._forward(
                        model, xv, prepared, run.share_keys[i], run.backbones[i]
                    )
                    # one reduction for the common case: a NaN or an infinity anywhere makes
                    # the sum non-finite (so may an overflow of finite logits: checked below)
                    finite_sum = math.isfinite(float(logits.sum()))  # waits for the device
                    report.forward_seconds += time.perf_counter() - t_forward
                    report.forward_passes += len(xv)
                    done += 1
                    if bar is not None and done < passes:
                        bar.update(start + len(imgs) * done / passes)
                    if not finite_sum:
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
                bar.update(start + len(imgs))
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
            run.writer.put(run.keys[(i, v)], shard, run.n_shards, arrays)
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
            run.writer.put(run.meta_key, shard, run.n_shards, arrays)
