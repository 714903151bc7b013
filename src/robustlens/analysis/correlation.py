"""Correlations across models with p-values and bootstrap confidence intervals.

A correlation whose p-value is not below ``alpha`` is *shown* as 0 in heatmaps (the convention
of Gavrikov et al., "Can Biases in ImageNet Models Explain Generalization?", CVPR 2024), but the
true coefficient always stays in the data.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from robustlens._validation import check_consistent_length, check_frame, check_int, to_numpy
from robustlens.errors import ValidationError

__all__ = ["TABLE_COLUMNS", "CorrelationResult", "correlate", "correlation_table"]

Method = Literal["spearman", "pearson", "kendall"]
_METHODS = ("spearman", "pearson", "kendall")
_MIN_PAIRS = 3
_BOOT_CHUNK_ELEMENTS = 2_000_000  # bound the memory of one block of bootstrap resamples
#: the columns of :func:`correlation_table`, in order
TABLE_COLUMNS = (
    "x",
    "y",
    "coefficient",
    "p_value",
    "ci_low",
    "ci_high",
    "n",
    "significant",
    "shown",
    "method",
)


@dataclass(frozen=True)
class CorrelationResult:
    """A correlation coefficient with its p-value and bootstrap confidence interval.

    Attributes:
        coefficient: the correlation coefficient (NaN with fewer than 3 valid pairs or a
            constant variable).
        p_value: two-sided p-value of the test of zero correlation (scipy.stats).
        ci_low: lower end of the percentile bootstrap interval at level ``1 - alpha``.
        ci_high: upper end of that interval.
        n: number of valid (finite) pairs used.
        method: ``"spearman"``, ``"pearson"`` or ``"kendall"``.
        significant: ``p_value < alpha`` (False when the p-value is NaN).
    """

    coefficient: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int
    method: str
    significant: bool

    @property
    def shown(self) -> float:
        """The coefficient if significant, else 0.0 (the heatmap convention)."""
        return self.coefficient if self.significant else 0.0


def _check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValidationError(f"method: expected one of {list(_METHODS)}, got {method!r}")
    return method


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValidationError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _as_vector(v: Any, name: str) -> np.ndarray:
    arr = to_numpy(v, name)
    if arr.ndim != 1:
        raise ValidationError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: expected numbers, got dtype {arr.dtype} ({exc})") from exc


def _coefficient_and_p(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    from scipy import stats  # lazy: scipy costs ~1 s to import

    with warnings.catch_warnings():
        # a constant input gives NaN, which is what we report; silence scipy's warning
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        if method == "spearman":
            res = stats.spearmanr(x, y)
            if len(x) <= _EXACT_SPEARMAN_MAX_N and np.isfinite(res.statistic):
                # the t-approximation gives p = 0 for rho = +-1 at any n (3 models would be
                # "significant"); small samples get the exact permutation p-value instead
                return float(res.statistic), _exact_spearman_p(x, y, float(res.statistic))
        elif method == "pearson":
            res = stats.pearsonr(x, y)
        else:
            res = stats.kendalltau(x, y)
    return float(res.statistic), float(res.pvalue)


_EXACT_SPEARMAN_MAX_N = 8


def _exact_spearman_p(x: np.ndarray, y: np.ndarray, rho: float) -> float:
    """Two-sided exact p-value of Spearman's rho over all permutations of y's ranks."""
    from scipy import stats  # lazy: scipy costs ~1 s to import

    rx, ry = stats.rankdata(x), stats.rankdata(y)
    perms = np.array(list(itertools.permutations(ry)))
    a = rx - rx.mean()
    b = perms - perms.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum() * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        null = (b @ a) / denom
    return float(np.mean(np.abs(null) >= abs(rho) - 1e-12))


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (B, n) arrays; NaN for a constant row."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / denom
    r[~(denom > 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _bootstrap(
    x: np.ndarray, y: np.ndarray, method: str, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Coefficients of ``n_boot`` resamples of the (x, y) pairs, drawn with replacement."""
    from scipy import stats  # lazy: scipy costs ~1 s to import

    n = x.size
    out = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, _BOOT_CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        xb, yb = x[idx], y[idx]
        if method == "pearson":
            out[start:stop] = _rowwise_pearson(xb, yb)
        elif method == "spearman":  # Pearson on average ranks, as scipy.stats.spearmanr
            out[start:stop] = _rowwise_pearson(
                stats.rankdata(xb, axis=1), stats.rankdata(yb, axis=1)
            )
        else:
            for i in range(stop - start):
                out[start + i] = _coefficient_and_p(xb[i], yb[i], method)[0]
    return out


def correlate(
    x: Any,
    y: Any,
    method: Method = "spearman",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> CorrelationResult:
    """Correlation of two paired measurements with a p-value and a bootstrap CI.

    Pairs where either value is NaN or infinite are dropped. The coefficient and two-sided
    p-value come from ``scipy.stats`` (``spearmanr``: Pearson r of the ranks; ``pearsonr``;
    ``kendalltau``: tau-b). The confidence interval is the percentile bootstrap at level
    ``1 - alpha``: resample the n pairs with replacement ``n_boot`` times (with
    ``numpy.random.default_rng(seed)``), recompute the coefficient, and take the
    ``alpha/2`` and ``1 - alpha/2`` quantiles (resamples with a constant variable are skipped).
    ``significant`` is ``p_value < alpha``. Spearman p-values for n <= 8 are exact (all
    permutations), so that three models in perfect order are not "significant".

    With fewer than 3 valid pairs nothing is estimated: every number is NaN, ``n`` says how
    many pairs there were, and ``significant`` is False.

    Reference for the use across models: Gavrikov et al., "Can Biases in ImageNet Models
    Explain Generalization?", CVPR 2024; Deng et al., NeurIPS 2022 (model-centric view).

    Args:
        x: (n,) values of the first measure (one per model, say), array, list or tensor.
        y: (n,) values of the second measure, in the same order.
        method: ``"spearman"``, ``"pearson"`` or ``"kendall"``.
        alpha: significance level, also sets the CI level ``1 - alpha``.
        n_boot: number of bootstrap resamples; 0 skips the CI (NaN bounds).
        seed: seed of the bootstrap generator; the same seed gives the same CI.

    Returns:
        A frozen :class:`CorrelationResult`.

    Example:
        >>> r = correlate([1, 2, 3, 4, 5], [1, 4, 9, 16, 25], n_boot=200)
        >>> round(r.coefficient, 4), round(r.p_value, 6), r.significant, r.n
        (1.0, 0.016667, True, 5)
        >>> correlate([1, 2, float("nan")], [3, 1, 2]).n  # too few valid pairs
        2
    """
    method = _check_method(method)
    alpha = _check_alpha(alpha)
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    xv = _as_vector(x, "x")
    yv = _as_vector(y, "y")
    check_consistent_length(("x", xv), ("y", yv))
    valid = np.isfinite(xv) & np.isfinite(yv)
    xv, yv = xv[valid], yv[valid]
    n = int(xv.size)
    nan = float("nan")
    if n < _MIN_PAIRS:
        return CorrelationResult(nan, nan, nan, nan, n, method, False)

    coefficient, p_value = _coefficient_and_p(xv, yv, method)
    ci_low = ci_high = nan
    if n_boot > 0 and np.isfinite(coefficient):
        boots = _bootstrap(xv, yv, method, int(n_boot), np.random.default_rng(seed))
        boots = boots[np.isfinite(boots)]
        if boots.size:
            ci_low, ci_high = (float(q) for q in np.quantile(boots, [alpha / 2, 1 - alpha / 2]))
    significant = bool(np.isfinite(p_value) and p_value < alpha)
    return CorrelationResult(coefficient, p_value, ci_low, ci_high, n, method, significant)


def correlation_table(
    df: pd.DataFrame,
    xs: list[str],
    ys: list[str],
    method: Method = "spearman",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlate every column in ``xs`` with every column in ``ys`` (rows of ``df`` = models).

    Each pair is computed with :func:`correlate`. ``shown`` is the coefficient where it is
    significant (``p_value < alpha``) and 0.0 elsewhere, the heatmap convention of
    Gavrikov et al. (CVPR 2024); ``coefficient`` always keeps the true value.

    Args:
        df: one row per model (or per observation), numeric columns.
        xs: column names for the first variable of each pair.
        ys: column names for the second variable of each pair.
        method: ``"spearman"``, ``"pearson"`` or ``"kendall"``.
        alpha: significance level and CI level ``1 - alpha``.
        n_boot: bootstrap resamples per pair (0 skips the CIs).
        seed: bootstrap seed, the same for every pair.

    Returns:
        Long-format DataFrame, one row per (x, y) in the order of ``xs`` then ``ys``, with
        columns x, y, coefficient, p_value, ci_low, ci_high, n, significant, shown, method.
        Pivot with ``table.pivot(index="x", columns="y", values="shown")`` for a heatmap.

    Example:
        >>> df = pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": [2, 4, 5, 8, 9], "c": [3, 1, 4, 1, 5]})
        >>> t = correlation_table(df, ["a"], ["b", "c"], n_boot=0)
        >>> t["y"].tolist(), t["coefficient"].round(2).tolist(), t["significant"].tolist()
        (['b', 'c'], [1.0, 0.41], [True, False])
        >>> t["shown"].round(2).tolist()  # c is not significant: shown as 0
        [1.0, 0.0]
    """
    check_frame(df, "df")
    method = _check_method(method)
    alpha = _check_alpha(alpha)
    for name, cols in (("xs", xs), ("ys", ys)):
        if isinstance(cols, str):
            raise ValidationError(
                f"{name}: expected a list of column names, got the string {cols!r}"
            )
        check_frame(df, name, cols)

    def numeric(col: str) -> np.ndarray:
        try:
            return pd.to_numeric(df[col], errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"column {col!r}: expected numbers ({exc})") from exc

    rows = []
    for xc in xs:
        xv = numeric(xc)
        for yc in ys:
            r = correlate(xv, numeric(yc), method=method, alpha=alpha, n_boot=n_boot, seed=seed)
            numbers = (r.coefficient, r.p_value, r.ci_low, r.ci_high, r.n, r.significant)
            rows.append((xc, yc, *numbers, r.shown, r.method))
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
