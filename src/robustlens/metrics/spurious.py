"""Spurious features: class-wise neural PCA, spurious score and SpuFix.

Reference: Y. Neuhaus, M. Augustin, V. Boreiko, M. Hein, "Spurious Features Everywhere -
Large-Scale Detection of Harmful Spurious Features in ImageNet", ICCV 2023.

Notation (for one class k of a classifier whose last layer is ``logit = W phi + b``):

* ``phi(x)`` (D,) are the penultimate features of image x (non-negative after a ReLU in the
  paper; not required here), ``w_k`` the k-th row of W, ``b_k`` the k-th bias.
* ``z(x) = phi(x) * w_k`` (elementwise), so ``logit_k(x) = <1, z(x)> + b_k``.
* Neural PCA: mean ``mu`` and eigenvectors ``v_1 .. v_D`` (eigenvalues descending) of the
  covariance of z over training images labelled k.
* Component contributions ``alpha_l(x) = <v_l, z(x) - mu> * <v_l, 1>``. Because the v_l form
  an orthonormal basis, ``sum_l alpha_l(x) = <1, z(x) - mu> = logit_k(x) - b_k - <1, mu>``:
  the alphas split the class logit (minus the constant ``b_k + <1, mu>``) into additive
  parts, one per component.

Direction of the spurious score: it is the average precision (AP) of separating real class
images (positives) from spurious-only images (negatives) by the class probability. A HIGH
score means the model tells them apart, i.e. relies LESS on the spurious feature;
``spurious_reliance = 1 - mean AP`` is the "more is worse" version.

Everything here is a pure function on arrays: no I/O, no model calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustlens._validation import (
    check_array,
    check_consistent_length,
    check_labels,
    check_probs,
)
from robustlens.errors import ValidationError

__all__ = [
    "NeuralPCA",
    "component_contributions",
    "contribution_offset",
    "find_spurious_components",
    "neural_pca",
    "spufix",
    "spufix_multi",
    "spurious_component_scores",
    "spurious_score",
    "spurious_score_per_class",
    "top_components",
]


@dataclass(frozen=True, eq=False)
class NeuralPCA:
    """Class-wise neural PCA of ``z(x) = phi(x) * w_k`` (Neuhaus et al., ICCV 2023).

    Attributes:
        class_index: the class k.
        weight: (D,) the last-layer row w_k used to form z (needed to compute alphas).
        mean: (D,) mu, the mean of z over the images the PCA was fitted on.
        eigenvalues: (D,) eigenvalues of the covariance of z, descending, clipped at 0.
        eigenvectors: (D, D) orthonormal; column l is v_l. Sign convention: <v_l, 1> >= 0
            (ties broken by making the largest-magnitude entry positive). The sign does
            not affect the alphas, which are quadratic in v_l.
        n_samples: number of images the PCA was fitted on.

    Arrays are read-only. Equality is identity (arrays do not compare as a single bool).
    """

    class_index: int
    weight: np.ndarray
    mean: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    n_samples: int

    @property
    def mu(self) -> np.ndarray:
        """Alias of :attr:`mean` (the paper's notation)."""
        return self.mean

    @property
    def n_components(self) -> int:
        """Number of components D."""
        return int(self.eigenvalues.shape[0])

    @property
    def logit_weights(self) -> np.ndarray:
        """(D,) ``<v_l, 1>`` for every component: how strongly v_l feeds the class logit."""
        return self.eigenvectors.sum(axis=0)


# --------------------------------------------------------------------------- helpers


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _weight_row(weight: Any, class_index: int, n_features: int | None = None) -> np.ndarray:
    """w_k from a (K, D) weight matrix or a (D,) row."""
    w = check_array(weight, "weight", dtype=np.float64)
    if w.ndim == 2:
        if not 0 <= class_index < w.shape[0]:
            raise ValidationError(
                f"class_index: expected an index in [0, {w.shape[0] - 1}] for a weight of "
                f"shape {w.shape}, got {class_index}"
            )
        w = w[class_index]
    elif w.ndim != 1:
        raise ValidationError(
            f"weight: expected a (K, D) last-layer weight or a (D,) row, got shape {w.shape}"
        )
    if n_features is not None and w.shape[0] != n_features:
        raise ValidationError(
            f"weight: expected {n_features} features to match the features, got {w.shape[0]}"
        )
    return w


def _check_features(features: Any, name: str, n_features: int | None = None) -> np.ndarray:
    phi = check_array(features, name, ndim=2, dtype=np.float64)
    if n_features is not None and phi.shape[1] != n_features:
        raise ValidationError(
            f"{name}: expected {n_features} features per row (the PCA's dimension), "
            f"got shape {phi.shape}"
        )
    return phi


def _as_index_array(flagged: Any) -> np.ndarray:
    if hasattr(flagged, "detach"):
        flagged = flagged.detach().cpu().numpy()
    return np.asarray(flagged).reshape(-1)


def _check_flagged(flagged: Any, n_components: int, name: str = "flagged") -> np.ndarray:
    idx = _as_index_array(flagged)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and np.all(np.mod(idx, 1) == 0):
            idx = idx.astype(np.int64)
        else:
            raise ValidationError(f"{name}: expected integer component indices, got {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n_components:
        raise ValidationError(
            f"{name}: component indices must lie in [0, {n_components - 1}], "
            f"got range [{idx.min()}, {idx.max()}]"
        )
    return np.unique(idx.astype(np.int64))


# --------------------------------------------------------------------------- neural PCA


def neural_pca(features: Any, weight: Any, class_index: int) -> NeuralPCA:
    """Class-wise neural PCA (Neuhaus et al., "Spurious Features Everywhere", ICCV 2023).

    ``z(x) = phi(x) * w_k``; ``mu = mean_x z(x)``; ``C = cov(z)`` (``np.cov``, rows are
    samples, N - 1 normalisation); ``C = sum_l lambda_l v_l v_l^T`` with lambda descending.
    The bias b_k is not used (it only shifts the logit).

    Args:
        features: (N, D) penultimate features of the (training) images labelled k.
            Numpy array or torch tensor; N >= 2.
        weight: (K, D) last-layer weight W (row ``class_index`` is used) or its (D,) row w_k.
        class_index: the class k.

    Returns:
        A :class:`NeuralPCA` with mean (D,), eigenvalues (D,) descending and eigenvectors
        (D, D) whose columns are the orthonormal v_l, with ``<v_l, 1> >= 0``.

    Raises:
        ValidationError: fewer than 2 images, shape mismatch or non-finite values.

    Example:
        >>> import numpy as np
        >>> phi = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, -1.0]])
        >>> pca = neural_pca(phi, np.array([[1.0, 2.0], [0.5, 0.5]]), class_index=0)
        >>> pca.mean.round(3).tolist()
        [2.0, 0.0]
        >>> pca.eigenvalues.round(3).tolist()
        [2.667, 0.667]
        >>> np.abs(pca.eigenvectors).round(3).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    phi = _check_features(features, "features")
    if phi.shape[0] < 2:
        raise ValidationError(
            f"features: neural PCA needs at least 2 images of class {class_index} "
            f"to estimate a covariance, got {phi.shape[0]}"
        )
    w = _weight_row(weight, int(class_index), phi.shape[1])
    z = phi * w
    mu = z.mean(axis=0)
    cov = np.atleast_2d(np.cov(z, rowvar=False))
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals, kind="stable")[::-1]
    evals = np.clip(evals[order], 0.0, None)
    evecs = evecs[:, order]
    # Deterministic sign: <v_l, 1> >= 0; when <v_l, 1> is ~0, largest |entry| positive.
    s = evecs.sum(axis=0)
    tie = np.abs(s) <= 1e-12 * np.sqrt(evecs.shape[0])
    peak = evecs[np.argmax(np.abs(evecs), axis=0), np.arange(evecs.shape[1])]
    sign = np.where(tie, np.sign(peak), np.sign(s))
    sign[sign == 0] = 1.0
    evecs = evecs * sign
    return NeuralPCA(
        class_index=int(class_index),
        weight=_readonly(w.copy()),
        mean=_readonly(mu),
        eigenvalues=_readonly(evals),
        eigenvectors=_readonly(evecs),
        n_samples=int(phi.shape[0]),
    )


def component_contributions(features: Any, pca: Any, weight_or_pca: Any = None) -> np.ndarray:
    """Contributions of each neural PCA component to the class logit (Neuhaus et al. 2023).

    ``alpha_l(x) = <v_l, z(x) - mu> * <v_l, 1>`` with ``z(x) = phi(x) * w_k`` and w_k the
    row stored in ``pca``. Identity: ``sum_l alpha_l(x) = logit_k(x) - contribution_offset``
    (see :func:`contribution_offset`).

    Args:
        features: (N, D) penultimate features of any images (not only class k).
        pca: the class's :class:`NeuralPCA`. The DESIGN order
            ``component_contributions(features, weight, pca)`` is also accepted; the weight
            (a (K, D) matrix or the (D,) row) must then equal the row the PCA was fitted with.
        weight_or_pca: the PCA when the DESIGN order is used; otherwise leave it out.

    Returns:
        (N, D) float64 array; column l holds alpha_l, components ordered as in the PCA.

    Example:
        >>> import numpy as np
        >>> phi = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, -1.0]])
        >>> pca = neural_pca(phi, np.array([1.0, 2.0]), class_index=0)
        >>> alphas = component_contributions(np.array([[3.0, 1.0]]), pca)
        >>> alphas.round(3).tolist()
        [[2.0, 1.0]]
        >>> float(alphas.sum() + contribution_offset(pca, bias_k=0.5))  # logit = 3 + 2 + 0.5
        5.5
    """
    if not isinstance(pca, NeuralPCA):
        if not isinstance(weight_or_pca, NeuralPCA):
            raise ValidationError(
                "pca: expected a NeuralPCA (from neural_pca), got "
                f"{type(pca).__name__} and {type(weight_or_pca).__name__}"
            )
        weight, pca = pca, weight_or_pca
        w = _weight_row(weight, pca.class_index, pca.n_components)
        if not np.allclose(w, pca.weight, rtol=1e-5, atol=1e-6):
            raise ValidationError(
                f"weight: row {pca.class_index} differs from the weight the PCA was fitted "
                "with; the alphas would no longer sum to the logit"
            )
    elif weight_or_pca is not None:
        raise ValidationError(
            "component_contributions takes (features, pca) or (features, weight, pca), "
            f"got a third argument of type {type(weight_or_pca).__name__}"
        )
    phi = _check_features(features, "features", pca.n_components)
    z = phi * pca.weight
    proj = (z - pca.mean) @ pca.eigenvectors
    return proj * pca.logit_weights


def contribution_offset(pca: NeuralPCA, bias_k: float = 0.0) -> float:
    """The constant with ``logit_k(x) = sum_l alpha_l(x) + b_k + <1, mu>`` (Neuhaus et al. 2023).

    Args:
        pca: the class's :class:`NeuralPCA`.
        bias_k: the last-layer bias b_k of the class (0 for a bias-free layer).

    Returns:
        ``b_k + <1, mu>`` as a float.

    Example:
        >>> import numpy as np
        >>> pca = neural_pca(np.array([[1.0, 0.0], [3.0, 2.0]]), np.array([1.0, 1.0]), 0)
        >>> contribution_offset(pca, bias_k=0.5)
        3.5
    """
    return float(bias_k) + float(pca.mean.sum())


def top_components(pca: NeuralPCA, n: int, by: str = "eigenvalue") -> np.ndarray:
    """Indices of the n leading neural PCA components (Neuhaus et al. 2023).

    ``by="eigenvalue"`` (the paper's order): the n largest lambda_l, i.e. ``0 .. n-1``.
    ``by="logit_variance"``: the n largest ``Var(alpha_l) = lambda_l * <v_l, 1>^2``, the share
    of the class-logit variance each component carries (the alphas are uncorrelated, so
    these add up to the variance of the logit).

    Args:
        pca: a :class:`NeuralPCA`.
        n: how many components (clipped to D).
        by: ``"eigenvalue"`` or ``"logit_variance"``.

    Returns:
        (min(n, D),) int64 component indices, most important first.

    Example:
        >>> import numpy as np
        >>> phi = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, -1.0]])
        >>> top_components(neural_pca(phi, np.array([1.0, 2.0]), 0), 1).tolist()
        [0]
    """
    if int(n) < 0:
        raise ValidationError(f"n: expected a non-negative number of components, got {n}")
    n = min(int(n), pca.n_components)
    if by == "eigenvalue":
        score = pca.eigenvalues
    elif by == "logit_variance":
        score = pca.eigenvalues * pca.logit_weights**2
    else:
        raise ValidationError(f"by: expected 'eigenvalue' or 'logit_variance', got {by!r}")
    order = np.argsort(-score, kind="stable")
    return order[:n].astype(np.int64)


# --------------------------------------------------------------------------- spurious score


def spurious_score(p_pos: Any, p_neg: Any) -> float:
    """Spurious score of one class: average precision (Neuhaus et al. 2023, Spurious ImageNet).

    ``AP = sum_n (R_n - R_{n-1}) P_n`` (scikit-learn's ``average_precision_score``) of the
    class probability p_k, with in-class images positive and spurious-only images (the
    spurious feature without the class object) negative. HIGH = the model separates the two
    (less spurious); ``1 - AP`` measures reliance on the spurious feature.

    Args:
        p_pos: (P,) p_k on real images of class k.
        p_neg: (M,) p_k on spurious-only images of class k.

    Returns:
        AP in [0, 1] as a float.

    Example:
        >>> round(spurious_score([0.9, 0.6], [0.7, 0.1]), 4)  # 1/2 * 1 + 1/2 * 2/3
        0.8333
    """
    pos = check_array(p_pos, "p_pos", dtype=np.float64).reshape(-1)
    neg = check_array(p_neg, "p_neg", dtype=np.float64).reshape(-1)
    if pos.size == 0 or neg.size == 0:
        raise ValidationError(
            "spurious_score needs at least one positive and one negative image, got "
            f"p_pos={pos.size}, p_neg={neg.size}"
        )
    return _average_precision(pos, neg)


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """``average_precision_score`` of scikit-learn for finite, non-empty ``pos`` and ``neg``,
    the same operations in the same order, so the same float to the last bit (tested).

    A study scores every class of every model on every spurious set; scikit-learn's call
    spent 0.7-1 ms each on checking its input and its target type, 30-50 us here.
    """
    scores = np.concatenate([pos, neg])
    order = np.argsort(-scores, kind="stable")  # within ties the order does not matter
    ranked = scores[order]
    is_pos = (order < pos.size).astype(np.float64)
    # one threshold per distinct score, the lowest last
    ends = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
    tps = np.cumsum(is_pos)[ends]
    fps = 1 + ends.astype(np.float64) - tps
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    # -0.0 from rounding is clipped, as scikit-learn does
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def spurious_score_per_class(
    probs_in: Any,
    labels_in: Any,
    probs_spur: Any,
    labels_spur: Any,
    n_classes: int | None = None,
) -> dict[str, Any]:
    """Spurious score of a model: mean over classes of :func:`spurious_score` (Neuhaus et al.).

    For class k: ``AP_k = spurious_score(probs_in[labels_in == k, k],
    probs_spur[labels_spur == k, k])``; ``mean = mean_k AP_k`` over the classes that have
    both in-class and spurious-only images. HIGH mean = less spurious;
    ``spurious_reliance = 1 - mean`` (higher = more reliance on spurious features).

    Args:
        probs_in: (N, K) softmax probabilities on real images (e.g. ImageNet val).
        labels_in: (N,) their classes.
        probs_spur: (M, K) softmax probabilities on spurious-only images.
        labels_spur: (M,) the class whose spurious feature each image shows.
        n_classes: K; defaults to ``probs_in.shape[1]``.

    Returns:
        dict with ``mean`` (float), ``per_class`` ({class: AP}), ``spurious_reliance``
        (1 - mean) and ``n_classes_scored``.

    Example:
        >>> import numpy as np
        >>> p_in = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> p_sp = np.array([[0.7, 0.3], [0.1, 0.9]])
        >>> out = spurious_score_per_class(p_in, [0, 0, 1], p_sp, [0, 0])
        >>> round(out["mean"], 4), round(out["spurious_reliance"], 4), list(out["per_class"])
        (0.8333, 0.1667, [0])
    """
    p_in = check_probs(probs_in, "probs_in")
    p_sp = check_probs(probs_spur, "probs_spur")
    k = p_in.shape[1] if n_classes is None else int(n_classes)
    for name, p in (("probs_in", p_in), ("probs_spur", p_sp)):
        if p.shape[1] != k:
            raise ValidationError(f"{name}: expected {k} classes (columns), got shape {p.shape}")
    y_in = check_labels(labels_in, "labels_in", n_classes=k)
    y_sp = check_labels(labels_spur, "labels_spur", n_classes=k)
    check_consistent_length(("probs_in", p_in), ("labels_in", y_in))
    check_consistent_length(("probs_spur", p_sp), ("labels_spur", y_sp))
    classes = np.intersect1d(np.unique(y_in), np.unique(y_sp))
    if classes.size == 0:
        raise ValidationError(
            "no class has both in-class and spurious-only images: labels_in has classes "
            f"{np.unique(y_in).tolist()[:10]}, labels_spur has {np.unique(y_sp).tolist()[:10]}"
        )
    per_class = {int(c): spurious_score(p_in[y_in == c, c], p_sp[y_sp == c, c]) for c in classes}
    mean = float(np.mean(list(per_class.values())))
    return {
        "mean": mean,
        "per_class": per_class,
        "spurious_reliance": 1.0 - mean,
        "n_classes_scored": len(per_class),
    }


# --------------------------------------------------------------------------- finding components


def spurious_component_scores(alphas_in_class: Any, alphas_spurious: Any) -> np.ndarray:
    """Per-component spuriousness score from contributions alone (no human labels).

    Rule (robustlens's automation of the paper's human inspection, Neuhaus et al. 2023):
    ``s_l = (mean_{x in S} max(0, alpha_l(x)) - mean_{x in C} max(0, alpha_l(x))) / sigma_C``,
    where S are spurious-only images, C are in-class images and ``sigma_C`` is the standard
    deviation over C of the centred class logit ``sum_l alpha_l`` (1 when that is 0 or C has
    one image). s_l is how much component l raises the class logit on spurious-only images
    beyond what it does on real class images, in units of the in-class logit spread. Only the
    positive parts count, as only those are removed by :func:`spufix`.

    Args:
        alphas_in_class: (N, D) contributions on in-class images.
        alphas_spurious: (M, D) contributions (same class's PCA) on spurious-only images.

    Returns:
        (D,) float64 scores s_l.

    Example:
        >>> import numpy as np
        >>> a_in = np.array([[1.0, 0.5], [-1.0, -0.5]])
        >>> a_sp = np.array([[0.0, 3.0], [0.0, 2.0]])
        >>> spurious_component_scores(a_in, a_sp).round(3).tolist()
        [-0.236, 1.061]
    """
    a_in = check_array(alphas_in_class, "alphas_in_class", ndim=2, dtype=np.float64)
    a_sp = check_array(alphas_spurious, "alphas_spurious", ndim=2, dtype=np.float64)
    if a_in.shape[1] != a_sp.shape[1]:
        raise ValidationError(
            "alphas_in_class and alphas_spurious must have the same number of components, "
            f"got {a_in.shape[1]} and {a_sp.shape[1]}"
        )
    gap = np.maximum(a_sp, 0.0).mean(axis=0) - np.maximum(a_in, 0.0).mean(axis=0)
    sigma = float(a_in.sum(axis=1).std(ddof=1)) if a_in.shape[0] > 1 else 0.0
    if not np.isfinite(sigma) or sigma <= 0.0:
        sigma = 1.0
    return gap / sigma


def find_spurious_components(
    alphas_in_class: Any,
    alphas_spurious: Any,
    n_flag: int = 1,
    min_gap: float = 0.0,
) -> np.ndarray:
    """Flag the components that push the class logit up on spurious-only images.

    Ranks components by :func:`spurious_component_scores` ``s_l`` (positive contribution on
    spurious-only images minus that on in-class images, over the in-class logit standard
    deviation) and returns the at most ``n_flag`` best with ``s_l > min_gap``. No human
    labels are used (Neuhaus et al., ICCV 2023, use human inspection of the top components;
    this ranks all components by their effect on spurious-only images instead).

    Args:
        alphas_in_class: (N, D) contributions on in-class images.
        alphas_spurious: (M, D) contributions on spurious-only images.
        n_flag: the most components to flag.
        min_gap: minimum score (in in-class logit standard deviations) to be flagged.

    Returns:
        int64 array of flagged component indices, highest score first (may be empty).

    Example:
        >>> import numpy as np
        >>> a_in = np.array([[1.0, 0.5], [-1.0, -0.5]])
        >>> a_sp = np.array([[0.0, 3.0], [0.0, 2.0]])
        >>> find_spurious_components(a_in, a_sp, n_flag=2).tolist()
        [1]
    """
    if int(n_flag) < 0:
        raise ValidationError(f"n_flag: expected a non-negative count, got {n_flag}")
    scores = spurious_component_scores(alphas_in_class, alphas_spurious)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > float(min_gap)]
    return order[: int(n_flag)].astype(np.int64)


# --------------------------------------------------------------------------- SpuFix


def spufix(logits: Any, alphas: Any, flagged: Any, class_index: int) -> np.ndarray:
    """SpuFix for one class (Neuhaus et al., ICCV 2023).

    ``logit_k(x) <- logit_k(x) - sum_{l in flagged} max(0, alpha_l(x))``; other classes'
    logits are unchanged. With no flagged components the result equals the input (a copy).

    Args:
        logits: (N, K) logits of the model on the images to correct.
        alphas: (N, D) contributions of class k's components on the same images.
        flagged: component indices (duplicates count once).
        class_index: the class k.

    Returns:
        (N, K) float64 corrected logits (a new array).

    Example:
        >>> import numpy as np
        >>> logits = np.array([[2.0, 1.0], [0.5, 1.0]])
        >>> alphas = np.array([[1.5, -0.2], [-0.3, 0.4]])
        >>> spufix(logits, alphas, [0], class_index=0).tolist()
        [[0.5, 1.0], [0.5, 1.0]]
    """
    out = check_array(logits, "logits", ndim=2, dtype=np.float64).copy()
    a = check_array(alphas, "alphas", ndim=2, dtype=np.float64)
    check_consistent_length(("logits", out), ("alphas", a))
    k = int(class_index)
    if not 0 <= k < out.shape[1]:
        raise ValidationError(
            f"class_index: expected an index in [0, {out.shape[1] - 1}], got {class_index}"
        )
    idx = _check_flagged(flagged, a.shape[1])
    if idx.size:
        out[:, k] -= np.maximum(a[:, idx], 0.0).sum(axis=1)
    return out


def spufix_multi(
    logits: Any,
    alphas_by_class: Mapping[int, Any],
    flagged_by_class: Mapping[int, Any],
) -> np.ndarray:
    """SpuFix for several classes at once (Neuhaus et al., ICCV 2023).

    For every class k in ``flagged_by_class``:
    ``logit_k(x) <- logit_k(x) - sum_{l in flagged[k]} max(0, alpha^k_l(x))``, with alpha^k
    the contributions of class k's own neural PCA. Classes absent or with no flagged
    components are unchanged.

    Args:
        logits: (N, K) logits.
        alphas_by_class: {k: (N, D_k) contributions of class k's components on the N images};
            needed for every class that has flagged components.
        flagged_by_class: {k: flagged component indices of class k}.

    Returns:
        (N, K) float64 corrected logits (a new array).

    Example:
        >>> import numpy as np
        >>> logits = np.zeros((1, 3))
        >>> alphas = {0: np.array([[2.0, 1.0]]), 2: np.array([[-1.0, 0.5]])}
        >>> spufix_multi(logits, alphas, {0: [0, 1], 2: [0, 1]}).tolist()
        [[-3.0, 0.0, -0.5]]
    """
    out = check_array(logits, "logits", ndim=2, dtype=np.float64).copy()
    for k, flagged in flagged_by_class.items():
        k = int(k)
        if not 0 <= k < out.shape[1]:
            raise ValidationError(f"flagged_by_class: class {k} is outside [0, {out.shape[1] - 1}]")
        if _as_index_array(flagged).size == 0:
            continue
        if k not in alphas_by_class:
            raise ValidationError(
                f"alphas_by_class: class {k} has flagged components but no contributions; "
                f"got alphas for classes {sorted(int(c) for c in alphas_by_class)}"
            )
        a = check_array(alphas_by_class[k], f"alphas_by_class[{k}]", ndim=2, dtype=np.float64)
        check_consistent_length(("logits", out), (f"alphas_by_class[{k}]", a))
        idx = _check_flagged(flagged, a.shape[1], f"flagged_by_class[{k}]")
        out[:, k] -= np.maximum(a[:, idx], 0.0).sum(axis=1)
    return out
