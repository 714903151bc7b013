"""ImageNet-C's corruption errors: CE, mCE and relative mCE, normalized by a baseline model.

Reference: D. Hendrycks, T. Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019 (section 3, "Common corruption robustness").

With ``E[s, c]`` the top-1 error of a model on corruption ``c`` at severity ``s`` (1..5) and
``B[s, c]`` the baseline's (AlexNet's by default):

* corruption error ``CE_c = sum_s E[s, c] / sum_s B[s, c]``;
* ``mCE`` = the mean of ``CE_c`` over the corruptions (ImageNet-C: the 15 of
  :data:`robustlens.transforms.corruptions.IMAGENET_C_CORRUPTIONS`);
* relative corruption error, with the clean errors ``E_clean`` and ``B_clean``:
  ``relCE_c = sum_s (E[s, c] - E_clean) / sum_s (B[s, c] - B_clean)``, and the relative mCE its
  mean over the corruptions.

All are reported in percent, as in the paper: AlexNet's own mCE and relative mCE are 100.
Errors are fractions in [0, 1] (``1 - accuracy``). Everything here is a pure function: no I/O.

The default baseline :data:`ALEXNET_ERRORS` is AlexNet's (torchvision's pretrained AlexNet, the
model the paper normalizes by, per the authors in hendrycks/robustness issue #38) published
per-corruption, per-severity top-1 errors on ImageNet-C, as posted in hendrycks/robustness
issue #10 ("Here are the AlexNet error rates at different severities", in answer to a request
for them; the repository's README points to a spreadsheet for the mCE calculation). The same
table appears in UCSC-VLAA/RobustCNN (``timm/utils/imagenet_c.py``), and its means over the
severities are the per-corruption AlexNet errors used across the literature (``ALEXNET_ERR`` in
google-research/augmix: 0.886428 for Gaussian noise ... 0.606500 for JPEG; checked in the
tests). :data:`ALEXNET_CLEAN_ERROR` is that model's clean top-1 error on ImageNet val, 43.45 %,
as published in torchvision's model documentation (the paper's table rounds it to 43.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_mapping
from robustlens.errors import ValidationError

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "corruption_errors",
    "mce",
    "relative_corruption_errors",
    "relative_mce",
]

#: AlexNet's top-1 error per ImageNet-C corruption and severity (1..5), fractions.
ALEXNET_ERRORS: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
        "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
        "impulse_noise": (0.78374, 0.89808, 0.9487, 0.9872, 0.99548),
        "defocus_blur": (0.656239999999999, 0.73202, 0.85036, 0.91364, 0.94714),
        "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
        "motion_blur": (0.5843, 0.70048, 0.82108, 0.8975, 0.92638),
        "zoom_blur": (0.70008, 0.769919999999999, 0.80784, 0.84198, 0.87198),
        "snow": (0.71726, 0.88392, 0.86468, 0.9187, 0.94952),
        "frost": (0.6139, 0.797339999999999, 0.8879, 0.89942, 0.9343),
        "fog": (0.67474, 0.7605, 0.84378, 0.8726, 0.945),
        "brightness": (0.4514, 0.48502, 0.54048, 0.62166, 0.724399999999999),
        "contrast": (0.64548, 0.7615, 0.88874, 0.9776, 0.9927),
        "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
        "pixelate": (0.52218, 0.5462, 0.737279999999999, 0.87092, 0.91262),
        "jpeg_compression": (0.510019999999999, 0.54718, 0.57294, 0.654579999999999, 0.74778),
    }
)

#: AlexNet's clean top-1 error on ImageNet val (torchvision's published 43.45 %), a fraction.
ALEXNET_CLEAN_ERROR: float = 0.4345


def _error_rate(value: Any, name: str) -> float:
    """One error rate: a finite number in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{name}: expected an error rate in [0, 1], got {type(value).__name__}"
        ) from exc
    if not np.isfinite(v) or not 0.0 <= v <= 1.0:
        hint = "; pass fractions (1 - accuracy), not percent" if v > 1.0 else ""
        raise ValidationError(f"{name}: expected an error rate in [0, 1], got {v!r}{hint}")
    return v


def _error_table(errors: Any, name: str) -> dict[str, np.ndarray]:
    """``{corruption: errors per severity}`` as float64 arrays, checked."""
    check_mapping(
        errors, name, "a mapping {corruption: [error at severity 1, 2, ...]}", "corruption"
    )
    out: dict[str, np.ndarray] = {}
    for corruption, values in errors.items():
        key = f"{name}[{corruption!r}]"
        arr = check_array(values, key, ndim=1, dtype=np.float64)
        if arr.min() < 0.0 or arr.max() > 1.0:
            hint = "; pass fractions (1 - accuracy), not percent" if arr.max() > 1.0 else ""
            raise ValidationError(
                f"{key}: expected error rates in [0, 1], got range "
                f"[{arr.min():.4g}, {arr.max():.4g}]{hint}"
            )
        out[str(corruption)] = arr
    return out


def _paired(
    errors: Any, baseline_errors: Any
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model's and the baseline's tables, with every corruption of the model in both."""
    model = _error_table(errors, "errors")
    base = _error_table(
        ALEXNET_ERRORS if baseline_errors is None else baseline_errors, "baseline_errors"
    )
    missing = [c for c in model if c not in base]
    if missing:
        raise ValidationError(
            f"baseline_errors: expected every corruption of errors, missing {missing}; "
            f"the baseline has {sorted(base)}"
        )
    for c, e in model.items():
        if e.shape != base[c].shape:
            raise ValidationError(
                f"errors[{c!r}]: expected {base[c].shape[0]} severities like the baseline, "
                f"got {e.shape[0]}"
            )
    return model, {c: base[c] for c in model}


def corruption_errors(errors: Any, baseline_errors: Any = None) -> dict[str, float]:
    """Corruption error per corruption, ``CE_c = 100 * sum_s E[s, c] / sum_s B[s, c]``.

    Args:
        errors: ``{corruption: [top-1 error at severity 1, ..., 5]}`` (fractions in [0, 1]).
        baseline_errors: the baseline's errors in the same form (every corruption of
            ``errors``, same number of severities); default :data:`ALEXNET_ERRORS`.

    Returns:
        ``{corruption: CE in percent}`` in the order of ``errors``.

    Example:
        >>> corruption_errors({"fog": [0.5, 0.5]}, {"fog": [0.4, 0.6]})
        {'fog': 100.0}
    """
    model, base = _paired(errors, baseline_errors)
    out: dict[str, float] = {}
    for c, e in model.items():
        denom = float(base[c].sum())
        if denom <= 0.0:
            raise ValidationError(
                f"baseline_errors[{c!r}]: expected a positive sum of errors, got {denom!r}"
            )
        out[c] = 100.0 * float(e.sum()) / denom
    return out


def mce(errors: Any, baseline_errors: Any = None) -> float:
    """Mean corruption error (mCE, percent) of Hendrycks & Dietterich (ICLR 2019).

    ``CE_c = sum_s E[s, c] / sum_s B[s, c]`` per corruption ``c`` (errors summed over the
    severities ``s``, ``B`` the baseline, AlexNet by default), and ``mCE = 100 * mean_c CE_c``
    over the corruptions of ``errors`` (ImageNet-C's mCE: its 15 corruptions).

    Args:
        errors: ``{corruption: [top-1 error at severity 1, ..., 5]}`` (fractions in [0, 1]).
        baseline_errors: the baseline model's errors in the same form; default
            :data:`ALEXNET_ERRORS` (AlexNet's published ImageNet-C errors).

    Returns:
        The mCE in percent (the baseline's own mCE is 100).

    Example:
        Two corruptions, errors summed over the severities: Gaussian noise 3.5 against the
        baseline's 4.0 (CE = 87.5), contrast 2.4 against 3.0 (CE = 80); mCE = (87.5 + 80) / 2.

        >>> errors = {"gaussian_noise": [0.5, 0.6, 0.7, 0.8, 0.9],
        ...           "contrast": [0.2, 0.4, 0.5, 0.6, 0.7]}
        >>> baseline = {"gaussian_noise": [0.6, 0.7, 0.8, 0.9, 1.0],
        ...             "contrast": [0.4, 0.5, 0.6, 0.7, 0.8]}
        >>> round(mce(errors, baseline), 6)
        83.75
        >>> round(mce(ALEXNET_ERRORS), 6)
        100.0
    """
    return float(np.mean(list(corruption_errors(errors, baseline_errors).values())))


def _clean_pair(
    clean_error: Any, baseline_errors: Any, baseline_clean_error: Any
) -> tuple[float, float]:
    clean = _error_rate(clean_error, "clean_error")
    if baseline_clean_error is None:
        if baseline_errors is not None:
            raise ValidationError(
                "baseline_clean_error: expected the baseline's clean error with "
                "baseline_errors, got None"
            )
        return clean, ALEXNET_CLEAN_ERROR
    return clean, _error_rate(baseline_clean_error, "baseline_clean_error")


def relative_corruption_errors(
    errors: Any,
    clean_error: Any,
    baseline_errors: Any = None,
    baseline_clean_error: Any = None,
) -> dict[str, float]:
    """Relative corruption error per corruption (percent).

    ``relCE_c = 100 * sum_s (E[s, c] - E_clean) / sum_s (B[s, c] - B_clean)``: how much
    error a corruption adds, relative to how much it adds to the baseline.

    Args:
        errors: ``{corruption: [top-1 error at severity 1, ..., 5]}`` (fractions in [0, 1]).
        clean_error: the model's clean top-1 error.
        baseline_errors: the baseline's corruption errors; default :data:`ALEXNET_ERRORS`.
        baseline_clean_error: the baseline's clean error; default :data:`ALEXNET_CLEAN_ERROR`
            (required when ``baseline_errors`` is given).

    Returns:
        ``{corruption: relative CE in percent}`` in the order of ``errors``.

    Example:
        >>> relative_corruption_errors({"fog": [0.5, 0.7]}, 0.2, {"fog": [0.6, 0.8]}, 0.4)
        {'fog': 133.33333333333334}
    """
    clean, base_clean = _clean_pair(clean_error, baseline_errors, baseline_clean_error)
    model, base = _paired(errors, baseline_errors)
    out: dict[str, float] = {}
    for c, e in model.items():
        denom = float((base[c] - base_clean).sum())
        if denom <= 0.0:
            raise ValidationError(
                f"baseline_errors[{c!r}]: expected corrupted errors above the baseline's clean "
                f"error {base_clean!r} (sum of differences > 0), got {denom!r}"
            )
        out[c] = 100.0 * float((e - clean).sum()) / denom
    return out


def relative_mce(
    errors: Any,
    clean_error: Any,
    baseline_errors: Any = None,
    baseline_clean_error: Any = None,
) -> float:
    """Relative mean corruption error (percent) of Hendrycks & Dietterich (ICLR 2019).

    ``relCE_c = sum_s (E[s, c] - E_clean) / sum_s (B[s, c] - B_clean)`` per corruption (the
    error a corruption adds over the clean error, relative to the baseline's, AlexNet by
    default), and ``relative mCE = 100 * mean_c relCE_c`` over the corruptions of ``errors``.

    Args:
        errors: ``{corruption: [top-1 error at severity 1, ..., 5]}`` (fractions in [0, 1]).
        clean_error: the model's clean top-1 error (fraction).
        baseline_errors: the baseline model's errors; default :data:`ALEXNET_ERRORS`.
        baseline_clean_error: the baseline's clean error; default :data:`ALEXNET_CLEAN_ERROR`
            (required when ``baseline_errors`` is given).

    Returns:
        The relative mCE in percent (the baseline's own is 100).

    Example:
        The two corruptions of :func:`mce`'s example with clean errors 0.2 (model) and 0.4
        (baseline): Gaussian noise (3.5 - 5 * 0.2) / (4.0 - 5 * 0.4) = 1.25, contrast
        (2.4 - 1.0) / (3.0 - 2.0) = 1.4; relative mCE = (125 + 140) / 2.

        >>> errors = {"gaussian_noise": [0.5, 0.6, 0.7, 0.8, 0.9],
        ...           "contrast": [0.2, 0.4, 0.5, 0.6, 0.7]}
        >>> baseline = {"gaussian_noise": [0.6, 0.7, 0.8, 0.9, 1.0],
        ...             "contrast": [0.4, 0.5, 0.6, 0.7, 0.8]}
        >>> round(relative_mce(errors, 0.2, baseline, 0.4), 6)
        132.5
        >>> round(relative_mce(ALEXNET_ERRORS, ALEXNET_CLEAN_ERROR), 6)
        100.0
    """
    rel = relative_corruption_errors(errors, clean_error, baseline_errors, baseline_clean_error)
    return float(np.mean(list(rel.values())))
