"""Projected gradient descent (PGD) adversarial examples in pixel space.

Reference: A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep Learning
Models Resistant to Adversarial Attacks", ICLR 2018.

Seed 002 (Gavrikov et al., CVPR 2024, ``eval_imagenet_adv.py``) evaluates L-inf PGD with
``eps = 0.5/255``, an absolute step of ``2/255`` and 40 steps with a random start (foolbox
``LinfPGD`` defaults); these are the defaults here (:data:`SEED002_PGD`). The step is larger than
eps there, so every step lands on a corner of the eps-ball after projection.

PGD is the one view that needs the model: ``model`` maps pixels in [0, 1] to logits and does
its own normalization (the model adapter's differentiable module).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustlens._validation import check_number
from robustlens.errors import ValidationError
from robustlens.transforms.corruptions import check_images, seed_generators

__all__ = ["SEED002_PGD", "pgd_attack"]

SEED002_PGD: dict[str, Any] = {"eps": 0.5 / 255, "step": 2 / 255, "steps": 40, "norm": "linf"}


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
