"""Views: batched tensor transforms of a clean batch, named by a hashable spec string.

A spec is ``name`` or ``name:arg1:arg2``, e.g. ``clean``, ``rot90``, ``gray``,
``lowpass:0.3``, ``bandnoise:3:0.08``, ``corrupt:gaussian_noise:3``, ``pgd:linf:0.00196:40``.
Random views draw each sample's randomness from a generator seeded by (spec, sample id), so
results do not depend on batch size, order or worker count.
"""

from robustlens.views import cbar as _cbar  # noqa: F401  (registers cbar:)
from robustlens.views.registry import (
    View,
    ViewContext,
    available_views,
    parse_view,
    register_view,
    sample_seeds,
)

__all__ = [
    "View",
    "ViewContext",
    "available_views",
    "parse_view",
    "register_view",
    "sample_seeds",
]
