"""The synthetic zoo: small models trained on the synthetic world, with real spread.

Members vary architecture (plain CNN, ResNet-style, MLP-Mixer), width, augmentation
(``none``, ``standard``, ``strong`` corruption-style, ``texrand`` texture randomization, which
should raise shape bias), epochs, and the rate of the spurious mark in training. Optionally
they train on real + generated images (``generated`` names an ImageFolder of generated images,
mixed at ``generated_ratio`` generated per real image).

Checkpoints are safetensors files with a JSON config beside them (``{name}.safetensors``,
``{name}.json``); nothing is pickled.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from robustlens.data.imagefolder import ImageFolderDataset
from robustlens.data.synthetic import SyntheticWorld, TextureBank, WorldConfig, apply_marks
from robustlens.errors import CheckpointError
from robustlens.models.base import ModelAdapter
from robustlens.models.checkpoints import load_into, load_state_dict
from robustlens.models.zoo_archs import ARCHITECTURES, build_architecture
from robustlens.store import Store
from robustlens.transforms.corruptions import corrupt
from robustlens.views.registry import gray_pixels

AUGMENTATIONS = ("none", "standard", "strong", "texrand")
# corruptions seen in "strong" training; the rest stay held out for evaluation
TRAIN_CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast")
ZOO_MEAN = (0.5, 0.5, 0.5)
ZOO_STD = (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class ZooMember:
    """The recipe of one zoo model (also its JSON config)."""

    name: str
    arch: str = "cnn"
    width: int = 32
    augment: str = "standard"
    epochs: int = 8
    mark_rate: float | None = None  # None -> the world's rate
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    generated: str | None = None  # ImageFolder of generated training images
    generated_ratio: float = 1.0
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"zoo member {self.name!r}: unknown augment {self.augment!r}; "
                f"available: {', '.join(AUGMENTATIONS)}"
            )


def default_zoo(epochs_scale: float = 1.0) -> list[ZooMember]:
    """The demo zoo: 18 members spanning accuracy, robustness, shape bias and mark reliance."""

    def e(n: int) -> int:
        return max(1, round(n * epochs_scale))

    return [
        ZooMember("cnn8-none-e2", "cnn", 8, "none", e(2)),
        ZooMember("cnn16-none", "cnn", 16, "none", e(6)),
        ZooMember("cnn32-standard", "cnn", 32, "standard", e(8)),
        ZooMember("cnn48-standard", "cnn", 48, "standard", e(8)),
        ZooMember("cnn32-strong", "cnn", 32, "strong", e(8)),
        ZooMember("cnn32-texrand", "cnn", 32, "texrand", e(8)),
        ZooMember("cnn32-standard-mark0", "cnn", 32, "standard", e(8), mark_rate=0.0),
        ZooMember("cnn32-standard-mark1", "cnn", 32, "standard", e(8), mark_rate=1.0),
        ZooMember("resnet16-none", "resnet", 16, "none", e(6)),
        ZooMember("resnet16-standard", "resnet", 16, "standard", e(8)),
        ZooMember("resnet16-strong", "resnet", 16, "strong", e(8)),
        ZooMember("resnet16-texrand", "resnet", 16, "texrand", e(8)),
        ZooMember("resnet16-standard-mark0.4", "resnet", 16, "standard", e(8), mark_rate=0.4),
        ZooMember("mixer64-standard", "mixer", 64, "standard", e(10)),
        ZooMember("mixer64-texrand", "mixer", 64, "texrand", e(10)),
        ZooMember("mixer64-strong", "mixer", 64, "strong", e(10)),
        ZooMember("mixer32-none-e3", "mixer", 32, "none", e(3)),
        ZooMember("cnn24-standard-mark0.95", "cnn", 24, "standard", e(6), mark_rate=0.95),
    ]


# --------------------------------------------------------------------------- augmentation
def _standard(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 2-px reflect-padded crop, horizontal flip and random grayscale (p = 0.2).

    Random grayscale (as in SimCLR-style pipelines) keeps colour from being the only cue, so
    grayscale invariance and low-contrast grayscale band-noise accuracy vary across the zoo
    instead of collapsing to chance for every model.
    """
    n, _, h, w = x.shape
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    ox = torch.randint(0, 5, (n,), generator=gen)
    oy = torch.randint(0, 5, (n,), generator=gen)
    out = torch.stack([pad[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    gray = torch.rand(n, generator=gen) < 0.2
    if gray.any():
        out[gray] = gray_pixels(out[gray])
    return out


def _strong(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = _standard(x, gen)
    n = len(x)
    apply = torch.rand(n, generator=gen) < 0.6
    if apply.any():
        name = TRAIN_CORRUPTIONS[int(torch.randint(0, len(TRAIN_CORRUPTIONS), (1,), generator=gen))]
        sev = int(torch.randint(1, 4, (1,), generator=gen))
        seeds = torch.randint(0, 2**62, (int(apply.sum()),), generator=gen)
        x[apply] = corrupt(x[apply], name, sev, seeds)
    return x


class TrainingData:
    """World training arrays (and optional generated images) with augmentation per batch."""

    def __init__(self, world: Any, member: ZooMember) -> None:
        self.codes = world.codes
        arrays = world.training_arrays(member.mark_rate)
        self.unmarked = arrays["images_unmarked"]
        self.masks = arrays["masks"]
        self.labels = arrays["labels"]
        self.present = arrays["mark_present"]
        self.images = arrays["images"]
        self.member = member
        self.bank = (
            TextureBank(world.config.image_size, seed=member.seed)
            if member.augment == "texrand"
            else None
        )
        self.gen_images: np.ndarray | None = None
        self.gen_labels: np.ndarray | None = None
        if member.generated:
            self._load_generated(member.generated, world.classes, world.config.image_size)

    def _load_generated(self, root: str, classes: list[str], size: int) -> None:
        ds = ImageFolderDataset(root, size=size, crop="none")
        mapping = ds.class_mapping(classes)
        imgs, labels = [], []
        for i in range(len(ds)):
            s = ds.load(i)
            imgs.append(s.image)
            labels.append(mapping.targets[s.label][0])
        n_gen = round(len(self.labels) * self.member.generated_ratio)
        if not imgs:
            raise ValueError(f"generated image folder {root} holds no images")
        rng = np.random.default_rng(self.member.seed)
        if n_gen <= len(imgs):
            pick = rng.choice(len(imgs), size=n_gen, replace=False)
        else:  # every generated image once, the rest of the ratio drawn with replacement
            extra = rng.choice(len(imgs), size=n_gen - len(imgs), replace=True)
            pick = np.concatenate([np.arange(len(imgs)), extra])
        self.gen_images = np.stack(imgs)[pick]
        self.gen_labels = np.asarray(labels, dtype=np.int64)[pick]

    def __len__(self) -> int:
        return len(self.labels) + (0 if self.gen_labels is None else len(self.gen_labels))

    def batch(self, idx: np.ndarray, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n_real = len(self.labels)
        real = idx[idx < n_real]
        fake = idx[idx >= n_real] - n_real
        if self.bank is not None and len(real):
            # texture randomization: refill the object with a random texture, then re-stamp marks
            base = self.unmarked[real].astype(np.float32)
            m = self.masks[real].astype(np.float32)[..., None] / 255.0
            pick = torch.randint(0, len(self.bank.textures), (len(real),), generator=gen).numpy()
            swap = (torch.rand(len(real), generator=gen) < 0.8).numpy()[:, None, None, None]
            tex = self.bank.textures[pick].astype(np.float32)
            mixed = np.where(swap, base * (1 - m) + tex * m, base)
            imgs = apply_marks(
                np.clip(np.round(mixed), 0, 255).astype(np.uint8),
                self.labels[real],
                self.present[real],
                self.codes,
            )
        else:
            imgs = self.images[real]
        labels = self.labels[real]
        if len(fake):
            assert self.gen_images is not None and self.gen_labels is not None
            imgs = np.concatenate([imgs, self.gen_images[fake]])
            labels = np.concatenate([labels, self.gen_labels[fake]])
        x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() / 255.0
        aug = self.member.augment
        if aug in ("standard", "texrand"):
            x = _standard(x, gen)
        elif aug == "strong":
            x = _strong(x, gen)
        return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))


# --------------------------------------------------------------------------- training
def build_adapter(member: ZooMember, classes: Sequence[str], image_size: int = 32) -> ModelAdapter:
    torch.manual_seed(member.seed)
    backbone, head = build_architecture(member.arch, member.width, len(classes), image_size)
    config = {"arch": member.arch, "source": "zoo", "member": asdict(member)}
    return ModelAdapter(member.name, backbone, head, classes, ZOO_MEAN, ZOO_STD, image_size, config)


def train_member(
    world: Any,
    member: ZooMember,
    out_dir: str | Path,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Train one zoo member on the world and save ``{name}.safetensors`` + ``{name}.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_adapter(member, world.classes, world.config.image_size)
    data = TrainingData(world, member)
    gen = torch.Generator().manual_seed(member.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=member.lr, weight_decay=5e-4)
    steps_per_epoch = int(np.ceil(len(data) / member.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=member.lr, total_steps=member.epochs * steps_per_epoch, pct_start=0.25
    )
    t0 = time.perf_counter()
    # channels-last: oneDNN trains the CNNs about 30% faster on CPU than NCHW (weights are
    # saved contiguous, so the checkpoint does not depend on it)
    model = model.to(memory_format=torch.channels_last)
    model.train()
    for epoch in range(member.epochs):
        perm = torch.randperm(len(data), generator=gen).numpy()
        for s in range(steps_per_epoch):
            idx = perm[s * member.batch_size : (s + 1) * member.batch_size]
            x, y = data.batch(idx, gen)
            x = x.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if progress is not None:
            progress((epoch + 1) / member.epochs)
    model.eval()
    path = out_dir / f"{member.name}.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    meta = {
        "member": asdict(member),
        "classes": list(world.classes),
        "image_size": world.config.image_size,
        "world": world.fingerprint(),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "n_train": len(data),
    }
    (out_dir / f"{member.name}.json").write_text(json.dumps(meta, indent=2))
    tmp.replace(path)  # the checkpoint appears last: its presence means the member is done
    return path


def load_zoo_model(path: str | Path) -> ModelAdapter:
    """Load a zoo checkpoint (``.safetensors`` with its ``.json`` config beside it)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    cfg_path = path.with_suffix(".json")
    if not path.exists() or not cfg_path.exists():
        raise CheckpointError(
            f"zoo checkpoint {path} or its config {cfg_path.name} is missing; "
            "train the zoo with `robustlens zoo train`"
        )
    member, classes, image_size = _read_zoo_config(cfg_path)
    try:
        model = build_adapter(member, classes, image_size)
    except ValueError as exc:  # an architecture this robustlens does not have
        raise CheckpointError(f"zoo config {cfg_path}: {exc}") from None
    try:
        state = load_state_dict(path)
    except CheckpointError as exc:
        cause = exc.__cause__
        why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        raise CheckpointError(
            f"zoo checkpoint {path} is damaged ({why}); retrain it with `robustlens zoo train "
            "--force` (or delete it and run `robustlens zoo train`)"
        ) from None
    source = f"{path.name} (zoo architecture {member.arch!r})"
    load_into(model, state, strict=True, source=source)
    model.eval()
    return model


def _read_zoo_config(cfg_path: Path) -> tuple[ZooMember, list[str], int]:
    """The member recipe, class names and image size in a zoo ``.json``, checked."""
    try:
        meta = json.loads(cfg_path.read_text())
        m = dict(meta["member"])
        m["tags"] = tuple(m.get("tags") or ())
        member = ZooMember(**m)
        classes, image_size = list(meta["classes"]), int(meta["image_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CheckpointError(
            f"zoo config {cfg_path} cannot be read ({type(exc).__name__}: {what}); expected "
            "the JSON `robustlens zoo train` writes (member, classes, image_size)"
        ) from None
    if member.arch not in ARCHITECTURES:
        raise CheckpointError(
            f"zoo config {cfg_path}: unknown zoo architecture {member.arch!r}; this "
            f"robustlens has {', '.join(ARCHITECTURES)}"
        )
    return member, classes, image_size


def zoo_members_in(zoo_dir: str | Path) -> list[Path]:
    """Checkpoints in a zoo directory, sorted by name."""
    return sorted(Path(zoo_dir).glob("*.safetensors"))


def _train_worker(args: tuple[dict, dict, str, str]) -> tuple[str, float]:
    """Process-pool entry: rebuild the world from the store, train one member."""
    world_cfg, member_dict, store_root, out_dir = args
    torch.set_num_threads(1)
    world_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in world_cfg.items()}
    world = SyntheticWorld(WorldConfig(**world_cfg), Store(store_root))
    member_dict = {**member_dict, "tags": tuple(member_dict.get("tags") or ())}
    t0 = time.perf_counter()
    train_member(world, ZooMember(**member_dict), out_dir)
    return member_dict["name"], time.perf_counter() - t0


def train_zoo(
    world: Any,
    members: Sequence[ZooMember],
    out_dir: str | Path,
    workers: int = 2,
    on_done: Callable[[str, float], None] | None = None,
    force: bool = False,
) -> list[Path]:
    """Train every member not yet in ``out_dir`` (resumable), ``workers`` processes at a time.

    Small models train faster as separate single-threaded processes than as one process with
    several threads, so members run in parallel, one thread each.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"zoo member names must be unique, got duplicates in {names}")
    todo = [m for m in members if force or not (out_dir / f"{m.name}.safetensors").exists()]
    if todo:
        world.split("train")  # build once in this process, so that workers read the cache
        if world.store is None:
            raise ValueError("train_zoo needs a world backed by a store (the workers share it)")
        cfg = asdict(world.config)
        jobs = [(cfg, asdict(m), str(world.store.root), str(out_dir)) for m in todo]
        if workers <= 1:
            for job in jobs:
                name, dt = _train_worker(job)
                if on_done:
                    on_done(name, dt)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_train_worker, job) for job in jobs]
                for fut in cf.as_completed(futures):
                    name, dt = fut.result()
                    if on_done:
                        on_done(name, dt)
    return [out_dir / f"{n}.safetensors" for n in names]
