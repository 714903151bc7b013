"""The synthetic zoo: small models trained on the synthetic world, with real spread.

Members vary architecture (plain CNN, ResNet-style, MLP-Mixer), width, epochs and the causes
the synthetic world lets a recipe plant: the rate of the spurious mark in training, texture
randomization (which raises shape bias), rotation, grayscale and corruption augmentation
(:class:`ZooMember`). Optionally they train on real + generated images (``generated`` names an
ImageFolder of generated images, mixed at ``generated_ratio`` generated per real image). Each
model's config records its resolved causes under ``planted``
(:data:`~robustlens.models.planted.PLANTED_KEYS`).

The demo zoo (:func:`default_zoo`, :func:`quick_zoo`) is a base recipe per architecture plus
one-factor sweeps of each cause spread over the architectures, so that no cause is confounded
with one architecture; members are tagged ``base`` or ``sweep:<cause>``.

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
from robustlens.data.synthetic import (
    SyntheticWorld,
    TextureBank,
    WorldConfig,
    apply_marks,
    relight,
)
from robustlens.errors import CheckpointError
from robustlens.models.base import ModelAdapter
from robustlens.models.checkpoints import load_into, load_state_dict
from robustlens.models.zoo_archs import ARCHITECTURES, build_architecture
from robustlens.store import Store
from robustlens.transforms.corruptions import corrupt
from robustlens.views.registry import gray_pixels

AUGMENTATIONS = ("none", "standard", "strong", "texrand", "custom")
#: corruption augmentation modes and the training corruptions each draws from: one family
#: each for ``noise`` and ``blur``, both for ``mixed``. Blur trains on ``gaussian_blur``, which
#: the demo's evaluation corruptions leave out (defocus and motion blur are held out).
CORRUPTION_AUGMENTATIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "noise": ("gaussian_noise",),
    "blur": ("gaussian_blur",),
    "mixed": ("gaussian_noise", "gaussian_blur"),
}
# corruptions seen in "strong" training; the rest stay held out for evaluation
TRAIN_CORRUPTIONS = CORRUPTION_AUGMENTATIONS["mixed"]
#: probability that a training image is corrupted under corruption augmentation
CORRUPTION_PROBABILITY = 0.6
#: the lowest contrast factor of the contrast jitter (log-uniform in [this, 1])
CONTRAST_JITTER_MIN = 0.1
ZOO_MEAN = (0.5, 0.5, 0.5)
ZOO_STD = (0.25, 0.25, 0.25)
# the knobs each augmentation preset implies where a member leaves them unset (None)
_PRESETS: dict[str, dict[str, Any]] = {
    "none": {
        "texture_randomization": 0.0,
        "grayscale_augmentation": 0.0,
        "corruption_augmentation": "none",
        "contrast_jitter": 0.0,
    },
    "standard": {
        "texture_randomization": 0.0,
        "grayscale_augmentation": 0.2,
        "corruption_augmentation": "none",
        "contrast_jitter": 0.5,
    },
    "strong": {
        "texture_randomization": 0.0,
        "grayscale_augmentation": 0.2,
        "corruption_augmentation": "mixed",
        "contrast_jitter": 0.5,
    },
    "texrand": {
        "texture_randomization": 0.8,
        "grayscale_augmentation": 0.2,
        "corruption_augmentation": "none",
        "contrast_jitter": 0.5,
    },
    "custom": {
        "texture_randomization": 0.0,
        "grayscale_augmentation": 0.2,
        "corruption_augmentation": "none",
        "contrast_jitter": 0.5,
    },
}


def _probability(member: str, name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"zoo member {member!r}: {name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class ZooMember:
    """The recipe of one zoo model (also its JSON config).

    ``augment`` names the pipeline: ``none`` (no augmentation at all) or random 2-px crops and
    horizontal flips plus a preset (``standard``, ``strong``, ``texrand``, ``custom``). A preset
    sets the knobs a member leaves at ``None``:

    * ``texture_randomization``: probability that the object is refilled with a random texture
      (Geirhos et al.'s stylization, in the world's terms); 0.8 for ``texrand``, else 0;
    * ``grayscale_augmentation``: probability of a grayscale image; 0.2 (0 for ``none``);
    * ``corruption_augmentation``: :data:`CORRUPTION_AUGMENTATIONS`; ``mixed`` for ``strong``;
    * ``contrast_jitter``: probability of a random contrast reduction (dim light); 0.5 (0 for
      ``none``); the same for every member of the demo zoo, so not a planted cause.

    ``rotation_augmentation`` is the probability of a rotation by 90, 180 or 270 degrees.
    ``standard`` and ``none`` are plain training (the effective-robustness baseline, see
    :func:`robustlens.lines.robustness.analysis.is_standard`); ``custom`` takes every knob as
    given, from the ``standard`` values. The resolved causes are :meth:`planted`.
    """

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
    texture_randomization: float | None = None  # None -> the preset's
    rotation_augmentation: float = 0.0
    grayscale_augmentation: float | None = None  # None -> the preset's
    corruption_augmentation: str | None = None  # None -> the preset's
    contrast_jitter: float | None = None  # None -> the preset's

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"zoo member {self.name!r}: unknown augment {self.augment!r}; "
                f"available: {', '.join(AUGMENTATIONS)}"
            )
        corruption = self.corruption_augmentation
        if corruption is not None and corruption not in CORRUPTION_AUGMENTATIONS:
            raise ValueError(
                f"zoo member {self.name!r}: unknown corruption_augmentation {corruption!r}; "
                f"available: {', '.join(CORRUPTION_AUGMENTATIONS)}"
            )
        for name in (
            "mark_rate",
            "texture_randomization",
            "rotation_augmentation",
            "grayscale_augmentation",
            "contrast_jitter",
        ):
            _probability(self.name, name, getattr(self, name))

    def knob(self, name: str) -> Any:
        """A preset knob (:data:`_PRESETS`), the preset's value where the member sets none."""
        value = getattr(self, name)
        return _PRESETS[self.augment][name] if value is None else value

    def generated_fraction(self) -> float:
        """Fraction of training images that are generated (0 without generated data)."""
        if not self.generated:
            return 0.0
        return round(self.generated_ratio / (1.0 + self.generated_ratio), 4)

    def planted(self, world_mark_rate: float | None = None) -> dict[str, Any]:
        """The planted causes, resolved (:data:`~robustlens.models.planted.PLANTED_KEYS`), as
        recorded in the config.

        Example:
            >>> ZooMember("m", "resnet", 16, "texrand", 4, mark_rate=0.5).planted()["arch"]
            'resnet'
            >>> p = ZooMember("m", augment="custom", corruption_augmentation="noise").planted(0.8)
            >>> p["mark_rate"], p["texture_randomization"], p["corruption_augmentation"]
            (0.8, 0.0, 'noise')
        """
        rate = self.mark_rate if self.mark_rate is not None else world_mark_rate
        return {
            "mark_rate": None if rate is None else float(rate),
            "texture_randomization": float(self.knob("texture_randomization")),
            "rotation_augmentation": float(self.rotation_augmentation),
            "grayscale_augmentation": float(self.knob("grayscale_augmentation")),
            "corruption_augmentation": str(self.knob("corruption_augmentation")),
            "generated_fraction": self.generated_fraction(),
            "epochs": int(self.epochs),
            "width": int(self.width),
            "arch": str(self.arch),
        }


# --------------------------------------------------------------------------- the demo zoo
#: each architecture's base recipe: width and epochs (at ``epochs_scale`` 1)
BASE_RECIPES: dict[str, tuple[int, int]] = {"cnn": (32, 8), "resnet": (16, 8), "mixer": (64, 10)}
#: the base values of the planted causes; every other member moves one of them. The base
#: trains without the mark: a model that saw no mark cannot rely on it, so mark reliance is
#: the mark sweep's alone (not also a side effect of, say, texture randomization, which makes
#: the mark the next shortcut when the texture is gone)
BASE_CAUSES: dict[str, Any] = {
    "mark_rate": 0.0,
    "texture_randomization": 0.0,
    "rotation_augmentation": 0.0,
    "grayscale_augmentation": 0.5,
    "corruption_augmentation": "none",
}
#: the one-factor sweeps of the full demo zoo: (cause, value, architecture), each cause's
#: levels spread over the architectures so that no cause is one architecture's
SWEEPS: tuple[tuple[str, Any, str], ...] = (
    ("mark_rate", 0.25, "mixer"),
    ("mark_rate", 0.5, "cnn"),
    ("mark_rate", 0.8, "resnet"),
    ("mark_rate", 1.0, "mixer"),
    ("texture_randomization", 0.25, "mixer"),
    ("texture_randomization", 0.5, "cnn"),
    ("texture_randomization", 0.75, "resnet"),
    ("texture_randomization", 1.0, "resnet"),
    ("rotation_augmentation", 0.5, "cnn"),
    ("rotation_augmentation", 1.0, "resnet"),
    ("grayscale_augmentation", 0.0, "mixer"),
    ("grayscale_augmentation", 0.8, "cnn"),
    ("corruption_augmentation", "noise", "resnet"),
    ("corruption_augmentation", "blur", "mixer"),
    ("corruption_augmentation", "mixed", "cnn"),
)
#: capacity and training length (they drive ID accuracy): (architecture, width, epochs)
CAPACITY: tuple[tuple[str, int, int], ...] = (("cnn", 8, 2), ("resnet", 8, 3))
#: the quick demo's sweeps and capacity members: three levels of every cause (base included);
#: its half-length training leaves a fully texture-randomized model unconverged, so its top
#: texture randomization is 0.75
QUICK_SWEEPS: tuple[tuple[str, Any, str], ...] = (
    ("mark_rate", 0.5, "cnn"),
    ("mark_rate", 1.0, "resnet"),
    ("texture_randomization", 0.5, "cnn"),
    ("texture_randomization", 0.75, "resnet"),
    ("rotation_augmentation", 0.5, "resnet"),
    ("rotation_augmentation", 1.0, "cnn"),
    ("grayscale_augmentation", 0.0, "mixer"),
    ("grayscale_augmentation", 0.8, "cnn"),
    ("corruption_augmentation", "noise", "resnet"),
    ("corruption_augmentation", "mixed", "cnn"),
)
QUICK_CAPACITY: tuple[tuple[str, int, int], ...] = (("cnn", 8, 2),)
_SHORT = {
    "mark_rate": "mark",
    "texture_randomization": "texrand",
    "rotation_augmentation": "rot",
    "grayscale_augmentation": "gray",
    "corruption_augmentation": "corrupt-",
}


def _recipe(name: str, arch: str, width: int, epochs: int, tag: str, **causes: Any) -> ZooMember:
    """A member with the base causes, ``causes`` moved; plain training (``standard``) when
    only the mark rate moved, ``custom`` otherwise (off the effective-robustness baseline)."""
    c = {**BASE_CAUSES, **causes}
    plain = all(c[k] == BASE_CAUSES[k] for k in BASE_CAUSES if k != "mark_rate")
    return ZooMember(
        name,
        arch,
        width,
        "standard" if plain else "custom",
        epochs,
        mark_rate=c["mark_rate"],
        tags=(tag,),
        texture_randomization=c["texture_randomization"],
        rotation_augmentation=c["rotation_augmentation"],
        grayscale_augmentation=c["grayscale_augmentation"],
        corruption_augmentation=c["corruption_augmentation"],
    )


def _zoo(
    sweeps: Sequence[tuple[str, Any, str]],
    capacity: Sequence[tuple[str, int, int]],
    epochs_scale: float,
) -> list[ZooMember]:
    def e(n: int) -> int:
        return max(1, round(n * epochs_scale))

    members = [
        _recipe(f"{arch}{w}-standard", arch, w, e(n), "base")
        for arch, (w, n) in BASE_RECIPES.items()
    ]
    for cause, value, arch in sweeps:
        w, n = BASE_RECIPES[arch]
        label = f"{_SHORT[cause]}{value}"
        members.append(
            _recipe(f"{arch}{w}-{label}", arch, w, e(n), f"sweep:{cause}", **{cause: value})
        )
    for arch, w, n in capacity:
        members.append(_recipe(f"{arch}{w}-e{e(n)}", arch, w, e(n), "sweep:capacity"))
    return members


def default_zoo(epochs_scale: float = 1.0) -> list[ZooMember]:
    """The demo zoo: a base recipe per architecture (tagged ``base``) and one-factor sweeps of
    every planted cause (tagged ``sweep:<cause>``, :data:`SWEEPS`), plus smaller or shorter
    trained models (``sweep:capacity``): 20 members.

    Example:
        >>> zoo = default_zoo()
        >>> len(zoo), sorted({m.planted()["mark_rate"] for m in zoo})
        (20, [0.0, 0.25, 0.5, 0.8, 1.0])
    """
    return _zoo(SWEEPS, CAPACITY, epochs_scale)


def quick_zoo(epochs_scale: float = 0.5) -> list[ZooMember]:
    """The quick demo's zoo (:data:`QUICK_SWEEPS`): 14 members, three levels of each cause.

    Example:
        >>> zoo = quick_zoo()
        >>> len(zoo), sorted({m.planted()["corruption_augmentation"] for m in zoo})
        (14, ['mixed', 'noise', 'none'])
    """
    return _zoo(QUICK_SWEEPS, QUICK_CAPACITY, epochs_scale)


# --------------------------------------------------------------------------- augmentation
def _crop_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 2-px reflect-padded crop and horizontal flip."""
    n, _, h, w = x.shape
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    ox = torch.randint(0, 5, (n,), generator=gen)
    oy = torch.randint(0, 5, (n,), generator=gen)
    out = torch.stack([pad[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def _rotate(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability ``p`` per image, a rotation by 90, 180 or 270 degrees."""
    if p <= 0:
        return x
    apply = torch.rand(len(x), generator=gen) < p
    turns = torch.randint(1, 4, (len(x),), generator=gen)
    for k in (1, 2, 3):
        sel = apply & (turns == k)
        if sel.any():
            x[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
    return x


def _contrast(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability ``p`` per image, contrast scaled around the image mean by a factor
    log-uniform in [:data:`CONTRAST_JITTER_MIN`, 1] (dim or hazy light)."""
    if p <= 0:
        return x
    apply = torch.rand(len(x), generator=gen) < p
    u = torch.rand(len(x), generator=gen)
    f = torch.exp(u * np.log(CONTRAST_JITTER_MIN)).view(-1, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return torch.where(apply.view(-1, 1, 1, 1), m + (x - m) * f, x)


def _grayscale(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability ``p`` per image, luma copied to three channels (random grayscale, as
    in SimCLR-style pipelines): colour is then not the only cue."""
    if p <= 0:
        return x
    gray = torch.rand(len(x), generator=gen) < p
    if gray.any():
        x[gray] = gray_pixels(x[gray])
    return x


def _corrupt(
    x: torch.Tensor, names: Sequence[str], gen: torch.Generator, reference_side: int
) -> torch.Tensor:
    """Corruption augmentation: with probability :data:`CORRUPTION_PROBABILITY` per image, one
    of ``names`` (drawn per batch) at a severity drawn per batch from 1..5."""
    if not names:
        return x
    apply = torch.rand(len(x), generator=gen) < CORRUPTION_PROBABILITY
    if apply.any():
        name = names[int(torch.randint(0, len(names), (1,), generator=gen))]
        sev = int(torch.randint(1, 6, (1,), generator=gen))
        seeds = torch.randint(0, 2**62, (int(apply.sum()),), generator=gen)
        x[apply] = corrupt(x[apply], name, sev, seeds, reference_side=reference_side)
    return x


def augment_batch(
    x: torch.Tensor, member: ZooMember, gen: torch.Generator, reference_side: int = 64
) -> torch.Tensor:
    """A member's augmentation of a batch of [0, 1] pixels (texture randomization aside, which
    acts on the object before the batch is formed): crop and flip unless ``augment`` is
    ``none``, then rotation, grayscale and corruption at the member's probabilities.
    ``reference_side`` scales the corruptions as the world's corrupted splits are scaled."""
    if member.augment != "none":
        x = _crop_flip(x, gen)
    x = _rotate(x, member.rotation_augmentation, gen)
    x = _contrast(x, member.knob("contrast_jitter"), gen)
    x = _grayscale(x, member.knob("grayscale_augmentation"), gen)
    corruption = member.knob("corruption_augmentation")
    return _corrupt(x, CORRUPTION_AUGMENTATIONS[corruption], gen, reference_side)


class TrainingData:
    """World training arrays (and optional generated images) with augmentation per batch."""

    def __init__(self, world: Any, member: ZooMember) -> None:
        self.codes = world.codes
        arrays = world.training_arrays(member.mark_rate)
        self.unmarked = arrays["images_unmarked"]
        self.masks = arrays["masks"]
        self.light = arrays["light"]
        self.labels = arrays["labels"]
        self.present = arrays["mark_present"]
        self.images = arrays["images"]
        self.member = member
        self.texrand = float(member.knob("texture_randomization"))
        self.reference_side = 2 * world.config.image_size
        self.bank = (
            TextureBank(world.config.image_size, seed=member.seed) if self.texrand > 0 else None
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
            # texture randomization: refill the object with a random texture (lit as the photo
            # is), then re-stamp the marks
            base = self.unmarked[real].astype(np.float32)
            m = self.masks[real].astype(np.float32)[..., None] / 255.0
            pick = torch.randint(0, len(self.bank.textures), (len(real),), generator=gen).numpy()
            swap = (torch.rand(len(real), generator=gen) < self.texrand).numpy()
            light = self.light[real] * np.array([1.0, 255.0], np.float32)
            tex = relight(self.bank.textures[pick].astype(np.float32), light)
            mixed = np.where(swap[:, None, None, None], base * (1 - m) + tex * m, base)
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
        x = augment_batch(x, self.member, gen, self.reference_side)
        return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))


# --------------------------------------------------------------------------- training
def build_adapter(
    member: ZooMember,
    classes: Sequence[str],
    image_size: int = 32,
    world_mark_rate: float | None = None,
) -> ModelAdapter:
    """The untrained model of a recipe. Its config holds the recipe (``member``) and the planted
    causes (``planted``, :meth:`ZooMember.planted`; a member without its own mark rate trains
    at ``world_mark_rate``, recorded as ``world_mark_rate`` when known)."""
    torch.manual_seed(member.seed)
    backbone, head = build_architecture(member.arch, member.width, len(classes), image_size)
    config: dict[str, Any] = {"arch": member.arch, "source": "zoo", "member": asdict(member)}
    config["planted"] = member.planted(world_mark_rate)
    if world_mark_rate is not None:
        config["world_mark_rate"] = float(world_mark_rate)
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
    model = build_adapter(member, world.classes, world.config.image_size, world.config.mark_rate)
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
        "world_mark_rate": world.config.mark_rate,
        "planted": model.config["planted"],
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
    member, classes, image_size, world_mark_rate = _read_zoo_config(cfg_path)
    try:
        model = build_adapter(member, classes, image_size, world_mark_rate)
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


def _read_zoo_config(cfg_path: Path) -> tuple[ZooMember, list[str], int, float | None]:
    """The member recipe, class names, image size and world mark rate in a zoo ``.json``."""
    try:
        meta = json.loads(cfg_path.read_text())
        m = dict(meta["member"])
        m["tags"] = tuple(m.get("tags") or ())
        member = ZooMember(**m)
        classes, image_size = list(meta["classes"]), int(meta["image_size"])
        rate = meta.get("world_mark_rate")
        world_mark_rate = None if rate is None else float(rate)
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
    return member, classes, image_size, world_mark_rate


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


def training_cost(member: ZooMember) -> float:
    """Relative training time of a member: epochs times the images per epoch (generated data
    adds ``generated_ratio`` per real image) times the architecture's cost per image at its
    width (measured on the demo world: a 32-wide CNN, a 16-wide ResNet and a 64-wide Mixer
    cost about the same per epoch; cost grows with the square of the width).

    Example:
        >>> a = ZooMember("a", "cnn", 32, "standard", 8)
        >>> b = ZooMember("b", "cnn", 32, "standard", 8, generated="g", generated_ratio=1.0)
        >>> c = ZooMember("c", "cnn", 8, "standard", 8)
        >>> training_cost(b) / training_cost(a), training_cost(c) / training_cost(a)
        (2.0, 0.0625)
    """
    reference = BASE_RECIPES.get(member.arch, (member.width, 0))[0]
    data = 1.0 + (member.generated_ratio if member.generated else 0.0)
    return member.epochs * data * (member.width / reference) ** 2


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
    # the longest first, so that no worker is left alone with a long member at the end
    todo.sort(key=training_cost, reverse=True)
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
