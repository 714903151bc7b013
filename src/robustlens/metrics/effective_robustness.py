"""Effective robustness against a baseline fitted on standard models.

References:
    R. Taori, A. Dave, V. Shankar, N. Carlini, B. Recht, L. Schmidt, "Measuring Robustness to
    Natural Distribution Shifts in Image Classification", NeurIPS 2020.
    H. Bansal, A. Grover, "Leaving Reality to Imagination: Robust Classification via
    Generated Datasets", 2023 (seed 004: effective robustness of models trained on real +
    generated images).

Accuracies (in-distribution ``acc_id`` and shifted ``acc_ood``) are fractions in [0, 1]. On
logit (or probit) axes, standard models lie close to a line
``T(acc_ood) = slope * T(acc_id) + intercept``; a model's effective robustness (ER) is how far
its OOD accuracy lies above that line, measured back on the accuracy scale:
``ER = acc_ood - T^-1(slope * T(acc_id) + intercept)``.

Accuracies are clipped to ``[EPS, 1 - EPS]`` with ``EPS = 1e-6`` before a transform, so 0 and
1 map to finite values (logit(1e-6) ~ -13.8, probit(1e-6) ~ -4.75).

Everything here is a pure function on arrays: no I/O, no model calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robustlens._validation import check_array, check_consistent_length
from robustlens.errors import FitError, ValidationError

__all__ = [
    "EPS",
    "IMAGENET_BASELINES",
    "IMAGENET_SHIFTS",
    "TRANSFORMS",
    "Baseline",
    "effective_robustness",
    "fit_baseline",
    "imagenet_baseline",
    "inv_logit",
    "inv_probit",
    "logit",
    "probit",
    "relative_robustness",
]

#: Accuracies are clipped to [EPS, 1 - EPS] before the logit or probit transform.
EPS = 1e-6

#: The axis transforms :func:`fit_baseline` and :func:`effective_robustness` accept.
TRANSFORMS = ("logit", "probit")


def _acc(acc: Any, name: str) -> np.ndarray:
    """Accuracies as float64, checked to lie in [0, 1] (fractions, not percent)."""
    a = check_array(acc, name, dtype=np.float64, min_rows=0)
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        hint = "; pass fractions, not percent" if a.max() > 1.0 else ""
        raise ValidationError(
            f"{name}: expected accuracies in [0, 1], got range [{a.min():.4g}, {a.max():.4g}]"
            + hint
        )
    return a


def _out(x: np.ndarray) -> float | np.ndarray:
    """0-d results come back as a Python float, others as arrays."""
    return float(x) if np.ndim(x) == 0 else x


def _check_transform(transform: str) -> str:
    if transform not in TRANSFORMS:
        raise ValidationError(f"transform: expected one of {list(TRANSFORMS)}, got {transform!r}")
    return transform


def _to_axis(acc: Any, fn: Any) -> float | np.ndarray:
    """``fn`` of accuracies checked to lie in [0, 1] and clipped to ``[EPS, 1 - EPS]``."""
    return _out(fn(np.clip(_acc(acc, "acc"), EPS, 1.0 - EPS)))


def _from_axis(t: Any, fn: Any) -> float | np.ndarray:
    """``fn`` (an inverse transform) of finite values on a transformed axis."""
    return _out(fn(check_array(t, "t", dtype=np.float64, min_rows=0)))


def logit(acc: Any) -> float | np.ndarray:
    """Logit of an accuracy: ``log(a / (1 - a))`` with a clipped to ``[EPS, 1 - EPS]``.

    The x- and y-axis scale of Taori et al. (NeurIPS 2020).

    Args:
        acc: accuracy (float or array) in [0, 1].

    Returns:
        float for a scalar, otherwise a float64 array of the same shape.

    Example:
        >>> round(logit(0.75), 4)
        1.0986
        >>> logit([0.5, 1.0]).round(2).tolist()
        [0.0, 13.82]
    """
    return _to_axis(acc, lambda a: np.log(a) - np.log1p(-a))


def inv_logit(t: Any) -> float | np.ndarray:
    """Inverse of :func:`logit`: the sigmoid ``1 / (1 + exp(-t))`` (Taori et al. 2020).

    Args:
        t: value(s) on the logit axis.

    Returns:
        accuracy in [0, 1]: a float for a scalar, otherwise an array.

    Example:
        >>> round(inv_logit(1.0986), 4)
        0.75
    """
    from scipy.special import expit  # lazy: scipy costs ~1 s to import

    return _from_axis(t, expit)


def probit(acc: Any) -> float | np.ndarray:
    """Probit of an accuracy: ``Phi^-1(a)`` (``scipy.stats.norm.ppf``), a in ``[EPS, 1 - EPS]``.

    The axis scale used in Taori et al. (NeurIPS 2020) plots; arguments and result as
    :func:`logit`.

    Example:
        >>> round(probit(0.975), 3)
        1.96
    """
    from scipy.stats import norm  # lazy: scipy costs ~1 s to import

    return _to_axis(acc, norm.ppf)


def inv_probit(t: Any) -> float | np.ndarray:
    """Inverse of :func:`probit`, the standard normal CDF ``Phi(t)``; as :func:`inv_logit`.

    Example:
        >>> round(inv_probit(1.96), 3)
        0.975
    """
    from scipy.stats import norm  # lazy: scipy costs ~1 s to import

    return _from_axis(t, norm.cdf)


_FORWARD = {"logit": logit, "probit": probit}
_INVERSE = {"logit": inv_logit, "probit": inv_probit}


@dataclass(frozen=True)
class Baseline:
    """A linear fit ``T(acc_ood) = slope * T(acc_id) + intercept`` (Taori et al. 2020).

    Attributes:
        slope, intercept: the line on transformed axes.
        transform: ``"logit"`` or ``"probit"``.
        r2: coefficient of determination of the fit on the transformed axes (None when
            unknown, e.g. for the shipped baselines).
        n: number of models the line was fitted on (None when unknown).
    """

    slope: float
    intercept: float
    transform: str = "logit"
    r2: float | None = None
    n: int | None = None

    def __post_init__(self) -> None:
        _check_transform(self.transform)

    def predict(self, acc_id: Any) -> float | np.ndarray:
        """Baseline OOD accuracy ``T^-1(slope * T(acc_id) + intercept)`` for ``acc_id``.

        Example:
            >>> round(Baseline(1.0, 0.0, "logit").predict(0.8), 4)
            0.8
        """
        t = np.asarray(_FORWARD[self.transform](acc_id), dtype=np.float64)
        return _INVERSE[self.transform](self.slope * t + self.intercept)


def fit_baseline(acc_id: Any, acc_ood: Any, transform: str = "logit") -> Baseline:
    """Least-squares baseline of standard models (Taori et al., NeurIPS 2020).

    Fits ``T(acc_ood) = slope * T(acc_id) + intercept`` by ordinary least squares, T the
    logit or probit; ``r2 = 1 - SS_res / SS_tot`` on the transformed axes (1 when SS_tot is
    0 and the fit is exact).

    Args:
        acc_id: (n,) in-distribution accuracies of standard-trained models, in [0, 1].
        acc_ood: (n,) their accuracies on the shifted set.
        transform: ``"logit"`` or ``"probit"``.

    Returns:
        :class:`Baseline` with slope, intercept, transform, r2 and n.

    Raises:
        FitError: fewer than 2 models, or all T(acc_id) equal (the slope is undefined).

    Example:
        >>> b = fit_baseline([0.5, 0.731059, 0.880797], [0.268941, 0.5, 0.731059])
        >>> round(b.slope, 3), round(b.intercept, 3), round(b.r2, 3), b.n
        (1.0, -1.0, 1.0, 3)
    """
    _check_transform(transform)
    x_acc = _acc(acc_id, "acc_id").reshape(-1)
    y_acc = _acc(acc_ood, "acc_ood").reshape(-1)
    n = check_consistent_length(("acc_id", x_acc), ("acc_ood", y_acc))
    if n < 2:
        raise FitError(f"fit_baseline needs at least 2 models to fit a line, got {n}")
    x = np.asarray(_FORWARD[transform](x_acc), dtype=np.float64)
    y = np.asarray(_FORWARD[transform](y_acc), dtype=np.float64)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx <= 1e-12 * max(1.0, float(x @ x)):
        raise FitError(
            f"fit_baseline: all {n} in-distribution accuracies are equal on the {transform} "
            "axis, so the slope is undefined; use models with different accuracies"
        )
    slope = float(xc @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    resid = y - (slope * x + intercept)
    ss_res = float(resid @ resid)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return Baseline(slope=slope, intercept=intercept, transform=transform, r2=r2, n=n)


def _as_baseline(baseline: Any, transform: str | None) -> Baseline:
    if isinstance(baseline, Baseline):
        if transform is not None and _check_transform(transform) != baseline.transform:
            raise ValidationError(
                f"transform: {transform!r} disagrees with the baseline, which was fitted on "
                f"{baseline.transform!r} axes"
            )
        return baseline
    try:
        slope, intercept = (float(v) for v in baseline)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"baseline: expected a Baseline or a (slope, intercept) pair, got {baseline!r}"
        ) from exc
    return Baseline(slope, intercept, transform or "logit")


def effective_robustness(
    acc_id: Any, acc_ood: Any, baseline: Any, transform: str | None = None
) -> float | np.ndarray:
    """Effective robustness (Taori et al., NeurIPS 2020; used by Bansal & Grover 2023).

    ``ER = acc_ood - T^-1(slope * T(acc_id) + intercept)``: OOD accuracy above what the
    standard models' line predicts at the same in-distribution accuracy. 0 on the line,
    positive above it.

    Args:
        acc_id: in-distribution accuracy (float or array) in [0, 1].
        acc_ood: accuracy on the shifted set, same shape.
        baseline: a :class:`Baseline` (e.g. :func:`imagenet_baseline` or :func:`fit_baseline`)
            or a (slope, intercept) pair.
        transform: ``"logit"`` or ``"probit"``; defaults to the baseline's own (``"logit"``
            for a pair). Passing one that disagrees with a Baseline is an error.

    Returns:
        ER as a float for scalars, otherwise an array (vectorised over models).

    Example:
        >>> b = Baseline(slope=1.0, intercept=-1.0, transform="logit")
        >>> round(effective_robustness(0.731059, 0.6, b), 3)  # the line predicts 0.5
        0.1
    """
    b = _as_baseline(baseline, transform)
    a_id = _acc(acc_id, "acc_id")
    a_ood = _acc(acc_ood, "acc_ood")
    if a_id.shape != a_ood.shape:
        raise ValidationError(
            f"acc_id and acc_ood must have the same shape, got {a_id.shape} and {a_ood.shape}"
        )
    return _out(a_ood - np.asarray(b.predict(a_id), dtype=np.float64))


def relative_robustness(acc_id: Any, acc_ood: Any) -> float | np.ndarray:
    """The accuracy gap under the shift: ``acc_ood - acc_id`` (negative = a drop).

    Definition used here: the raw OOD-minus-ID gap, without any baseline. Note that Taori
    et al. (NeurIPS 2020) call the *change in OOD accuracy caused by an intervention*
    "relative robustness"; that is the difference of two ``acc_ood`` values, while this
    function reports the per-model gap, which mixes robustness with ID accuracy (hence ER).

    Args:
        acc_id: in-distribution accuracy (float or array) in [0, 1].
        acc_ood: accuracy on the shifted set, same shape.

    Returns:
        the gap as a float for scalars, otherwise an array.

    Example:
        >>> round(relative_robustness(0.76, 0.64), 2)
        -0.12
    """
    a_id = _acc(acc_id, "acc_id")
    a_ood = _acc(acc_ood, "acc_ood")
    if a_id.shape != a_ood.shape:
        raise ValidationError(
            f"acc_id and acc_ood must have the same shape, got {a_id.shape} and {a_ood.shape}"
        )
    return _out(a_ood - a_id)


#: Shift names of the shipped baselines.
IMAGENET_SHIFTS = ("imagenet_v2", "imagenet_sketch", "imagenet_r", "objectnet")

# Fitted on the imagenet-testbed's standard models, ImageNet val -> shift (DESIGN.md).
# For imagenet_r the x-axis is ImageNet accuracy restricted to R's 200 classes.
_COEFFS = {
    ("imagenet_v2", "logit"): (0.9232, -0.4977),
    ("imagenet_sketch", "logit"): (1.0709, -2.3701),
    ("imagenet_r", "logit"): (0.6368, -2.1077),
    ("objectnet", "logit"): (0.9809, -1.9283),
    ("imagenet_v2", "probit"): (0.9617, -0.3247),
    ("imagenet_sketch", "probit"): (1.0435, -1.4259),
    ("imagenet_r", "probit"): (0.7719, -1.4212),
    ("objectnet", "probit"): (1.0192, -1.2049),
}

#: Shipped ImageNet baselines keyed by (shift, transform); r2 and n are unknown (None).
IMAGENET_BASELINES: dict[tuple[str, str], Baseline] = {
    key: Baseline(slope=s, intercept=i, transform=key[1]) for key, (s, i) in _COEFFS.items()
}


def imagenet_baseline(shift: str, transform: str = "logit") -> Baseline:
    """Shipped ImageNet baseline for a natural shift (Taori et al. 2020's testbed models).

    Lines ``T(acc_shift) = slope * T(acc_imagenet_val) + intercept`` fitted on the
    imagenet-testbed's standard models. For ``imagenet_r`` the ImageNet accuracy must be
    computed on R's 200 classes.

    Args:
        shift: one of ``imagenet_v2``, ``imagenet_sketch``, ``imagenet_r``, ``objectnet``
            (case and ``-`` / ``_`` are ignored: ``"ImageNet-V2"`` works).
        transform: ``"logit"`` or ``"probit"``.

    Returns:
        the :class:`Baseline`.

    Raises:
        ValidationError: unknown shift or transform (the message lists the valid ones).

    Example:
        >>> b = imagenet_baseline("imagenet_v2")
        >>> b.slope, b.intercept, b.transform
        (0.9232, -0.4977, 'logit')
    """
    _check_transform(transform)
    key = str(shift).strip().lower().replace("-", "_")
    if key not in IMAGENET_SHIFTS:
        raise ValidationError(
            f"shift: unknown ImageNet shift {shift!r}; valid shifts: {list(IMAGENET_SHIFTS)}"
        )
    return IMAGENET_BASELINES[(key, transform)]
