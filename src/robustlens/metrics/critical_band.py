"""Critical band: the spatial-frequency channel a classifier uses to recognise objects.

Reference: A. Subramanian, E. Sizikova, N. J. Majaj, D. G. Pelli, "Spatial-frequency channels,
shape bias, and adversarial robustness", NeurIPS 2023; as evaluated by P. Gavrikov et al.,
"Can Biases in ImageNet Models Explain Generalization?", CVPR 2024.

Exact definition used here
--------------------------
Inputs: ``acc[b, j]``, the accuracy on images with one-octave band noise of band ``b`` (centre
frequency ``f_b`` cycles per image) and standard deviation ``sigma_j`` (ascending, default
:data:`DEFAULT_SIGMAS`); ``clean``, the accuracy on the same low-contrast grayscale images
without noise (``band_noise(..., sigma=0)``); ``chance`` (1 / number of classes).

1. Criterion: ``a* = chance + (clean - chance) / 2`` (accuracy halfway from clean to chance).
2. Threshold of band b: the smallest noise level at which accuracy reaches ``a*``, by linear
   interpolation of accuracy in ``log(sigma)`` between the last level above ``a*`` and the first
   level at or below it::

       t = (acc[j-1] - a*) / (acc[j-1] - acc[j])
       threshold = exp(log sigma_{j-1} + t * (log sigma_j - log sigma_{j-1}))

   If the accuracy is already at or below ``a*`` at the smallest level, threshold = sigma_0
   (an upper bound; flagged in ``left_censored``). If it never falls to ``a*``, threshold = inf.
   A band whose row is all NaN was not measured (threshold NaN, left out of the fit).
3. Sensitivity: ``S_b = max(0, log2(1 / threshold))``; an infinite threshold gives S_b = 0 (the
   band is insensitive to every tested level) and *is* used in the fit, as the Gaussian's tail.
4. Fit over ``x_b = log2(f_b)`` (octaves; equivalent to band index for octave-spaced bands) of
   ``S(x) = A * exp(-(x - mu)^2 / (2 w^2))`` by least squares (``scipy.optimize.curve_fit``).
5. Report: peak sensitivity ``A``; centre frequency ``2^mu`` cycles per image; bandwidth in
   octaves = full width at half maximum ``2 * sqrt(2 ln 2) * |w|``; R^2 of the fit.

The fit fails loudly (:class:`~robustlens.errors.FitError`) when: clean <= chance; fewer than 3
bands have a finite threshold; the sensitivities are flat; ``curve_fit`` does not converge;
a parameter is non-finite; ``A <= 0`` or ``|w|`` is ~0; the peak lies more than one octave
outside the measured bands; or the bandwidth exceeds twice the measured span (no peak).
:func:`critical_band_or_none` turns a FitError into a result with ``ok=False`` and a reason.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize

from robustlens._validation import check_array, check_fraction
from robustlens.errors import FitError, ValidationError

__all__ = [
    "DEFAULT_BANDS_CPI",
    "DEFAULT_SIGMAS",
    "CriticalBandResult",
    "critical_band",
    "critical_band_or_none",
    "noise_thresholds",
]

# Same values as robustlens.transforms.frequency.CRITICAL_BAND_SIGMAS / BAND_CENTRES_CPI_224
# (kept here so that metrics do not import torch; a test checks they agree).
DEFAULT_SIGMAS: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16)
DEFAULT_BANDS_CPI: tuple[float, ...] = tuple(1.75 * 2.0**b for b in range(7))
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_MIN_FINITE_BANDS = 3


@dataclass(frozen=True)
class CriticalBandResult:
    """Outcome of a critical-band fit (see the module docstring for the definitions).

    Attributes:
        ok: whether the fit succeeded; when False the fitted numbers are NaN.
        reason: why the fit failed (None when ok).
        bandwidth_octaves: FWHM of the fitted Gaussian, in octaves.
        centre_cpi: peak frequency ``2^mu``, cycles per image.
        peak_sensitivity: fitted amplitude ``A`` (log2 units of 1 / noise std).
        mu_log2: fitted centre in log2(cycles per image).
        width_octaves: fitted Gaussian standard deviation ``|w|``, octaves.
        r_squared: coefficient of determination of the fit.
        criterion: the accuracy halfway from clean to chance.
        bands_cpi: centre frequency of each band.
        thresholds: per-band threshold noise std (inf: never reached; NaN: not measured).
        sensitivities: per-band ``max(0, log2(1 / threshold))`` (NaN: not measured).
        left_censored: per band, True when the accuracy was already at the criterion at the
            smallest noise level (threshold is an upper bound).
    """

    ok: bool
    reason: str | None
    bandwidth_octaves: float
    centre_cpi: float
    peak_sensitivity: float
    mu_log2: float
    width_octaves: float
    r_squared: float
    criterion: float
    bands_cpi: tuple[float, ...]
    thresholds: tuple[float, ...]
    sensitivities: tuple[float, ...]
    left_censored: tuple[bool, ...]

    def as_dict(self) -> dict[str, Any]:
        """All fields as a plain dict."""
        return asdict(self)

    @classmethod
    def from_fit(
        cls,
        fit: tuple[float, float, float, float],
        criterion: float,
        bands_cpi: Sequence[float],
        thresholds: Sequence[float],
        sensitivities: Sequence[float],
        left_censored: Sequence[bool],
        reason: str | None = None,
    ) -> CriticalBandResult:
        """The result of the Gaussian fit ``(A, mu, |w|, R^2)``; ``reason`` says why it failed
        (then ``ok`` is False and the fit is NaN)."""
        a, mu, w, r2 = fit
        return cls(
            ok=reason is None,
            reason=reason,
            bandwidth_octaves=_FWHM_PER_SIGMA * w,
            centre_cpi=2.0**mu,
            peak_sensitivity=a,
            mu_log2=mu,
            width_octaves=w,
            r_squared=r2,
            criterion=criterion,
            bands_cpi=tuple(float(v) for v in bands_cpi),
            thresholds=tuple(float(v) for v in thresholds),
            sensitivities=tuple(float(v) for v in sensitivities),
            left_censored=tuple(bool(v) for v in left_censored),
        )

    @classmethod
    def failed(
        cls,
        reason: str,
        bands_cpi: Sequence[float],
        criterion: float = math.nan,
        thresholds: Sequence[float] | None = None,
        sensitivities: Sequence[float] | None = None,
        left_censored: Sequence[bool] | None = None,
    ) -> CriticalBandResult:
        """A failed fit: the fitted numbers NaN, the per-band ones NaN unless given.

        Example:
            >>> r = CriticalBandResult.failed("too few bands", [3.5, 7.0])
            >>> r.ok, r.thresholds, r.left_censored
            (False, (nan, nan), (False, False))
        """
        nan_bands = [math.nan] * len(bands_cpi)
        return cls.from_fit(
            (math.nan,) * 4,
            criterion,
            bands_cpi,
            nan_bands if thresholds is None else thresholds,
            nan_bands if sensitivities is None else sensitivities,
            [False] * len(bands_cpi) if left_censored is None else left_censored,
            reason,
        )


def _check_increasing(values: Any, name: str, n: int | None = None) -> np.ndarray:
    arr = check_array(values, name, ndim=1, dtype=np.float64)
    if n is not None and arr.size != n:
        raise ValidationError(
            f"{name}: expected {n} values (one per table column/row), got {arr.size}"
        )
    if np.any(arr <= 0) or np.any(np.diff(arr) <= 0):
        raise ValidationError(f"{name}: expected positive, strictly increasing values, got {arr}")
    return arr


def _thresholds(
    acc: np.ndarray, sigmas: np.ndarray, criterion: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band thresholds (inf: never reached, NaN: row not measured) and left-censoring."""
    thr = np.full(acc.shape[0], np.inf)
    censored = np.zeros(acc.shape[0], dtype=bool)
    log_s = np.log(sigmas)
    for b, row in enumerate(acc):
        if np.all(np.isnan(row)):
            thr[b] = np.nan
            continue
        if np.any(np.isnan(row)):
            raise FitError(
                f"acc_table row {b} has NaN at noise levels {sigmas[np.isnan(row)].tolist()}; "
                "a band is either fully measured or all NaN (not measured)"
            )
        below = np.flatnonzero(row <= criterion)
        if below.size == 0:
            continue
        j = int(below[0])
        if j == 0:
            thr[b] = sigmas[0]
            censored[b] = True
            continue
        t = (row[j - 1] - criterion) / (row[j - 1] - row[j])
        thr[b] = math.exp(log_s[j - 1] + t * (log_s[j] - log_s[j - 1]))
    return thr, censored


def _sensitivity(thr: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        s = np.where(np.isinf(thr), 0.0, np.maximum(0.0, -np.log2(thr)))
    return np.where(np.isnan(thr), np.nan, s)


def _bands_update(bands_cpi: Any, n_bands: int) -> np.ndarray:
    """Validated band centre frequencies (default: the 224 px bands)."""
    if bands_cpi is None:
        if n_bands > len(DEFAULT_BANDS_CPI):
            raise ValidationError(
                f"bands_cpi: required for {n_bands} bands (the default covers 7 bands)"
            )
        bands_cpi = DEFAULT_BANDS_CPI[:n_bands]
    return _check_increasing(bands_cpi, "bands_cpi", n=n_bands)


def _table_update(acc_table: Any, sigmas: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (acc_table, sigmas)."""
    acc = check_array(acc_table, "acc_table", ndim=2, dtype=np.float64, finite=False)
    if np.any(np.isinf(acc)) or np.nanmin(acc, initial=0.0) < 0 or np.nanmax(acc, initial=0) > 1:
        raise ValidationError("acc_table: expected accuracies in [0, 1] (or NaN for a band)")
    return acc, _check_increasing(sigmas, "sigmas", n=acc.shape[1])


def _thresholds_update(
    acc: np.ndarray, sig: np.ndarray, clean_acc: Any, chance: Any
) -> tuple[np.ndarray, float, np.ndarray]:
    """(thresholds, criterion, left_censored); FitError when clean <= chance."""
    clean = check_fraction(clean_acc, "clean_acc")
    ch = check_fraction(chance, "chance")
    if clean <= ch:
        raise FitError(
            f"clean accuracy {clean:.4g} is not above chance {ch:.4g}: "
            "there is no halfway point to find"
        )
    criterion = ch + 0.5 * (clean - ch)
    thr, censored = _thresholds(acc, sig, criterion)
    return thr, criterion, censored


def _gauss(x: np.ndarray, a: float, mu: float, w: float) -> np.ndarray:
    return a * np.exp(-((x - mu) ** 2) / (2.0 * w**2))


def _fit(x: np.ndarray, s: np.ndarray) -> tuple[float, float, float, float]:
    """Fit the Gaussian; return (A, mu, |w|, R^2) or raise FitError."""
    span = float(x.max() - x.min())
    if float(s.max() - s.min()) <= 1e-9 * max(1.0, float(np.abs(s).max())):
        raise FitError(f"sensitivities are flat ({s.tolist()}): no peak to fit")
    p0 = (float(s.max()), float(x[np.argmax(s)]), max(1.0, span / 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            popt, _ = optimize.curve_fit(_gauss, x, s, p0=p0, maxfev=20000)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise FitError(f"Gaussian fit did not converge: {exc}") from exc
    a, mu, w = (float(v) for v in popt)
    w = abs(w)
    if not all(math.isfinite(v) for v in (a, mu, w)):
        raise FitError(f"Gaussian fit returned non-finite parameters A={a}, mu={mu}, w={w}")
    if a <= 0:
        raise FitError(f"Gaussian fit returned a non-positive peak sensitivity A={a:.4g}")
    if w <= 1e-6:
        raise FitError(f"Gaussian fit returned a degenerate width w={w:.3g} octaves")
    if not (x.min() - 1.0 <= mu <= x.max() + 1.0):
        raise FitError(
            f"fitted peak at log2 frequency {mu:.4g} (cycles/image) lies more than one octave "
            "outside the "
            f"measured bands [{2.0 ** x.min():.4g}, {2.0 ** x.max():.4g}] cycles/image"
        )
    fwhm = _FWHM_PER_SIGMA * w
    if fwhm > 2.0 * max(span, 1.0):
        raise FitError(
            f"fitted bandwidth {fwhm:.3g} octaves exceeds twice the measured span "
            f"({span:.3g} octaves): the curve has no clear peak"
        )
    resid = s - _gauss(x, a, mu, w)
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    return a, mu, w, r2


def noise_thresholds(
    acc_table: Any,
    clean_acc: float,
    chance: float,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
) -> np.ndarray:
    """Per-band threshold noise std: where accuracy falls halfway from clean to chance.

    ``a* = chance + (clean - chance) / 2``; accuracy is interpolated linearly in log(sigma)
    between the bracketing levels (step 2 of the module docstring). inf: never reached; NaN:
    band not measured (all-NaN row); sigma_0 when already reached at the smallest level.

    Reference: Subramanian et al., NeurIPS 2023.

    Args:
        acc_table: (n_bands, n_sigmas) accuracies in [0, 1].
        clean_acc: accuracy without noise (same low-contrast grayscale images).
        chance: chance accuracy (1 / number of classes).
        sigmas: the noise levels of the columns, ascending.

    Returns:
        (n_bands,) float array of thresholds.

    Example:
        >>> acc = [[0.8, 0.6, 0.4, 0.2],  # crosses 0.5 halfway between 0.04 and 0.08
        ...        [0.9, 0.9, 0.8, 0.7]]  # never reaches 0.5
        >>> noise_thresholds(acc, clean_acc=0.9, chance=0.1).round(4).tolist()
        [0.0566, inf]
    """
    acc, sig = _table_update(acc_table, sigmas)
    return _thresholds_update(acc, sig, clean_acc, chance)[0]


def critical_band(
    acc_table: Any,
    clean_acc: float,
    chance: float,
    bands_cpi: Sequence[float] | None = None,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
) -> CriticalBandResult:
    """Critical band of a classifier: Gaussian fit of noise sensitivity over frequency.

    Per band b: ``threshold_b`` = noise std where accuracy falls halfway from clean to chance
    (log-linear interpolation), ``S_b = max(0, log2(1 / threshold_b))`` (0 if never reached);
    fit ``S(x) = A exp(-(x - mu)^2 / 2 w^2)`` over ``x = log2(f_b)``. Bandwidth = FWHM
    ``2 sqrt(2 ln 2) |w|`` octaves, centre = ``2^mu`` cycles per image, peak sensitivity = A.
    See the module docstring for every edge case.

    Reference: Subramanian et al., "Spatial-frequency channels, shape bias, and adversarial
    robustness", NeurIPS 2023.

    Args:
        acc_table: (n_bands, n_sigmas) accuracies in [0, 1]; a row of NaN = band not measured.
        clean_acc: accuracy on the noise-free low-contrast grayscale images.
        chance: chance accuracy (1 / number of classes).
        bands_cpi: centre frequency of each row in cycles per image, ascending (default:
            1.75 * 2^b, the 224 px bands; pass ``band_centre_cpi`` values for other sizes).
        sigmas: the noise std of each column, ascending (default (0.02, 0.04, 0.08, 0.16)).

    Returns:
        A :class:`CriticalBandResult` with ``ok=True``.

    Raises:
        FitError: the fit failed or is not meaningful (see the module docstring).
        ValidationError: malformed inputs (shapes, ranges).

    Example:
        >>> acc = [[0.9, 0.85, 0.8, 0.7],   # 1.75 cpi: never at 0.5 -> S = 0
        ...        [0.8, 0.6, 0.4, 0.2],    # 3.5 cpi: threshold 0.0566 -> S = 4.14
        ...        [0.6, 0.4, 0.2, 0.1],    # 7 cpi: threshold 0.0283 -> S = 5.14
        ...        [0.8, 0.6, 0.4, 0.2],    # 14 cpi
        ...        [0.9, 0.85, 0.8, 0.7]]   # 28 cpi
        >>> r = critical_band(acc, clean_acc=0.9, chance=0.1)
        >>> round(r.centre_cpi, 2), round(r.bandwidth_octaves, 2), round(r.peak_sensitivity, 2)
        (7.0, 2.34, 5.75)
    """
    acc, sig = _table_update(acc_table, sigmas)
    f = _bands_update(bands_cpi, acc.shape[0])
    thr, criterion, censored = _thresholds_update(acc, sig, clean_acc, chance)
    sens = _sensitivity(thr)
    n_finite = int(np.sum(np.isfinite(thr)))
    if n_finite < _MIN_FINITE_BANDS:
        raise FitError(
            f"only {n_finite} band(s) reach the halfway criterion {criterion:.4g} "
            f"(need at least {_MIN_FINITE_BANDS}); thresholds: {thr.tolist()}"
        )
    used = ~np.isnan(sens)
    fit = _fit(np.log2(f[used]), sens[used])
    return CriticalBandResult.from_fit(fit, criterion, f, thr, sens, censored)


def critical_band_or_none(
    acc_table: Any,
    clean_acc: float,
    chance: float,
    bands_cpi: Sequence[float] | None = None,
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
) -> CriticalBandResult:
    """Like :func:`critical_band`, but a failed fit gives ``ok=False`` and a ``reason``.

    Only :class:`~robustlens.errors.FitError` is caught (malformed inputs still raise
    ValidationError). The fitted numbers are NaN; thresholds and sensitivities are filled when
    they could be computed.

    Reference: Subramanian et al., NeurIPS 2023.

    Args:
        acc_table: see :func:`critical_band`.
        clean_acc: see :func:`critical_band`.
        chance: see :func:`critical_band`.
        bands_cpi: see :func:`critical_band`.
        sigmas: see :func:`critical_band`.

    Returns:
        A :class:`CriticalBandResult`.

    Example:
        >>> flat = [[0.9, 0.9, 0.9, 0.9]] * 4
        >>> r = critical_band_or_none(flat, clean_acc=0.9, chance=0.1)
        >>> r.ok, r.reason[:26]
        (False, 'only 0 band(s) reach the h')
    """
    try:
        return critical_band(acc_table, clean_acc, chance, bands_cpi, sigmas)
    except FitError as exc:
        acc, sig = _table_update(acc_table, sigmas)
        f = _bands_update(bands_cpi, acc.shape[0])
        try:
            thr, criterion, censored = _thresholds_update(acc, sig, clean_acc, chance)
        except FitError:
            return CriticalBandResult.failed(str(exc), f)
        return CriticalBandResult.failed(str(exc), f, criterion, thr, _sensitivity(thr), censored)
