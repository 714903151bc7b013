"""Label-free accuracy predictors: estimate accuracy on a shifted set without its labels.

Each function takes model outputs on the unlabeled target set (and, where the method needs a
reference, outputs and labels on a labeled source set such as the validation split) and
returns a predicted accuracy or a score that correlates with accuracy across models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from robustlens._validation import check_array, check_consistent_length, check_labels, check_probs
from robustlens.errors import ValidationError

__all__ = [
    "SourceCalibration",
    "agreement",
    "atc",
    "atc_threshold",
    "average_confidence",
    "calibrate_on_source",
    "difference_of_confidence",
    "nuclear_norm",
]

AtcScore = Literal["maxconf", "negentropy"]


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(p, axis=1) == y))


def _source(probs_src: Any, labels_src: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated source probabilities and labels."""
    p = check_probs(probs_src, "probs_src")
    y = check_labels(labels_src, "labels_src", n_classes=p.shape[1])
    check_consistent_length(("probs_src", p), ("labels_src", y))
    return p, y


def average_confidence(probs: Any) -> float:
    """Average confidence: ``AC = (1/N) sum_n max_k p[n, k]``, a predicted accuracy.

    For a calibrated model AC equals accuracy (Hendrycks & Gimpel, ICLR 2017, used as the
    baseline predictor by Guillory et al., ICCV 2021 and Garg et al., ICLR 2022).

    Args:
        probs: (N, K) probabilities on the (unlabeled) target set.

    Returns:
        Mean top-1 probability in [0, 1] as a python float.

    Example:
        >>> round(average_confidence([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]), 4)
        0.7333
    """
    p = check_probs(probs, "probs")
    return float(np.mean(p.max(axis=1)))


def difference_of_confidence(probs_src: Any, labels_src: Any, probs_tgt: Any) -> float:
    """Difference of confidences (DoC): source accuracy minus the drop in average confidence.

    ``DoC = acc_src - (AC_src - AC_tgt)``, with ``AC`` the average top-1 probability.
    The value is not clipped, so it can leave [0, 1] for badly calibrated models.

    Reference: D. Guillory, V. Shankar, S. Ebrahimi, T. Darrell, L. Schmidt, "Predicting with
    Confidence on Unseen Distributions", ICCV 2021.

    Args:
        probs_src: (N, K) probabilities on the labeled source set (e.g. validation split).
        labels_src: (N,) integer labels of the source set.
        probs_tgt: (M, K) probabilities on the unlabeled target set.

    Returns:
        Predicted target accuracy as a python float.

    Example:
        >>> src = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
        >>> tgt = [[0.6, 0.4], [0.5, 0.5], [0.4, 0.6]]
        >>> # acc_src = 0.75, AC_src = 0.75, AC_tgt = 0.5667
        >>> round(difference_of_confidence(src, [0, 0, 1, 1], tgt), 4)
        0.5667
    """
    return calibrate_on_source(probs_src, labels_src, scores=()).doc(probs_tgt)


def _atc_scores(p: np.ndarray, score: str) -> np.ndarray:
    if score == "maxconf":
        return p.max(axis=1)
    if score == "negentropy":
        from scipy.special import entr  # lazy: scipy costs ~1 s to import

        # negative entropy sum_k p log p, with 0 log 0 = 0 (scipy's entr is -x log x)
        return -entr(np.clip(p, 0.0, 1.0)).sum(axis=1)
    raise ValidationError(f"score: expected 'maxconf' or 'negentropy', got {score!r}")


def atc_threshold(probs_src: Any, labels_src: Any, score: AtcScore = "maxconf") -> float:
    """The ATC threshold t: the fraction of source scores strictly above t is source accuracy.

    With ``c`` the number of correct source predictions and ``s_(1) >= ... >= s_(N)`` the sorted
    source scores, ``t = (s_(c) + s_(c+1)) / 2`` (just below ``s_(N)`` when c = N, ``s_(1)``
    when c = 0). With distinct scores exactly c scores exceed t, so ATC on the source set
    returns the source accuracy; tied scores at the boundary can make it lower.

    Reference: S. Garg, S. Balakrishnan, Z. C. Lipton, B. Neyshabur, H. Sedghi, "Leveraging
    Unlabeled Data to Predict Out-of-Distribution Performance", ICLR 2022.

    Args:
        probs_src: (N, K) probabilities on the labeled source set.
        labels_src: (N,) integer labels of the source set.
        score: ``"maxconf"`` (max probability) or ``"negentropy"`` (``sum_k p log p``).

    Returns:
        The threshold t as a python float.

    Example:
        >>> src = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
        >>> round(atc_threshold(src, [0, 0, 1, 1]), 4)  # 3 of 4 correct: between 0.7 and 0.6
        0.65
    """
    p, y = _source(probs_src, labels_src)
    return _atc_threshold(p, y, score)


def _atc_threshold(p: np.ndarray, y: np.ndarray, score: str) -> float:
    s = np.sort(_atc_scores(p, score))[::-1]
    n = s.size
    c = int(np.sum(np.argmax(p, axis=1) == y))
    if c == 0:
        return float(s[0])
    if c == n:
        return float(np.nextafter(s[-1], -np.inf))
    t = (s[c - 1] + s[c]) / 2.0
    # adjacent floats: the midpoint can round up to s_(c); s_(c+1) then keeps s_(c) above t
    return float(s[c] if t >= s[c - 1] else t)


def atc(probs_src: Any, labels_src: Any, probs_tgt: Any, score: AtcScore = "maxconf") -> float:
    """Average thresholded confidence (ATC): the predicted target accuracy.

    Learn the threshold t on the labeled source set so that the fraction of source scores
    above t equals source accuracy (see :func:`atc_threshold`), then predict
    ``ATC = (1/M) sum_m [s(p_tgt[m]) > t]``.

    Reference: S. Garg, S. Balakrishnan, Z. C. Lipton, B. Neyshabur, H. Sedghi, "Leveraging
    Unlabeled Data to Predict Out-of-Distribution Performance", ICLR 2022.

    Args:
        probs_src: (N, K) probabilities on the labeled source set (e.g. validation split).
        labels_src: (N,) integer labels of the source set.
        probs_tgt: (M, K) probabilities on the unlabeled target set.
        score: ``"maxconf"`` (max probability, ATC-MC) or ``"negentropy"`` (negative entropy,
            ATC-NE, the variant Garg et al. recommend).

    Returns:
        Predicted target accuracy in [0, 1] as a python float.

    Example:
        >>> src = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
        >>> tgt = [[0.7, 0.3], [0.5, 0.5], [0.4, 0.6]]
        >>> atc(src, [0, 0, 1, 1], src)  # reproduces source accuracy
        0.75
        >>> round(atc(src, [0, 0, 1, 1], tgt), 4)  # t = 0.65: only 0.7 is above
        0.3333
    """
    return calibrate_on_source(probs_src, labels_src, scores=(score,)).atc(probs_tgt, score)


@dataclass(frozen=True)
class SourceCalibration:
    """What DoC and ATC learn from a labelled source set, for any number of target sets.

    Made by :func:`calibrate_on_source`. DoC and ATC learn from the source alone, so a study
    that predicts the accuracy of many target sets learns once and reuses it; each target's
    value is the one :func:`difference_of_confidence` and :func:`atc` give.

    Attributes:
        n_classes: K of the source probabilities (a target must have as many).
        accuracy: ``acc_src``, top-1 accuracy on the source set.
        avg_confidence: ``AC_src``, the mean top-1 probability on the source set.
        thresholds: the ATC threshold of each score learned (see :func:`atc_threshold`).
    """

    n_classes: int
    accuracy: float
    avg_confidence: float
    thresholds: Mapping[str, float]

    def _target(self, probs_tgt: Any) -> np.ndarray:
        p = check_probs(probs_tgt, "probs_tgt")
        if p.shape[1] != self.n_classes:
            raise ValidationError(
                "inconsistent numbers of classes: "
                f"probs_src has {self.n_classes}, probs_tgt has {p.shape[1]}"
            )
        return p

    def doc(self, probs_tgt: Any) -> float:
        """``DoC = acc_src - (AC_src - AC_tgt)`` on the (M, K) target probabilities."""
        p = self._target(probs_tgt)
        return self.accuracy - float(self.avg_confidence - np.mean(p.max(axis=1)))

    def atc(self, probs_tgt: Any, score: AtcScore = "maxconf") -> float:
        """``ATC = (1/M) sum_m [s(p_tgt[m]) > t]`` with the threshold t learned for ``score``."""
        if score not in self.thresholds:
            raise ValidationError(
                f"score: no ATC threshold was learned for {score!r}; learned: "
                f"{sorted(self.thresholds)} (name it in calibrate_on_source's scores; "
                "'maxconf' or 'negentropy')"
            )
        p = self._target(probs_tgt)
        return float(np.mean(_atc_scores(p, score) > self.thresholds[score]))


def calibrate_on_source(
    probs_src: Any, labels_src: Any, scores: Iterable[AtcScore] = ("maxconf", "negentropy")
) -> SourceCalibration:
    """Learn DoC's source statistics and ATC's thresholds from a labelled source set.

    ``acc_src``, ``AC_src = (1/N) sum_n max_k p[n, k]`` and, for each ATC score, the threshold
    of :func:`atc_threshold`. ``calibrate_on_source(p, y).atc(q, s)`` equals
    ``atc(p, y, q, score=s)`` and ``.doc(q)`` equals ``difference_of_confidence(p, y, q)``.

    References: Guillory et al., ICCV 2021 (DoC); Garg et al., ICLR 2022 (ATC).

    Args:
        probs_src: (N, K) probabilities on the labelled source set.
        labels_src: (N,) integer labels of the source set.
        scores: the ATC scores to learn a threshold for.

    Example:
        >>> src = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
        >>> cal = calibrate_on_source(src, [0, 0, 1, 1])
        >>> cal.accuracy, round(cal.avg_confidence, 4), round(cal.thresholds["maxconf"], 4)
        (0.75, 0.75, 0.65)
        >>> round(cal.atc([[0.7, 0.3], [0.5, 0.5], [0.4, 0.6]]), 4)
        0.3333
    """
    p, y = _source(probs_src, labels_src)
    return SourceCalibration(
        n_classes=p.shape[1],
        accuracy=_accuracy(p, y),
        avg_confidence=float(np.mean(p.max(axis=1))),
        thresholds={score: _atc_threshold(p, y, score) for score in scores},
    )


def nuclear_norm(probs: Any) -> float:
    """Normalized nuclear norm of the prediction matrix: ``||P||_* / sqrt(N * min(N, K))``.

    ``||P||_*`` is the sum of the singular values of the (N, K) probability matrix P. It is high
    when predictions are both confident and spread over many classes (dispersed), and lies in
    [0, 1]: 1 for one-hot predictions spread evenly over the classes, 1/K for uniform rows.

    Reference: W. Deng, Y. Suh, S. Gould, L. Zheng, "Confidence and Dispersity Speak:
    Characterising Prediction Matrix for Unsupervised Accuracy Estimation", ICML 2023.

    Args:
        probs: (N, K) probabilities on the (unlabeled) target set.

    Returns:
        Normalized nuclear norm in [0, 1] as a python float.

    Example:
        >>> round(nuclear_norm([[1.0, 0.0], [0.0, 1.0]]), 4)  # confident and dispersed
        1.0
        >>> round(nuclear_norm([[0.5, 0.5], [0.5, 0.5]]), 4)  # uniform: 1/K
        0.5
        >>> round(nuclear_norm([[1.0, 0.0], [1.0, 0.0]]), 4)  # confident, one class
        0.7071
    """
    p = check_probs(probs, "probs")
    n, k = p.shape
    singular_values = np.linalg.svd(p, compute_uv=False)
    return float(singular_values.sum() / np.sqrt(n * min(n, k)))


def _as_predictions(x: Any, name: str) -> tuple[np.ndarray, int | None]:
    """1-D labels as they are; 2-D scores (probabilities or logits) via argmax.

    Returns the predictions and the number of classes (None for 1-D labels).
    """
    arr = check_array(x, name)
    if arr.ndim == 1:
        return check_labels(arr, name), None
    if arr.ndim == 2:
        return np.argmax(arr, axis=1), arr.shape[1]
    raise ValidationError(
        f"{name}: expected 1-D predicted labels or 2-D (N, K) scores, got shape {arr.shape}"
    )


def agreement(preds_a: Any, preds_b: Any) -> float:
    """Fraction of samples on which two predictors agree: ``(1/N) sum_n [a_n == b_n]``.

    Agreement between two models (or two views) on unlabeled data tracks their accuracy
    (Jiang et al., "Assessing Generalization of SGD via Disagreement", ICLR 2022; Baek et al.,
    "Agreement-on-the-Line", NeurIPS 2022).

    Args:
        preds_a: (N,) predicted labels, or (N, K) probabilities/logits (argmax is taken).
        preds_b: (N,) predicted labels, or (N, K) probabilities/logits.

    Returns:
        Agreement rate in [0, 1] as a python float.

    Example:
        >>> agreement([0, 1, 2, 2], [0, 1, 1, 2])
        0.75
        >>> agreement([[0.9, 0.1], [0.2, 0.8]], [0, 0])
        0.5
    """
    a, k_a = _as_predictions(preds_a, "preds_a")
    b, k_b = _as_predictions(preds_b, "preds_b")
    check_consistent_length(("preds_a", a), ("preds_b", b))
    if k_a is not None and k_b is not None and k_a != k_b:
        raise ValidationError(
            f"inconsistent numbers of classes: preds_a has {k_a}, preds_b has {k_b}"
        )
    return float(np.mean(a == b))
