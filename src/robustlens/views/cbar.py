"""The ImageNet-C-bar views: ``cbar:NAME:SEVERITY`` (:mod:`robustlens.transforms.cbar`).

Every C-bar corruption is random: sample ``i`` draws from a generator seeded by the spec and
its sample id (:func:`~robustlens.views.registry.sample_seeds`), so a view does not depend on
the batch size, order or worker count.

Example:
    >>> import torch
    >>> from robustlens.views.registry import ViewContext, parse_view
    >>> v = parse_view("cbar:sparkles:3")
    >>> v.random, v(torch.zeros(2, 3, 8, 8), ViewContext(torch.arange(2))).shape
    (True, torch.Size([2, 3, 8, 8]))
"""

from __future__ import annotations

from robustlens.transforms.cbar import CBAR_CORRUPTIONS, cbar_corrupt
from robustlens.views.registry import View, register_view, sample_seeds

__all__: list[str] = []


@register_view("cbar", "cbar:NAME:SEVERITY (an ImageNet-C-bar corruption, SEVERITY 1..5)")
def _cbar(spec: str, args: list[str]) -> View:
    if len(args) != 2:
        raise ValueError(f"expected NAME:SEVERITY, got {':'.join(args)!r}")
    name, severity = args[0], int(args[1])
    if name not in CBAR_CORRUPTIONS:
        raise ValueError(
            f"unknown C-bar corruption {name!r}; available: {', '.join(CBAR_CORRUPTIONS)}"
        )
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return View(
        spec,
        lambda x, ctx: cbar_corrupt(x, name, severity, sample_seeds(spec, ctx.sample_ids)),
        random=True,
    )
