"""Spectral (low- / high-frequency) bias from accuracies on FFT-filtered images.

Reference: P. Gavrikov et al., "Can Biases in ImageNet Models Explain Generalization?",
CVPR 2024 (``code/eval_spectral.py`` and ``code/plots.ipynb``; after H. Wang et al., CVPR 2020).
The filtered views are made by ``robustlens.transforms.frequency.fft_filter`` at the cutoffs
``SPECTRAL_CUTOFFS`` (0.01, 0.1, ..., 0.9, 0.99).

Curves are accuracy ratios to clean accuracy, ``r(c) = acc(c) / acc_clean``, not clipped (the
reference's own table has ratios up to 1.5). ``LFC/c`` is the ratio after a low-pass that keeps
the centred square of half-side ``c`` of the spectrum; ``HFC/c`` after a high-pass that removes
the centred square of half-side ``1 - c`` (so ``c = 0.1`` keeps only the outermost 10 % of
frequencies). ``LPP`` (the low-frequency bias) is the mean of ``LFC/c`` and ``HPP`` (the
high-frequency bias) the mean of ``HFC/c`` over ``c = 0.1, 0.2, 0.3, 0.4, 0.5``; the spectral
bias is ``HPP / (LPP + HPP)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robustlens._validation import check_fraction
from robustlens.errors import ValidationError

__all__ = ["BIAS_CUTOFFS", "spectral_bias"]

BIAS_CUTOFFS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
_DECIMALS = 6  # cutoffs are matched after rounding, so 0.30000000000000004 == 0.3


def _spectral_update(acc: Mapping[Any, Any], name: str, clean: float) -> dict[float, float]:
    """Validate one curve; return {cutoff: ratio to clean accuracy}, sorted by cutoff."""
    if not isinstance(acc, Mapping) or not acc:
        raise ValidationError(
            f"{name}: expected a non-empty mapping cutoff -> accuracy, got {type(acc).__name__}"
        )
    curve: dict[float, float] = {}
    for key, value in acc.items():
        try:
            c = round(float(key), _DECIMALS)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{name}: cutoff keys must be numbers, got {key!r}") from exc
        if not 0.0 <= c <= 1.0:
            raise ValidationError(f"{name}: cutoffs must lie in [0, 1], got {key!r}")
        if c in curve:
            raise ValidationError(f"{name}: cutoff {c} appears twice")
        curve[c] = check_fraction(value, f"{name}[{key!r}]") / clean
    return dict(sorted(curve.items()))


def _spectral_compute(curve: dict[float, float], name: str, cutoffs: Sequence[float]) -> float:
    wanted = [round(float(c), _DECIMALS) for c in cutoffs]
    missing = [c for c in wanted if c not in curve]
    if missing:
        raise ValidationError(
            f"{name}: the bias averages the cutoffs {wanted}; missing {missing} (got {list(curve)})"
        )
    return float(np.mean([curve[c] for c in wanted]))


def spectral_bias(
    acc_low: Mapping[Any, Any],
    acc_high: Mapping[Any, Any],
    acc_clean: float,
    cutoffs: Sequence[float] = BIAS_CUTOFFS,
) -> dict[str, Any]:
    """Low- and high-frequency bias (LPP, HPP) and the spectral bias ``HPP / (LPP + HPP)``.

    ``low_freq_bias = LPP = mean_{c in cutoffs} acc_low(c) / acc_clean`` and
    ``high_freq_bias = HPP = mean_{c in cutoffs} acc_high(c) / acc_clean``, ``cutoffs`` =
    0.1..0.5, where ``acc_high(c)`` is measured after removing the centred square of half-side
    ``1 - c`` (``fft_filter(..., c, "high")``); ``spectral_bias = HPP / (LPP + HPP)`` (NaN when
    both are 0). A model that keeps its accuracy with only low frequencies has a high LPP.

    Reference: Gavrikov et al., CVPR 2024 (Sec. 3, spectral biases; ``code/plots.ipynb``).

    Args:
        acc_low: cutoff -> accuracy (in [0, 1]) on low-pass filtered images (``fft_filter``
            with ``kind="low"``).
        acc_high: cutoff -> accuracy on high-pass filtered images.
        acc_clean: accuracy on the unfiltered images (> 0).
        cutoffs: the cutoffs averaged into the biases (must be present in both curves).

    Returns:
        dict with ``low_freq_bias`` (LPP), ``high_freq_bias`` (HPP) and ``spectral_bias``
        (floats) and ``low_curve`` and ``high_curve`` (dict cutoff -> ratio to clean accuracy,
        sorted by cutoff).

    Example:
        >>> low = {0.1: 0.2, 0.2: 0.4, 0.3: 0.6, 0.4: 0.7, 0.5: 0.8, 0.99: 0.8}
        >>> high = {0.1: 0.4, 0.2: 0.2, 0.3: 0.1, 0.4: 0.1, 0.5: 0.0}
        >>> r = spectral_bias(low, high, acc_clean=0.8)
        >>> lpp, hpp = r["low_freq_bias"], r["high_freq_bias"]
        >>> round(lpp, 4), round(hpp, 4), round(r["spectral_bias"], 4)
        (0.675, 0.2, 0.2286)
        >>> r["low_curve"][0.99]
        1.0
    """
    clean = check_fraction(acc_clean, "acc_clean")
    if clean <= 0:
        raise ValidationError("acc_clean: must be > 0 to form accuracy ratios, got 0")
    low = _spectral_update(acc_low, "acc_low", clean)
    high = _spectral_update(acc_high, "acc_high", clean)
    lpp = _spectral_compute(low, "acc_low", cutoffs)
    hpp = _spectral_compute(high, "acc_high", cutoffs)
    return {
        "low_freq_bias": lpp,
        "high_freq_bias": hpp,
        "spectral_bias": hpp / (lpp + hpp) if lpp + hpp > 0 else float("nan"),
        "low_curve": low,
        "high_curve": high,
    }
