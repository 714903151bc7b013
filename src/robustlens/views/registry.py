"""The view registry: parse a spec string into a batched function on pixels in [0, 1]."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustlens.errors import ValidationError
from robustlens.transforms.adversarial import (
    AUTOATTACK_VERSIONS,
    autoattack,
    pgd_attack,
    spread_mask,
)
from robustlens.transforms.corruptions import CORRUPTIONS, corrupt
from robustlens.transforms.frequency import (
    N_BANDS,
    band_noise,
    centred_spectrum,
    critical_band_stimulus,
    fft_filter,
    luma,
)

ViewFn = Callable[[torch.Tensor, "ViewContext"], torch.Tensor]


@dataclass
class ViewContext:
    """What a view may use besides the pixels: sample ids always, labels and model for PGD
    and AutoAttack, and (from the engine) the samples' positions in a dataset of ``total``."""

    sample_ids: torch.Tensor  # int64 (B,)
    labels: torch.Tensor | None = None  # int64 (B,), in the model's output space
    model: nn.Module | None = None
    index: torch.Tensor | None = None  # int64 (B,), positions in the dataset
    total: int | None = None  # the dataset's length
    # what several views compute alike from the same pixels (the critical-band stimulus, the
    # spectrum): the engine passes one dict per batch, so 17 band-noise views of a batch make
    # its stimulus once
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, name: str, pixels: torch.Tensor, compute: Callable[[], Any]) -> Any:
        """``compute()`` of ``pixels``, made once: a later view asking for ``name`` on the same
        pixels (the same tensor) gets this result. One result is held at a time, the latest
        name's: a 224-px batch's spectrum takes hundreds of megabytes, and views that share
        one come one after another in a plan."""
        held = self.memo.get(name)
        if held is not None and held[0] is pixels:
            return held[1]
        value = compute()
        self.memo.clear()
        self.memo[name] = (pixels, value)
        return value


@dataclass(frozen=True)
class View:
    spec: str
    fn: ViewFn
    needs_model: bool = False
    random: bool = False

    def __call__(self, pixels: torch.Tensor, ctx: ViewContext) -> torch.Tensor:
        return self.fn(pixels, ctx)


# name -> (factory(args: list[str]) -> View, usage string)
_REGISTRY: dict[str, tuple[Callable[[str, list[str]], View], str]] = {}


def register_view(name: str, usage: str) -> Callable[[Callable[[str, list[str]], View]], Callable]:
    """Register a view factory ``factory(spec, args) -> View`` under ``name``."""

    def deco(factory: Callable[[str, list[str]], View]) -> Callable[[str, list[str]], View]:
        _REGISTRY[name] = (factory, usage)
        return factory

    return deco


def available_views() -> dict[str, str]:
    """Registered view names and their usage strings."""
    return {k: u for k, (_, u) in sorted(_REGISTRY.items())}


@functools.lru_cache(maxsize=512)
def parse_view(spec: str) -> View:
    """Parse a view spec string; unknown names or bad arguments name the valid usage."""
    name, *args = spec.strip().split(":")
    if name not in _REGISTRY:
        raise ValidationError(
            f"unknown view {spec!r}; available: {', '.join(available_views().values())}"
        )
    factory, usage = _REGISTRY[name]
    try:
        return factory(spec, args)
    except (ValueError, TypeError, IndexError) as exc:
        raise ValidationError(f"bad view spec {spec!r}: {exc}; usage: {usage}") from exc


def sample_seeds(spec: str, sample_ids: torch.Tensor) -> torch.Tensor:
    """Per-sample 63-bit seeds from the view spec and the sample ids."""
    base = int.from_bytes(hashlib.blake2b(spec.encode(), digest_size=8).digest(), "little") >> 2
    return (sample_ids.to(torch.int64) ^ base) & ((1 << 62) - 1)


def _no_args(spec: str, args: list[str]) -> None:
    if args:
        raise ValueError(f"view takes no arguments, got {args}")


# ---------------------------------------------------------------- built-in views
def layout_of(x: torch.Tensor) -> torch.memory_format:
    """The memory format of a (B, C, H, W) batch: channels-last or the standard one.

    A view returns its pixels contiguous in its input's format: the engine feeds
    channels-last batches to channels-last models, and a view that kept the standard
    format would be copied into channels-last once more before every forward pass.
    """
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def gray_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Luma 0.299 R + 0.587 G + 0.114 B copied to three channels, on pixels in [0, 1].

    Applied before normalization (applying it after normalization is a known bug in public
    EI code: it mixes channels with different means and stds).
    """
    return luma(pixels).expand(-1, 3, -1, -1).contiguous(memory_format=layout_of(pixels))


@register_view("clean", "clean")
def _clean(spec: str, args: list[str]) -> View:
    _no_args(spec, args)
    return View(spec, lambda x, ctx: x)


def _rotation(k: int) -> Callable[[str, list[str]], View]:
    def factory(spec: str, args: list[str]) -> View:
        _no_args(spec, args)
        # exact rotation by a multiple of 90 degrees: no interpolation
        return View(
            spec,
            lambda x, ctx: torch.rot90(x, k=k, dims=(-2, -1)).contiguous(
                memory_format=layout_of(x)
            ),
        )

    return factory


for _deg, _k in ((90, 1), (180, 2), (270, 3)):
    register_view(f"rot{_deg}", f"rot{_deg}")(_rotation(_k))


@register_view("gray", "gray")
def _gray(spec: str, args: list[str]) -> View:
    _no_args(spec, args)
    return View(spec, lambda x, ctx: gray_pixels(x))


def _frequency_filter(kind: str) -> Callable[[str, list[str]], View]:
    """``lowpass:C`` keeps the centred spectral square of half-side C; ``highpass:C`` removes
    the square of half-side 1 - C (seed 002's definition, see ``fft_filter``)."""

    def factory(spec: str, args: list[str]) -> View:
        (cutoff,) = args
        c = float(cutoff)
        if not 0 < c <= 1:
            raise ValueError(f"cutoff must be in (0, 1], got {c}")
        return View(
            spec,
            lambda x, ctx: fft_filter(
                x, c, kind=kind, spectrum=ctx.shared("spectrum", x, lambda: centred_spectrum(x))
            ),
        )

    return factory


for _kind in ("low", "high"):
    register_view(f"{_kind}pass", f"{_kind}pass:CUTOFF (0 < CUTOFF <= 1)")(_frequency_filter(_kind))


def _seeded(
    spec: str, fn: Callable[[torch.Tensor, torch.Tensor, ViewContext], torch.Tensor]
) -> View:
    """A random view: ``fn(pixels, seeds, ctx)``, one seed per sample from the spec and its id."""
    return View(spec, lambda x, ctx: fn(x, sample_seeds(spec, ctx.sample_ids), ctx), random=True)


@register_view("bandnoise", "bandnoise:BAND:SIGMA (BAND 0..6, Laplacian-pyramid level 6 - BAND)")
def _bandnoise(spec: str, args: list[str]) -> View:
    """The critical-band stimulus (``band_noise``); SIGMA 0 is the noise-free stimulus."""
    band, sigma = int(args[0]), float(args[1])
    if not 0 <= band < N_BANDS:
        raise ValueError(f"band must be 0..{N_BANDS - 1}, got {band}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return _seeded(
        spec,
        lambda x, seeds, ctx: band_noise(
            x,
            band,
            sigma,
            seeds,
            stimulus=ctx.shared("stimulus", x, lambda: critical_band_stimulus(x)),
        ),
    )


@register_view("corrupt", "corrupt:NAME:SEVERITY (SEVERITY 1..5)")
def _corrupt(spec: str, args: list[str]) -> View:
    name, severity = args[0], int(args[1])
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; available: {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return _seeded(spec, lambda x, seeds, ctx: corrupt(x, name, severity, seeds))


@register_view("pgd", "pgd:linf:EPS:STEPS[:STEP] (EPS, STEP in pixel units of [0, 1])")
def _pgd(spec: str, args: list[str]) -> View:
    norm, eps, steps = args[0], float(args[1]), int(args[2])
    step = float(args[3]) if len(args) > 3 else 2.0 / 255.0
    if norm != "linf":
        raise ValueError(f"only the linf norm is supported, got {norm!r}")

    def fn(x: torch.Tensor, ctx: ViewContext) -> torch.Tensor:
        if ctx.model is None or ctx.labels is None:
            raise ValidationError(f"view {spec!r} needs the model and the labels")
        seeds = sample_seeds(spec, ctx.sample_ids).tolist()  # per-sample random starts
        return pgd_attack(ctx.model, x, ctx.labels, eps=eps, step=step, steps=steps, seed=seeds)

    return View(spec, fn, needs_model=True, random=True)


def _int_or_default(text: str, what: str) -> int | None:
    if text in ("default", "all"):
        return None
    value = int(text)
    if value < 1:
        raise ValueError(f"{what} must be >= 1, 'all' or 'default', got {value}")
    return value


@register_view(
    "autoattack",
    "autoattack:linf:EPS[:N[:VERSION[:SEED[:TARGETS[:STEPS]]]]] (EPS in pixel units of [0, 1]; "
    "N images evenly spaced over the dataset or 'all'; VERSION standard, plus or rand; "
    "TARGETS and STEPS an integer or 'default', torchattacks' own)",
)
def _autoattack(spec: str, args: list[str]) -> View:
    """AutoAttack (``robustlens.transforms.adversarial.autoattack``) on the ``N`` samples of
    the dataset that ``spread_mask`` chooses; the others pass through unchanged. Defaults:
    all images, ``standard``, seed 0, 9 target classes, torchattacks' steps."""
    norm, eps = args[0], float(args[1])
    if norm != "linf":
        raise ValueError(f"only the linf norm is supported, got {norm!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    n = _int_or_default(args[2], "N") if len(args) > 2 else None
    version = args[3] if len(args) > 3 else "standard"
    if version not in AUTOATTACK_VERSIONS:
        raise ValueError(
            f"version must be one of {', '.join(AUTOATTACK_VERSIONS)}, got {version!r}"
        )
    seed = int(args[4]) if len(args) > 4 else 0
    targets = _int_or_default(args[5], "TARGETS") if len(args) > 5 else 9
    steps = _int_or_default(args[6], "STEPS") if len(args) > 6 else None
    if len(args) > 7:
        raise ValueError(f"too many arguments: {args}")

    def fn(x: torch.Tensor, ctx: ViewContext) -> torch.Tensor:
        if ctx.model is None or ctx.labels is None:
            raise ValidationError(f"view {spec!r} needs the model and the labels")
        if ctx.index is None or ctx.total is None:
            chosen = torch.ones(len(x), dtype=torch.bool, device=x.device)
        else:
            mask = spread_mask(ctx.index.cpu().numpy(), ctx.total, n)
            chosen = torch.from_numpy(mask).to(x.device)
        if not bool(chosen.any()):
            return x
        out = x.clone()
        out[chosen] = autoattack(
            ctx.model,
            x[chosen],
            ctx.labels[chosen],
            eps=eps,
            version=version,
            seed=seed,
            target_classes=targets,
            steps=steps,
        )
        return out

    return View(spec, fn, needs_model=True, random=True)
