"""Critical band: the spatial-frequency channel a classifier uses to recognise objects.

Reference: A. Subramanian, E. Sizikova, N. J. Majaj, D. G. Pelli, "Spatial-frequency channels,
shape bias, and adversarial robustness", NeurIPS 2023 (``analysis/analysis.py``:
``find_thresholds``, ``fit_gaussian``, ``channel_props``); as evaluated by P. Gavrikov et al.,
"Can Biases in ImageNet Models Explain Generalization?", CVPR 2024.

Exact definition (the reference's, by default)
----------------------------------------------
Input: ``acc[j, b]``, the top-1 accuracy with noise level j (rows: noise SD 0, 0.02, 0.04,
0.08, 0.16, :data:`NOISE_SDS`; row 0 is the noise-free low-contrast grayscale stimulus) in band
b (columns, ascending band index, default 0..6). This is the reference's 5 x 7 matrix.

1. Criterion ``a*``: 0.5 (``criterion="absolute"``, the reference's ``threshold_acc=50``).
2. Threshold of band b: scanning the noise levels from the highest down, the number of levels
   passed before the first one whose accuracy is strictly above ``a*``::

       for j in 0..J-1:            # J = number of rows (5)
           if acc[J-1-j, b] > a*: break
       threshold_b = j

   So 0 when even the highest noise leaves the accuracy above ``a*``, J-1 (4) when only the
   noise-free level does -- and also 4 when no level does (the reference's loop ends at
   ``j = J-1``). Larger means more sensitive to that band's noise.
3. Fit ``T(x) = A exp(-(x - mu)^2 / (2 s^2))`` to the thresholds over the band index ``x``
   with ``scipy.optimize.curve_fit``, ``p0 = (1, 0, 1)``, ``A`` bounded to ``[0, J-1]``
   (``[0, 4]``), ``mu`` and ``s`` unbounded: always fitted, however few bands reach ``a*``.
   (``x`` is counted from the first measured band, so ``p0`` means what it means in the
   reference when the bands are 0..6, and ``mu`` is reported back in band index.)
4. Report: bandwidth = FWHM ``2 sqrt(ln 4) |s|`` octaves (bands are an octave apart; the
   reference reports the signed ``s``, which only differs when the fit lands on ``s < 0``);
   peak frequency ``1.75 * 2^mu`` cycles per image at 224 px (times ``side / 224`` at other
   sizes, see ``robustlens.transforms.frequency.band_centre_cpi``); peak noise sensitivity
   ``2^(A - (J-1))`` = ``2^(A - 4)``; and the fit's quality: ``R^2`` and the RMS residual
   (``R^2`` is NaN when all thresholds are equal).

A fit is ``ok`` unless ``curve_fit`` raises, or the noise-free accuracy (row 0) of some band is
not above ``a*``: then every threshold of that band is the maximum by construction and the
critical band says nothing about the model (the reference reports numbers anyway). Equal
thresholds in every band (e.g. all 4 for a model just above ``a*`` that any noise defeats)
leave ``mu`` and ``s`` unidentified: the fit stays ``ok`` (as in the reference, whose own
table has bandwidths of 11,000 octaves from such fits) and ``warning`` says so.

The relative criterion (an option, off by default)
--------------------------------------------------
``criterion="relative"``: ``a* = chance + (clean - chance) / 2`` with ``clean`` the mean
noise-free accuracy (row 0). It exists for models whose noise-free accuracy on the
low-contrast grayscale stimulus is below 50 % (small models, few-class data sets, 1000-class
models on hard data): with the absolute criterion their every threshold is 4 and no critical
band is defined. Its numbers are not comparable with the published ones.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_fraction
from robustlens.errors import FitError, ValidationError

__all__ = [
    "CRITERIA",
    "DEFAULT_BANDS_CPI",
    "DEFAULT_SIGMAS",
    "NOISE_SDS",
    "CriticalBandResult",
    "criterion_accuracy",
    "critical_band",
    "critical_band_or_none",
    "fit_gaussian",
    "noise_thresholds",
]

# Same values as robustlens.transforms.frequency.CRITICAL_BAND_SIGMAS / BAND_CENTRES_CPI_224
# (kept here so that metrics do not import torch; a test checks they agree).
DEFAULT_SIGMAS: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16)
#: the rows of the reference's accuracy matrix: noise-free, then the positive SDs
NOISE_SDS: tuple[float, ...] = (0.0, *DEFAULT_SIGMAS)
DEFAULT_BANDS_CPI: tuple[float, ...] = tuple(1.75 * 2.0**b for b in range(7))
#: the criteria: "absolute" (the reference, 50 % top-1) and "relative" (an option)
CRITERIA: tuple[str, ...] = ("absolute", "relative")
_FWHM_PER_SIGMA = 2.0 * math.sqrt(math.log(4.0))  # the reference's 2 sqrt(ln 4) = 2.3548
_P0 = (1.0, 0.0, 1.0)  # the reference's initial (A, mu, sigma)


@dataclass(frozen=True)
class CriticalBandResult:
    """Outcome of a critical-band fit (see the module docstring for the definitions).

    Attributes:
        ok: whether the critical band is defined (see the module docstring).
        reason: why not (None when ok).
        warning: a caveat of an ok fit (equal thresholds: centre and width unidentified).
        bandwidth_octaves: FWHM of the fitted Gaussian, ``2 sqrt(ln 4) |s|`` octaves.
        centre_cpi: peak frequency ``1.75 * 2^mu * side / 224`` cycles per image.
        peak_sensitivity: peak noise sensitivity ``2^(A - n_steps)`` (the reference's PNS).
        amplitude: the fitted ``A`` (noise steps, in ``[0, n_steps]``).
        mu_band: the fitted centre ``mu`` in band index.
        sigma_band: the fitted ``s`` in bands (signed, as fitted).
        mu_log2: ``log2(centre_cpi)``, the centre on the log2-frequency axis.
        width_octaves: ``|s|``, the Gaussian's standard deviation in octaves.
        r_squared: coefficient of determination of the fit (NaN for equal thresholds).
        rmse: root-mean-square residual of the fit, in noise steps.
        criterion: the accuracy criterion ``a*``.
        criterion_kind: ``"absolute"`` or ``"relative"``.
        n_steps: the number of positive noise levels (the bound of ``A``).
        clean_accuracy: per band, the noise-free accuracy (row 0 of the table).
        bands: the band indices.
        bands_cpi: the band centres in cycles per image (``1.75 * 2^b * side / 224``).
        thresholds: per band, the threshold in noise steps (the values fitted).
        sensitivities: the same values as ``thresholds`` (what the Gaussian is fitted to; kept
            under this name for plots).
        side: the image side the frequencies refer to.
    """

    ok: bool
    reason: str | None
    warning: str | None
    bandwidth_octaves: float
    centre_cpi: float
    peak_sensitivity: float
    amplitude: float
    mu_band: float
    sigma_band: float
    mu_log2: float
    width_octaves: float
    r_squared: float
    rmse: float
    criterion: float
    criterion_kind: str
    n_steps: int
    clean_accuracy: tuple[float, ...]
    bands: tuple[int, ...]
    bands_cpi: tuple[float, ...]
    thresholds: tuple[float, ...]
    sensitivities: tuple[float, ...]
    side: int

    def as_dict(self) -> dict[str, Any]:
        """All fields as a plain dict."""
        return asdict(self)


def _bands_update(bands: Any, n: int) -> np.ndarray:
    """Validated band indices (default 0..n-1)."""
    if bands is None:
        return np.arange(n)
    arr = check_array(bands, "bands", ndim=1, dtype=np.float64)
    if arr.size != n:
        raise ValidationError(f"bands: expected {n} band indices (one per column), got {arr.size}")
    if np.any(arr < 0) or np.any(arr != np.round(arr)) or np.any(np.diff(arr) <= 0):
        raise ValidationError(
            f"bands: expected non-negative, strictly increasing integers, got {arr.tolist()}"
        )
    return arr.astype(np.int64)


def _table_update(acc_table: Any) -> np.ndarray:
    """Validated (n_levels, n_bands) accuracy table."""
    acc = check_array(acc_table, "acc_table", ndim=2, dtype=np.float64)
    if acc.shape[0] < 2 or acc.shape[1] < 1:
        raise ValidationError(
            "acc_table: expected rows = noise levels (the first noise-free) and columns = "
            f"bands, at least 2 x 1, got shape {acc.shape}"
        )
    if np.min(acc) < 0 or np.max(acc) > 1:
        raise ValidationError(
            "acc_table: expected accuracies in [0, 1] (fractions, not percentages)"
        )
    return acc


def criterion_accuracy(
    acc_table: Any,
    criterion: str = "absolute",
    *,
    level: float = 0.5,
    chance: float | None = None,
) -> float:
    """The accuracy criterion ``a*`` of :func:`noise_thresholds`.

    ``"absolute"``: ``level`` (0.5, the reference). ``"relative"``: halfway from the mean
    noise-free accuracy (row 0) to ``chance``; raises FitError when that accuracy is not
    above chance.

    Example:
        >>> table = [[0.75, 0.25], [0.5, 0.125]]  # noise-free mean 0.5
        >>> criterion_accuracy(table), criterion_accuracy(table, "relative", chance=0.25)
        (0.5, 0.375)
    """
    acc = _table_update(acc_table)
    if criterion == "absolute":
        return check_fraction(level, "level")
    if criterion != "relative":
        raise ValidationError(f"criterion: expected one of {list(CRITERIA)}, got {criterion!r}")
    if chance is None:
        raise ValidationError("chance: the relative criterion needs the chance accuracy")
    ch = check_fraction(chance, "chance")
    clean = float(np.mean(acc[0]))
    if clean <= ch:
        raise FitError(
            f"noise-free accuracy {clean:.4g} is not above chance {ch:.4g}: the relative "
            "criterion (halfway from it to chance) is undefined"
        )
    return ch + 0.5 * (clean - ch)


def noise_thresholds(acc_table: Any, criterion: float = 0.5) -> np.ndarray:
    """Per-band thresholds in noise steps, exactly as the reference's ``find_thresholds``.

    For each column (band), scanning the rows (noise levels) from the last (highest noise)
    up, the number of rows passed before the first accuracy strictly above ``criterion``;
    ``J - 1`` when none is (J rows).

    Args:
        acc_table: (n_levels, n_bands) accuracies in [0, 1]; row 0 noise-free.
        criterion: the accuracy criterion ``a*``.

    Returns:
        (n_bands,) int array.

    Example:
        >>> acc = [[0.9, 0.9, 0.4],   # SD 0
        ...        [0.8, 0.9, 0.3],   # SD 0.02
        ...        [0.6, 0.4, 0.2],   # SD 0.04
        ...        [0.4, 0.3, 0.1],   # SD 0.08
        ...        [0.3, 0.6, 0.1]]   # SD 0.16
        >>> noise_thresholds(acc).tolist()  # the last band never passes: J - 1 = 4, not 5
        [2, 0, 4]
    """
    acc = _table_update(acc_table)
    n = acc.shape[0]
    out = np.empty(acc.shape[1], dtype=np.int64)
    for b in range(acc.shape[1]):
        j = 0
        for j in range(n):
            if acc[n - 1 - j, b] > criterion:
                break
        out[b] = j
    return out


def _gauss(x: np.ndarray, a: float, mu: float, s: float) -> np.ndarray:
    return a * np.exp(-((x - mu) ** 2) / (2.0 * s**2))


def fit_gaussian(thresholds: Any, upper: float = 4.0) -> tuple[float, float, float]:
    """The reference's ``fit_gaussian``: ``(A, mu, s)`` of ``A exp(-(x - mu)^2 / 2 s^2)``.

    Fitted over ``x = 0, 1, ..., n-1`` by ``scipy.optimize.curve_fit`` with ``p0 = (1, 0, 1)``
    and bounds ``A in [0, upper]``, ``mu`` and ``s`` free (the bounded trust-region solver).

    Raises:
        FitError: ``curve_fit`` did not converge or returned non-finite parameters.

    Example:
        >>> a, mu, s = fit_gaussian([0, 1, 3, 4, 3, 1, 0])
        >>> round(a, 2), round(mu, 2), round(abs(s), 2)
        (4.0, 3.0, 1.21)
    """
    from scipy import optimize  # lazy: scipy costs ~1 s to import

    y = check_array(thresholds, "thresholds", ndim=1, dtype=np.float64)
    x = np.arange(y.size, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            popt, _ = optimize.curve_fit(
                _gauss,
                x,
                y,
                p0=_P0,
                bounds=((0.0, -np.inf, -np.inf), (float(upper), np.inf, np.inf)),
            )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise FitError(f"Gaussian fit did not converge: {exc}") from exc
    a, mu, s = (float(v) for v in popt)
    if not all(math.isfinite(v) for v in (a, mu, s)):
        raise FitError(f"Gaussian fit returned non-finite parameters A={a}, mu={mu}, s={s}")
    return a, mu, s


def _table_fields(
    acc: np.ndarray, idx: np.ndarray, thr: np.ndarray, a_star: float, criterion: str, side: int
) -> dict[str, Any]:
    """The fields of a :class:`CriticalBandResult` that describe the table, not the fit."""
    return {
        "criterion": a_star,
        "criterion_kind": criterion,
        "n_steps": acc.shape[0] - 1,
        "clean_accuracy": tuple(float(v) for v in acc[0]),
        "bands": tuple(int(b) for b in idx),
        "bands_cpi": tuple(1.75 * 2.0 ** int(b) * side / 224.0 for b in idx),
        "thresholds": tuple(float(t) for t in thr),
        "sensitivities": tuple(float(t) for t in thr),
        "side": int(side),
    }


def critical_band(
    acc_table: Any,
    bands: Sequence[int] | None = None,
    *,
    criterion: str = "absolute",
    level: float = 0.5,
    chance: float | None = None,
    side: int = 224,
) -> CriticalBandResult:
    """Critical band of a classifier from its (noise level x band) accuracy table.

    The reference's thresholds (:func:`noise_thresholds`), Gaussian fit (:func:`fit_gaussian`)
    and channel properties: bandwidth ``2 sqrt(ln 4) |s|`` octaves, peak frequency
    ``1.75 * 2^mu * side / 224`` cycles per image, peak noise sensitivity ``2^(A - 4)``, with
    the fit's R^2 and RMS residual. See the module docstring for every rule.

    Reference: Subramanian et al., NeurIPS 2023 (``analysis/analysis.py``).

    Args:
        acc_table: (n_levels, n_bands) accuracies in [0, 1]: rows noise SD 0, 0.02, 0.04,
            0.08, 0.16 (:data:`NOISE_SDS`; row 0 noise-free), columns the bands.
        bands: band index of each column, ascending (default 0..n_bands-1).
        criterion: ``"absolute"`` (default, the reference) or ``"relative"``.
        level: the absolute criterion (0.5).
        chance: chance accuracy, for the relative criterion.
        side: image side in pixels (224 in the reference), for the peak frequency.

    Returns:
        A :class:`CriticalBandResult`; ``ok`` False when the noise-free accuracy of a band is
        not above the criterion (the fitted numbers are still filled in).

    Raises:
        FitError: the fit did not converge, or the relative criterion is undefined.
        ValidationError: malformed inputs.

    Example:
        >>> acc = [[0.9] * 7,                                   # noise-free
        ...        [0.9, 0.9, 0.8, 0.3, 0.8, 0.9, 0.9],          # SD 0.02
        ...        [0.9, 0.8, 0.4, 0.2, 0.4, 0.8, 0.9],          # SD 0.04
        ...        [0.9, 0.3, 0.2, 0.1, 0.2, 0.3, 0.9],          # SD 0.08
        ...        [0.6, 0.2, 0.1, 0.1, 0.1, 0.2, 0.6]]          # SD 0.16
        >>> r = critical_band(acc)
        >>> r.thresholds
        (0.0, 2.0, 3.0, 4.0, 3.0, 2.0, 0.0)
        >>> round(r.centre_cpi, 2), round(r.bandwidth_octaves, 2), round(r.peak_sensitivity, 3)
        (14.0, 3.46, 0.981)
    """
    acc = _table_update(acc_table)
    idx = _bands_update(bands, acc.shape[1])
    if isinstance(side, bool) or int(side) != side or side < 1:
        raise ValidationError(f"side: expected a positive integer, got {side!r}")
    a_star = criterion_accuracy(acc, criterion, level=level, chance=chance)
    thr = noise_thresholds(acc, a_star)
    n_steps = acc.shape[0] - 1
    a, mu_rel, s = fit_gaussian(thr, upper=n_steps)
    mu = mu_rel + float(idx[0])
    try:
        centre = 1.75 * 2.0**mu * side / 224.0
    except OverflowError:
        centre = math.inf
    if not 0 < centre < math.inf:
        raise FitError(
            f"the fitted centre mu = {mu:.4g} (band index) puts the peak frequency outside the "
            "floating-point range: no critical band"
        )
    resid = thr - _gauss(np.arange(thr.size, dtype=np.float64), a, mu_rel, s)
    ss_tot = float(np.sum((thr - thr.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan
    below = [int(b) for b, v in zip(idx, acc[0], strict=True) if not v > a_star]
    reason = None
    if below:
        reason = (
            f"the noise-free accuracy of band(s) {below} ({acc[0].min():.4g}) is not above the "
            f"criterion {a_star:.4g}: their thresholds are the maximum by construction, and "
            "the critical band is undefined for this model on these images"
        )
    warning = None
    if ss_tot == 0:
        warning = (
            f"every band has the same threshold ({int(thr[0])} noise steps): the Gaussian's "
            "centre and width are not identified by the data (R^2 undefined)"
        )
    return CriticalBandResult(
        ok=reason is None,
        reason=reason,
        warning=warning,
        bandwidth_octaves=_FWHM_PER_SIGMA * abs(s),
        centre_cpi=centre,
        peak_sensitivity=2.0 ** (a - n_steps),
        amplitude=a,
        mu_band=mu,
        sigma_band=s,
        mu_log2=math.log2(centre),
        width_octaves=abs(s),
        r_squared=r2,
        rmse=float(np.sqrt(np.mean(resid**2))),
        **_table_fields(acc, idx, thr, a_star, criterion, side),
    )


def critical_band_or_none(acc_table: Any, *args: Any, **kwargs: Any) -> CriticalBandResult:
    """Like :func:`critical_band`, but a :class:`~robustlens.errors.FitError` gives ``ok=False``.

    Takes the arguments of :func:`critical_band`. The fitted numbers are then NaN; the
    thresholds are filled when they could be computed. Malformed inputs still raise
    ValidationError.

    Example:
        >>> acc = [[0.3] * 3, [0.3] * 3]  # noise-free accuracy at chance
        >>> r = critical_band_or_none(acc, criterion="relative", chance=0.3)
        >>> r.ok, r.reason[:40], r.thresholds
        (False, 'noise-free accuracy 0.3 is not above cha', (nan, nan, nan))
    """
    try:
        return critical_band(acc_table, *args, **kwargs)
    except FitError as exc:
        bound = inspect.signature(critical_band).bind(acc_table, *args, **kwargs)
        bound.apply_defaults()
        o = bound.arguments
        criterion, side = o["criterion"], o["side"]
        acc = _table_update(acc_table)
        idx = _bands_update(o["bands"], acc.shape[1])
        try:
            a_star = criterion_accuracy(acc, criterion, level=o["level"], chance=o["chance"])
            thr = noise_thresholds(acc, a_star).astype(np.float64)
        except FitError:
            a_star, thr = math.nan, np.full(acc.shape[1], math.nan)
        nan = math.nan
        return CriticalBandResult(
            ok=False,
            reason=str(exc),
            warning=None,
            bandwidth_octaves=nan,
            centre_cpi=nan,
            peak_sensitivity=nan,
            amplitude=nan,
            mu_band=nan,
            sigma_band=nan,
            mu_log2=nan,
            width_octaves=nan,
            r_squared=nan,
            rmse=nan,
            **_table_fields(acc, idx, thr, a_star, criterion, side),
        )
