"""Projected gradient descent (PGD) adversarial examples in pixel space.

Reference: A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep Learning
Models Resistant to Adversarial Attacks", ICLR 2018.

Seed 002 (Gavrikov et al., CVPR 2024, ``eval_imagenet_adv.py``) evaluates L-inf PGD with
``eps = 0.5/255``, an absolute step of ``2/255`` and 40 steps with a random start (foolbox
``LinfPGD`` defaults); these are the defaults here (:data:`SEED002_PGD`). The step is larger than
eps there, so every step lands on a corner of the eps-ball after projection.

PGD and AutoAttack are the views that need the model: ``model`` maps pixels in [0, 1] to logits
and does its own normalization (the model adapter's differentiable module), which is what
``torchattacks`` expects.

AutoAttack (F. Croce, M. Hein, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML 2020) runs through ``torchattacks.AutoAttack``
(:func:`autoattack`), an optional dependency (``pip install "robustlens[attacks]"``). Its
defaults here are RobustBench's ImageNet threat model (:data:`AUTOATTACK`: L-inf, eps 4/255,
the ``standard`` version: APGD-CE, APGD-T, FAB-T, Square). ``torchattacks`` differs from the
reference implementation in two counts, both recorded with the results: its targeted attacks
try ``n_classes - 1`` target classes (the reference: 9; with 1000 ImageNet classes that is
about 100 times the work, so ``target_classes`` defaults to the reference's 9, which equals
``torchattacks`` for 10 classes), and its APGD and FAB run 10 steps (the reference: 100; set
``steps`` for that).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustlens._validation import check_number
from robustlens.errors import RobustlensError, ValidationError
from robustlens.transforms.corruptions import check_images, seed_generators

__all__ = [
    "AUTOATTACK",
    "AUTOATTACK_ATTACKS",
    "AUTOATTACK_VERSIONS",
    "SEED002_PGD",
    "MissingDependencyError",
    "autoattack",
    "load_torchattacks",
    "pgd_attack",
    "spread_indices",
    "spread_mask",
    "torchattacks_version",
]

SEED002_PGD: dict[str, Any] = {"eps": 0.5 / 255, "step": 2 / 255, "steps": 40, "norm": "linf"}
#: RobustBench's ImageNet L-inf threat model with AutoAttack's standard version; 5000 images
#: as RobustBench evaluates ImageNet; 9 target classes as the reference AutoAttack
AUTOATTACK: dict[str, Any] = {
    "eps": 4 / 255,
    "norm": "linf",
    "version": "standard",
    "seed": 0,
    "n_images": 5000,
    "target_classes": 9,
}
#: the attacks of each ``torchattacks.AutoAttack`` version, in the order they run
AUTOATTACK_ATTACKS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
AUTOATTACK_VERSIONS = tuple(AUTOATTACK_ATTACKS)
_PIP_ATTACKS = 'pip install "robustlens[attacks]"'


class MissingDependencyError(RobustlensError, ImportError):
    """An optional package a requested computation needs is not installed."""


def _random_start(
    x: torch.Tensor, eps: float, norm: str, seed: int | Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Uniform in the L-inf ball, or uniform in the L2 ball, drawn on the CPU."""
    b = x.shape[0]
    shape = x.shape[1:]
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        g = torch.Generator().manual_seed(int(seed))
        gens = [g] * b  # one stream for the batch, drawn in order
    else:
        gens = seed_generators(seed, b, name="seed")
    if norm == "linf":
        d = torch.stack([torch.rand(shape, generator=g) * 2 - 1 for g in gens]) * eps
    else:
        dims = math.prod(shape)
        d = []
        for g in gens:
            v = torch.randn(shape, generator=g)
            r = float(torch.rand(1, generator=g)) ** (1.0 / dims)
            d.append(v / v.norm().clamp(min=1e-12) * r * eps)
        d = torch.stack(d)
    return d.to(x)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / n, max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def pgd_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float = SEED002_PGD["eps"],
    step: float = SEED002_PGD["step"],
    steps: int = SEED002_PGD["steps"],
    random_start: bool = True,
    norm: str = "linf",
    seed: int | Sequence[int] | torch.Tensor = 0,
) -> torch.Tensor:
    """Untargeted PGD: maximise the cross-entropy within an eps-ball around each image.

    Starting from ``x_0 = x + u`` (``u`` uniform in the ball if ``random_start``, else 0) ::

        linf: x_{t+1} = P(x_t + step * sign(grad CE(model(x_t), y)))
        l2:   x_{t+1} = P(x_t + step * grad / ||grad||_2)
        P(z)  = clip(x + proj_ball(z - x, eps), 0, 1)

    The model is put in eval mode for the attack (its previous mode is restored afterwards);
    gradients are taken only with respect to the input (``torch.autograd.grad``), parameters'
    ``requires_grad`` flags are switched off during the attack and restored, and no ``.grad``
    is written. ``eps = 0`` returns a copy of the input, untouched.

    Reference: Madry et al., ICLR 2018. Seed 002 setting (the defaults): L-inf,
    eps = 0.5/255, step = 2/255, 40 steps, random start.

    Args:
        model: any ``nn.Module`` mapping (B, 3, H, W) pixels in [0, 1] to (B, K) logits.
        images: (B, 3, H, W) float pixels in [0, 1], on the model's device.
        labels: (B,) integer class indices (into the model's logits).
        eps: radius of the ball (pixel units, e.g. 0.5/255).
        step: absolute step size.
        steps: number of gradient steps (0 returns the random start, or the input).
        random_start: start at a uniformly random point of the ball.
        norm: ``"linf"`` or ``"l2"``.
        seed: seed of the random start: an int (one generator for the batch) or B integers
            (one generator per image: the start then does not depend on the batch).

    Returns:
        (B, 3, H, W) adversarial images, detached, same dtype and device, within eps of
        ``images`` in the chosen norm and inside [0, 1].

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
        >>> _ = torch.manual_seed(0)
        >>> x = torch.rand(4, 3, 2, 2); y = torch.tensor([0, 1, 0, 1])
        >>> x_adv = pgd_attack(model, x, y, eps=8 / 255, step=2 / 255, steps=10)
        >>> bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6)
        True
        >>> bool(torch.equal(pgd_attack(model, x, y, eps=0.0, step=0.1, steps=5), x))
        True
    """
    if not isinstance(model, nn.Module):
        raise ValidationError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_images(images)
    if norm not in ("linf", "l2"):
        raise ValidationError(f"norm: expected 'linf' or 'l2', got {norm!r}")
    eps = check_number(eps, "eps")
    step = check_number(step, "step")
    steps = int(check_number(steps, "steps", integer=True))
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValidationError(
            f"labels: expected shape ({images.shape[0]},) to match images, "
            f"got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValidationError(f"labels: expected integer class indices, got {labels.dtype}")
    x = images.detach()
    if eps == 0 or x.shape[0] == 0:
        return x.clone()
    y = labels.to(device=x.device, dtype=torch.long)

    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    x_adv = x.float()
    x0 = x_adv.clone()
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        if random_start:
            x_adv = _project(x_adv + _random_start(x_adv, eps, norm, seed), x0, eps, norm)
        with torch.enable_grad():
            for _ in range(steps):
                x_var = x_adv.detach().requires_grad_(True)
                logits = model(x_var.to(images.dtype))
                if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                    raise ValidationError(
                        f"model output: expected (B, K) logits with B={x.shape[0]}, "
                        f"got shape {tuple(logits.shape)}"
                    )
                loss = F.cross_entropy(logits.float(), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, x_var)
                if norm == "linf":
                    direction = grad.sign()
                else:
                    gn = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
                    direction = grad / gn
                x_adv = _project(x_adv.detach() + step * direction, x0, eps, norm)
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)
    return x_adv.detach().to(images.dtype)


# ---------------------------------------------------------------------------------- AutoAttack
def load_torchattacks() -> Any:
    """The ``torchattacks`` module, or a :class:`MissingDependencyError` naming the fix."""
    try:
        import torchattacks  # optional dependency: torchattacks (the robustlens[attacks] extra)
    except ImportError as exc:
        raise MissingDependencyError(
            f"AutoAttack needs the optional package torchattacks, which is not installed: "
            f"{_PIP_ATTACKS} (or pip install 'torchattacks>=3.5')"
        ) from exc
    return torchattacks


def torchattacks_version() -> str | None:
    """The installed ``torchattacks`` version (``None`` when it is not installed)."""
    try:
        return metadata.version("torchattacks")
    except metadata.PackageNotFoundError:
        return None


def spread_mask(index: Any, total: int, n: int | None) -> np.ndarray:
    """Which of the samples at dataset positions ``index`` are among ``n`` evenly spaced ones.

    Of a dataset of ``total`` samples, position ``i`` is chosen when
    ``floor((i + 1) n / total) > floor(i n / total)``: exactly ``n`` positions, one in each
    run of ``total / n`` (so a dataset stored class by class gives every class its share).
    ``n=None`` or ``n >= total`` chooses every sample.

    Example:
        >>> spread_mask(range(10), 10, 3).nonzero()[0].tolist()
        [3, 6, 9]
        >>> int(spread_mask(range(50_000), 50_000, 5000).sum()), bool(spread_mask([7], 8, None)[0])
        (5000, True)
    """
    i = np.asarray(index, dtype=np.int64)
    if n is None or n >= total:
        return np.ones(i.shape, dtype=bool)
    if total < 1 or n < 0:
        raise ValidationError(f"spread_mask: expected total >= 1 and n >= 0, got {total}, {n}")
    return ((i + 1) * n) // total > (i * n) // total


def spread_indices(total: int, n: int | None) -> np.ndarray:
    """The positions :func:`spread_mask` chooses among ``range(total)``.

    Example:
        >>> spread_indices(10, 4).tolist()
        [2, 4, 7, 9]
    """
    return np.flatnonzero(spread_mask(np.arange(total), total, n))


def _n_classes(model: nn.Module, images: torch.Tensor) -> int:
    n = getattr(model, "n_classes", None)
    if isinstance(n, int) and n > 1:
        return n
    with torch.no_grad():
        return int(model(images[:1]).shape[1])


def autoattack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float = AUTOATTACK["eps"],
    version: str = AUTOATTACK["version"],
    seed: int = AUTOATTACK["seed"],
    n_classes: int | None = None,
    target_classes: int | None = AUTOATTACK["target_classes"],
    steps: int | None = None,
) -> torch.Tensor:
    """L-inf AutoAttack through ``torchattacks.AutoAttack`` (Croce and Hein, ICML 2020).

    The same as ``torchattacks.AutoAttack(model, norm="Linf", eps=eps, version=version,
    n_classes=n_classes, seed=seed)(images, labels)``, with two settings of its sub-attacks
    made explicit: ``target_classes`` (the target classes of APGD-T and FAB-T;
    ``torchattacks`` uses ``n_classes - 1``, the reference 9; ``None`` keeps
    ``torchattacks``') and ``steps`` (iterations of APGD and FAB; ``None`` keeps
    ``torchattacks``' 10, the reference runs 100). An image the ensemble does not fool, or
    that the model already misclassifies, comes back unchanged.

    The model is attacked in eval mode; parameters' ``requires_grad`` flags are switched off
    during the attack (no ``.grad`` is written) and restored, and the global torch random
    state is left as it was (``torchattacks`` seeds it with ``seed`` for each attack).
    Random starts are drawn for the batch as a whole, so which images end up fooled depends
    on which images share the call (robust accuracy does not, in expectation).

    Args:
        model: ``nn.Module`` mapping (B, 3, H, W) pixels in [0, 1] to (B, K) logits, doing its
            own normalization (a :class:`~robustlens.models.base.ModelAdapter` does).
        images: (B, 3, H, W) float pixels in [0, 1], on the model's device.
        labels: (B,) class indices into the model's logits.
        eps: L-inf radius in pixel units of [0, 1] (RobustBench's ImageNet: 4/255).
        version: ``"standard"``, ``"plus"`` or ``"rand"``.
        seed: the attacks' random seed.
        n_classes: classes of the model (default: ``model.n_classes`` or its output width).
        target_classes: target classes of the targeted attacks (at most ``n_classes - 1``).
        steps: iterations of APGD and FAB (``None``: ``torchattacks``' default).

    Returns:
        (B, 3, H, W) adversarial images, detached, within eps of ``images`` and inside [0, 1].

    Raises:
        MissingDependencyError: ``torchattacks`` is not installed.
    """
    if not isinstance(model, nn.Module):
        raise ValidationError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    check_images(images)
    if version not in AUTOATTACK_VERSIONS:
        raise ValidationError(
            f"version: expected one of {list(AUTOATTACK_VERSIONS)}, got {version!r}"
        )
    eps = check_number(eps, "eps")
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValidationError(
            f"labels: expected shape ({images.shape[0]},) to match images, "
            f"got {tuple(labels.shape)}"
        )
    # contiguous NCHW: torchattacks' FAB reshapes input gradients with .view(), which fails on
    # the channels-last tensors the engine passes
    x = images.detach().contiguous()
    if eps == 0 or x.shape[0] == 0:
        return x.clone()
    torchattacks = load_torchattacks()
    k = int(n_classes) if n_classes is not None else _n_classes(model, x)
    atk = torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version=version, n_classes=k, seed=int(seed)
    )
    for sub in getattr(atk, "_autoattack", atk).attacks:
        if target_classes is not None and hasattr(sub, "n_target_classes"):
            sub.n_target_classes = max(1, min(int(target_classes), k - 1))
        if steps is not None and hasattr(sub, "steps"):
            sub.steps = int(steps)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            adv = atk(x, labels.to(device=x.device, dtype=torch.long))
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
    return adv.detach().to(images.dtype)
