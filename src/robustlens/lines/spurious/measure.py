"""Spurious features: class-wise neural PCA, spurious score and SpuFix, from stored features.

Reference: Y. Neuhaus, M. Augustin, V. Boreiko, M. Hein, "Spurious Features Everywhere -
Large-Scale Detection of Harmful Spurious Features in ImageNet", ICCV 2023.

The measure reads what the engine stored (clean logits and penultimate features) on three
roles and runs no model:

* ``train``: training images; class k's neural PCA is fitted on the features of its training
  images (at most ``max_train_per_class``, evenly spaced in stored order; see
  :class:`SpuriousMeasure`). Without a ``train`` dataset the *selection* part of the ``id``
  dataset is used instead (recorded as ``pca_fit_on`` / ``pca_fit_part``).
* ``id``: real images of each class (positives of the spurious score; SpuFix's clean
  accuracy).
* ``spurious``: spurious-only images (the spurious feature of class k, no object of class k;
  the dataset label names k).

Everything is done in the model's output space: a dataset label y becomes the model class
``mapping.targets[y][0]`` (identity on the synthetic world; the ImageNet index on Spurious
ImageNet), and the class probability p_k is the softmax over all of the model's outputs, as
in the paper. The formulas live in :mod:`robustlens.metrics.spurious`.

Held-out SpuFix. The paper chooses the components to remove by inspecting them (on training
images), and reports SpuFix on Spurious ImageNet and ImageNet val, images that played no part
in the choice. robustlens chooses the components automatically from spurious-only and
in-class images, so it splits both datasets, per class and seeded
(:func:`split_selection`): components are chosen on the *selection* part
(``selection_fraction`` of each class) and every ``spufix_*`` number, before and after, is
computed on the disjoint *evaluation* rest. Choosing and scoring on the same images would make
"after" optimistic. The spurious score itself is, as in the paper, the AP over all images.

Values (``dataset`` is the spurious dataset's name unless said otherwise):

* ``spurious_score``: mean over classes of the average precision of p_k separating in-class
  images (positive) from spurious-only images (negative), over all images. HIGH = the model
  tells them apart, i.e. relies LESS on spurious features.
* ``spurious_reliance``: ``1 - spurious_score`` (higher = more reliance).
* ``spurious_trigger_rate``: fraction of (all) spurious-only images whose top-1 prediction
  (over all model outputs) is the class whose spurious feature they show.
* ``spufix_id_accuracy_before`` / ``_after``: top-1 accuracy (in the id dataset's class space,
  as the ``accuracy`` measure) on the evaluation part of the id dataset, before / after SpuFix
  with the components chosen on the selection parts.
* ``spufix_spurious_trigger_before`` / ``_after``: the trigger rate on the evaluation part of
  the spurious dataset, before / after SpuFix.
* ``spufix_spurious_score_before`` / ``_after``: the spurious score on the evaluation parts,
  from the model's / the SpuFix-corrected logits (NaN when no class has images in both
  evaluation parts).
* ``spufix_n_selection`` / ``spufix_n_evaluation``: spurious-only images in each part;
  ``spufix_n_selection_id`` / ``spufix_n_evaluation_id``: id images in each part;
  ``spufix_selection_fraction``, ``spufix_split_seed``: the split's settings.
* ``npca_train_per_class``: the neural-PCA training sample size per class (the
  ``max_train_per_class`` option; when that is ``None``, the largest number of training images
  any class had, all of which were used).
* ``n_flagged``: number of components flagged as spurious (all classes);
  ``n_classes_flagged``: classes with at least one.
* ``n_classes_scored``: classes with in-class and spurious-only images.
* ``train_mark_rate`` (dataset ``"*"``), zoo models only: the ground-truth rate of the
  spurious mark in the model's training data (recipe ``mark_rate``; ``None`` there means the
  world's rate, taken from the model config's ``world_mark_rate`` if present, else the
  ``default_mark_rate`` option).

Per-sample columns: on the spurious dataset ``sample_id``, ``spurious_class_prob``,
``spufix_prediction`` (every image) and ``spufix_part`` (``"selection"`` or
``"evaluation"``); on the id dataset ``spufix_part``.

Artifacts: ``{"protocol": {"name", "paper", "parameters": {...}, "definitions": {...}},
"train_mark_rate": r, "sets": {spurious dataset: {"train_dataset", "id_dataset",
"spurious_dataset", "pca_fit_on", "pca_fit_part", "npca_train_per_class", "split":
{selection_fraction, split_seed, n_selection, n_evaluation, n_selection_id,
n_evaluation_id}, "spurious_score", "spufix": {the spufix_* values}, "classes": [per class:
class_index, class_name, ap, n_train, n_id, n_spurious, n_id_selection,
n_spurious_selection, ap_evaluation_before, ap_evaluation_after, eigenvalues (top n),
flagged, flagged_scores, components: [component, eigenvalue, logit_weight,
spurious_component_score (on the selection part), mean_alpha_id, mean_alpha_spurious (all
images), flagged, top_train {dataset, indices, sample_ids, alphas}, top_spurious
{...}]]}}}``; ``indices`` are positions in the datasets (what ``Dataset.load`` takes), for
the image grids of :mod:`robustlens.lines.spurious.grids`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustlens._validation import softmax
from robustlens.data.base import ClassMapping
from robustlens.errors import ConfigError, ValidationError
from robustlens.measure import (
    DatasetContext,
    DatasetInfo,
    Measure,
    MeasureOutput,
    ModelInfo,
    dataset_predictions,
)
from robustlens.metrics.spurious import (
    NeuralPCA,
    component_contributions,
    find_spurious_components,
    neural_pca,
    spufix_multi,
    spurious_component_scores,
    spurious_score_per_class,
    top_components,
)

__all__ = [
    "EVALUATION",
    "PAPER",
    "PROTOCOL_NAME",
    "SELECTION",
    "SpuriousMeasure",
    "class_pca",
    "contributions_chunked",
    "model_space_labels",
    "split_selection",
    "train_mark_rate",
]

ROLES_USED = ("train", "id", "spurious")
_CHUNK_ROWS = 4096
PAPER = (
    "Neuhaus et al., Spurious Features Everywhere - Large-Scale Detection of Harmful "
    "Spurious Features in ImageNet, ICCV 2023"
)
PROTOCOL_NAME = "spurious_features_everywhere"
SELECTION, EVALUATION = "selection", "evaluation"
#: random streams of the split, so that the id and spurious splits are drawn independently
_STREAM_ID, _STREAM_SPURIOUS = 0, 1


def model_space_labels(labels: np.ndarray, mapping: ClassMapping, dataset: str = "") -> np.ndarray:
    """Dataset labels as model output indices: ``mapping.targets[y][0]``.

    Raises:
        ValidationError: a class of the dataset maps onto several (or no) model outputs, so
            that "the class logit" is not defined (e.g. ObjectNet's many-to-one classes).
    """
    labels = np.asarray(labels, dtype=np.int64)
    used = np.unique(labels)
    bad = [int(c) for c in used if len(mapping.targets[int(c)]) != 1]
    if bad:
        raise ValidationError(
            f"dataset {dataset!r}: classes {bad[:5]} map onto {len(mapping.targets[bad[0]])} "
            "model outputs; neural PCA needs each class to be one model output (give the "
            "dataset a one-to-one class mapping)"
        )
    lut = np.array([t[0] if len(t) == 1 else -1 for t in mapping.targets], dtype=np.int64)
    return lut[labels] if len(labels) else labels


def train_mark_rate(config: Mapping[str, Any], default: float = 0.8) -> float | None:
    """Ground-truth spurious-mark rate a zoo model was trained with (None for other models).

    ``config["member"]["mark_rate"]``; ``None`` there means the world's rate:
    ``config["world_mark_rate"]`` when the model config carries it, else ``default``.

    Example:
        >>> train_mark_rate({"member": {"mark_rate": None}}, default=0.8)
        0.8
        >>> train_mark_rate({"member": {"mark_rate": 0.0}}), train_mark_rate({"arch": "x"})
        (0.0, None)
    """
    member = config.get("member") if isinstance(config, Mapping) else None
    if not isinstance(member, Mapping):
        return None
    rate = member.get("mark_rate")
    if rate is None:
        rate = config.get("world_mark_rate", default)
    return None if rate is None else float(rate)


def _even_rows(rows: np.ndarray, n_max: int | None) -> np.ndarray:
    if n_max is None or n_max <= 0 or len(rows) <= n_max:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, n_max).round().astype(np.int64))]


def split_selection(labels: np.ndarray, fraction: float, seed: int, stream: int = 0) -> np.ndarray:
    """Per-class seeded split of a dataset into a selection and an evaluation part.

    For each class c with n images: its rows are permuted with
    ``np.random.default_rng([seed, stream, c])`` and the first
    ``clip(floor(fraction * n + 1/2), 1, n - 1)`` go to the selection part, the rest to the
    evaluation part; a class with a single image goes wholly to the evaluation part. The
    split depends only on the labels, ``seed`` and ``stream`` (never on features or
    predictions), and a class's split only on that class's rows. Negative labels (no class)
    go to the evaluation part.

    Args:
        labels: (N,) class of each row.
        fraction: share of each class in the selection part, in (0, 1).
        seed: the split's seed (>= 0).
        stream: a second seed word, to split two datasets independently with one seed.

    Returns:
        (N,) bool mask, True for the selection part.

    Example:
        >>> mask = split_selection(np.array([0, 0, 0, 0, 1, 1, 2]), 0.5, seed=0)
        >>> int(mask[:4].sum()), int(mask[4:6].sum()), bool(mask[6])
        (2, 1, False)
    """
    fraction = float(fraction)
    if not 0.0 < fraction < 1.0:
        raise ValidationError(f"fraction: expected a number in (0, 1), got {fraction}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        if c < 0:
            continue
        rows = np.flatnonzero(labels == c)
        n = len(rows)
        if n < 2:
            continue
        n_sel = int(np.clip(np.floor(fraction * n + 0.5), 1, n - 1))
        perm = np.random.default_rng([int(seed), int(stream), int(c)]).permutation(n)
        mask[rows[perm[:n_sel]]] = True
    return mask


def class_pca(
    features: np.ndarray,
    labels_model: np.ndarray,
    weight: np.ndarray,
    class_index: int,
    max_per_class: int | None = 500,
) -> tuple[NeuralPCA, np.ndarray] | None:
    """Neural PCA of class k from the rows labelled k (at most ``max_per_class``, evenly spaced;
    all of them when ``None``). Rows labelled -1 are never used (e.g. a held-out part).

    Returns:
        ``(pca, rows)`` with the row indices used, or ``None`` when fewer than 2 rows carry
        the class (no covariance can be estimated).
    """
    rows = _even_rows(np.flatnonzero(labels_model == class_index), max_per_class)
    if len(rows) < 2:
        return None
    return neural_pca(features[rows], weight, class_index), rows


def contributions_chunked(
    features: np.ndarray, pca: NeuralPCA, columns: np.ndarray | None = None
) -> np.ndarray:
    """:func:`~robustlens.metrics.spurious.component_contributions`, row chunk by row chunk.

    Keeps only ``columns`` (all when ``None``), so that the memory stays bounded for large
    datasets and wide features (N x D float64 would not fit for ImageNet val at D = 2048).
    """
    n = len(features)
    width = pca.n_components if columns is None else len(columns)
    out = np.empty((n, width), dtype=np.float64)
    for start in range(0, n, _CHUNK_ROWS):
        a = component_contributions(features[start : start + _CHUNK_ROWS], pca)
        out[start : start + _CHUNK_ROWS] = a if columns is None else a[:, columns]
    return out


@dataclass(frozen=True)
class _Set:
    """One dataset's stored clean arrays, its labels also in the model's output space."""

    name: str
    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray  # dataset classes
    y: np.ndarray  # model outputs (model_space_labels)
    index: np.ndarray
    sample_ids: np.ndarray

    @classmethod
    def load(cls, data: DatasetContext, n_features: int) -> _Set:
        a = data.arrays
        feats = np.asarray(a.features("clean"), dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != n_features:
            raise ValidationError(
                f"dataset {data.name!r}: stored features have shape {feats.shape}, expected "
                f"(N, {n_features}) to match the model's last-layer weight"
            )
        labels = np.asarray(a.labels(), dtype=np.int64)
        return cls(
            name=data.name,
            features=feats,
            logits=np.asarray(a.logits("clean"), dtype=np.float64),
            labels=labels,
            y=model_space_labels(labels, data.mapping, data.name),
            index=np.asarray(a.index(), dtype=np.int64),
            sample_ids=np.asarray(a.sample_ids(), dtype=np.int64),
        )

    def top_images(self, rows: np.ndarray, alphas: np.ndarray, n: int) -> dict[str, Any]:
        """The ``n`` of ``rows`` with the largest ``alphas`` (one component's), largest first."""
        top = np.argsort(-alphas, kind="stable")[:n]
        return {
            "dataset": self.name,
            "indices": self.index[rows[top]].tolist(),
            "sample_ids": self.sample_ids[rows[top]].tolist(),
            "alphas": alphas[top].tolist(),
        }


def _mean(hits: np.ndarray) -> float:
    """Mean of a boolean array; NaN when empty (an empty part has no rate)."""
    return float(np.mean(hits)) if len(hits) else float("nan")


def _score_or_nan(
    p_in: np.ndarray, y_in: np.ndarray, p_sp: np.ndarray, y_sp: np.ndarray, n_classes: int
) -> dict[str, Any]:
    """:func:`spurious_score_per_class`, or ``mean`` NaN when no class has both kinds of image."""
    if not len(np.intersect1d(y_in, y_sp)):
        return {"mean": float("nan"), "per_class": {}}
    return spurious_score_per_class(p_in, y_in, p_sp, y_sp, n_classes)


class SpuriousMeasure(Measure):
    """Neural PCA, spurious score and SpuFix (Neuhaus et al., ICCV 2023); see the module doc.

    Args:
        n_components_shown: top components (by eigenvalue) kept per class in the artifacts.
        n_flag: at most this many components flagged as spurious per class.
        min_gap: minimum spurious-component score (in in-class logit standard deviations) to
            flag a component (:func:`~robustlens.metrics.spurious.find_spurious_components`).
        max_train_per_class: training images per class the neural PCA is fitted on (evenly
            spaced in stored order); ``None`` uses every training image of the class, as the
            reference code does (732 to 1300 per class on ImageNet). The default 500 gives
            every class the same sample size when classes have unequal numbers of training
            images, and bounds the covariance's cost (n x D^2 per class, 1000 classes on
            ImageNet); the leading components - those that carry most of the class logit's
            variance and are the candidates flagged - are estimated well from hundreds of
            images, while trailing ones (the covariance has rank at most n - 1) depend more
            on n. The value used is recorded as ``npca_train_per_class`` and in the
            protocol, since it moves the components and hence SpuFix.
        n_top_images: top-activating images kept per component for the image grids.
        default_mark_rate: the world's mark rate for zoo models trained at the default rate.
        selection_fraction: share of each class's spurious-only and id images on which the
            components to remove are chosen (the *selection* part); every ``spufix_*`` number
            is computed on the disjoint rest (the *evaluation* part), so that "after" is not
            measured on the images that chose the components. In (0, 1).
        split_seed: seed of the per-class split (:func:`split_selection`), >= 0.
    """

    name = "spurious"
    description = "neural PCA components, spurious score (AP) and held-out SpuFix per model"
    paper = PAPER

    def __init__(
        self,
        n_components_shown: int = 3,
        n_flag: int = 1,
        min_gap: float = 0.5,
        max_train_per_class: int | None = 500,
        n_top_images: int = 8,
        default_mark_rate: float = 0.8,
        selection_fraction: float = 0.5,
        split_seed: int = 0,
    ) -> None:
        for name, v in (
            ("n_components_shown", n_components_shown),
            ("n_flag", n_flag),
            ("n_top_images", n_top_images),
        ):
            if int(v) < 0:
                raise ConfigError(f"spurious measure: {name} must be >= 0, got {v}")
        if max_train_per_class is not None and (
            isinstance(max_train_per_class, bool) or int(max_train_per_class) < 2
        ):
            raise ConfigError(
                f"spurious measure: max_train_per_class must be >= 2 (a covariance needs two "
                f"images) or None (every training image), got {max_train_per_class}"
            )
        self.n_components_shown = int(n_components_shown)
        self.n_flag = int(n_flag)
        self.min_gap = float(min_gap)
        self.max_train_per_class = None if max_train_per_class is None else int(max_train_per_class)
        self.n_top_images = int(n_top_images)
        self.default_mark_rate = float(default_mark_rate)
        self.selection_fraction = _check_fraction(selection_fraction)
        self.split_seed = _check_seed(split_seed)

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {"clean": True} if dataset.role in ROLES_USED else {}

    def protocol(self) -> dict[str, Any]:
        """The protocol recorded with the results: name, paper, every parameter that moves
        the numbers, and the definitions they enter."""
        return {
            **super().protocol(),
            "name": PROTOCOL_NAME,
            "parameters": {
                "max_train_per_class": self.max_train_per_class,
                "n_flag": self.n_flag,
                "min_gap": self.min_gap,
                "selection_fraction": self.selection_fraction,
                "split_seed": self.split_seed,
                "default_mark_rate": self.default_mark_rate,
            },
            "display": {
                "n_components_shown": self.n_components_shown,
                "n_top_images": self.n_top_images,
            },
            "definitions": {
                "probabilities": "softmax over all model outputs; dataset labels mapped to "
                "model outputs",
                "spurious_score": "mean over classes of the average precision of p_k with "
                "in-class id images positive and spurious-only images negative, all images",
                "neural_pca": "eigenvectors of the covariance of phi * w_k over the class's "
                "training images (at most max_train_per_class, evenly spaced in stored "
                "order; without a train dataset, the id dataset's selection part)",
                "component_selection": "automatic: at most n_flag components whose "
                "spurious-component score exceeds min_gap, computed on the selection part "
                "(the paper inspects components by hand)",
                "split": "per class, seeded permutation: round(selection_fraction * n) "
                "images (at least 1, at most n - 1) to the selection part, the rest to "
                "the evaluation part; id and spurious datasets split independently",
                "spufix": "logit_k -= sum over flagged components l of max(0, alpha_l); "
                "spufix_* numbers (before and after) on the evaluation part",
            },
        }

    # ------------------------------------------------------------------ compute
    def compute_datasets(self, data: Mapping[str, DatasetContext], out: MeasureOutput) -> None:
        """Each spurious dataset against the first ``id`` and ``train`` datasets (by name)."""
        if not data:
            return
        model = next(iter(data.values())).model
        rate = train_mark_rate(model.config, self.default_mark_rate)
        if rate is not None:
            out.values[("*", "train_mark_rate")] = rate
        out.artifacts = {"protocol": self.protocol(), "train_mark_rate": rate, "sets": {}}
        by_role: dict[str, list[DatasetContext]] = {r: [] for r in ROLES_USED}
        for name in sorted(data):
            by_role[data[name].info.role].append(data[name])
        spurious, ids = by_role["spurious"], by_role["id"]
        if not spurious:
            return
        if not ids:
            raise ConfigError(
                f"the spurious measure needs a dataset with role 'id' (real images of the "
                f"classes) next to {[d.name for d in spurious]}; add one (e.g. world split "
                "'val' or an imagenet_val layout)"
            )
        if model.weight is None:
            raise ValidationError(
                f"model {model.name!r} exposes no last-layer weight; neural PCA needs "
                "ModelInfo.weight (the adapter's classifier_weights())"
            )
        weight = np.asarray(model.weight, dtype=np.float64)
        train = (by_role["train"] or ids)[0]
        out.artifacts["sets"] = {
            d.name: self._one_set(model, weight, train, ids[0], d, out) for d in spurious
        }

    def _one_set(
        self,
        model: ModelInfo,
        weight: np.ndarray,
        train: DatasetContext,
        id_data: DatasetContext,
        spur: DatasetContext,
        out: MeasureOutput,
    ) -> dict[str, Any]:
        """One spurious dataset: its numbers and per-sample columns into ``out``; its artifacts."""
        d = weight.shape[1]
        tr = _Set.load(train, d)
        iid = tr if train.name == id_data.name else _Set.load(id_data, d)
        sp = _Set.load(spur, d)
        n_classes = weight.shape[0]
        sel_id = split_selection(iid.y, self.selection_fraction, self.split_seed, _STREAM_ID)
        sel_sp = split_selection(sp.y, self.selection_fraction, self.split_seed, _STREAM_SPURIOUS)
        # without a train dataset the PCA is fitted on the id selection part only, so that
        # nothing of the evaluation part enters the choice of components
        fit_on_id = tr is iid
        fit_labels = np.where(sel_id, tr.y, -1) if fit_on_id else tr.y
        p_id, p_sp = softmax(iid.logits), softmax(sp.logits)
        try:
            score = spurious_score_per_class(p_id, iid.y, p_sp, sp.y, n_classes)
        except ValidationError as exc:
            raise ValidationError(
                f"spurious score of model {model.name!r} on {iid.name!r} vs {sp.name!r}: {exc}"
            ) from exc
        trigger = _mean(sp.logits.argmax(axis=1) == sp.y)

        classes: list[dict[str, Any]] = []
        fix_id: dict[int, np.ndarray] = {}
        fix_sp: dict[int, np.ndarray] = {}
        flagged_by_class: dict[int, np.ndarray] = {}
        for k, ap in score["per_class"].items():
            info, fix = self._class(model, weight, k, ap, tr, fit_labels, iid, sel_id, sp, sel_sp)
            classes.append(info)
            if fix is not None:
                flagged_by_class[k] = np.arange(len(info["flagged"]))
                fix_id[k], fix_sp[k] = fix

        fixed_id = spufix_multi(iid.logits, fix_id, flagged_by_class)
        fixed_sp = spufix_multi(sp.logits, fix_sp, flagged_by_class)
        ev_id, ev_sp = ~sel_id, ~sel_sp
        before = _score_or_nan(p_id[ev_id], iid.y[ev_id], p_sp[ev_sp], sp.y[ev_sp], n_classes)
        after = _score_or_nan(
            softmax(fixed_id[ev_id]), iid.y[ev_id], softmax(fixed_sp[ev_sp]), sp.y[ev_sp], n_classes
        )
        for info in classes:
            k = info["class_index"]
            info["ap_evaluation_before"] = before["per_class"].get(k, float("nan"))
            info["ap_evaluation_after"] = after["per_class"].get(k, float("nan"))
        id_map = id_data.mapping
        pred_id = dataset_predictions(iid.logits, id_map)[1]
        pred_id_fixed = dataset_predictions(fixed_id, id_map)[1]
        n_train = [c["n_train"] for c in classes]
        npca = self.max_train_per_class
        if npca is None:
            npca = max(n_train, default=0)
        split = {
            "selection_fraction": self.selection_fraction,
            "split_seed": self.split_seed,
            "n_selection": int(sel_sp.sum()),
            "n_evaluation": int(ev_sp.sum()),
            "n_selection_id": int(sel_id.sum()),
            "n_evaluation_id": int(ev_id.sum()),
        }
        spufix_values = {
            "spufix_id_accuracy_before": _mean(pred_id[ev_id] == iid.labels[ev_id]),
            "spufix_id_accuracy_after": _mean(pred_id_fixed[ev_id] == iid.labels[ev_id]),
            "spufix_spurious_trigger_before": _mean(sp.logits[ev_sp].argmax(axis=1) == sp.y[ev_sp]),
            "spufix_spurious_trigger_after": _mean(fixed_sp[ev_sp].argmax(axis=1) == sp.y[ev_sp]),
            "spufix_spurious_score_before": float(before["mean"]),
            "spufix_spurious_score_after": float(after["mean"]),
        }
        values = {
            "spurious_score": score["mean"],
            "spurious_reliance": score["spurious_reliance"],
            "spurious_trigger_rate": trigger,
            "n_classes_scored": float(score["n_classes_scored"]),
            "n_flagged": float(sum(len(f) for f in flagged_by_class.values())),
            "n_classes_flagged": float(len(flagged_by_class)),
            **spufix_values,
            **{f"spufix_{key}": float(v) for key, v in split.items()},
            "npca_train_per_class": float(npca),
        }
        out.values.update({(sp.name, name): v for name, v in values.items()})
        out.per_sample[sp.name] = {
            "sample_id": sp.sample_ids,
            "spurious_class_prob": p_sp[np.arange(len(sp.y)), sp.y],
            "spufix_prediction": fixed_sp.argmax(axis=1).astype(np.int64),
            "spufix_part": np.where(sel_sp, SELECTION, EVALUATION),
        }
        out.per_sample.setdefault(iid.name, {})["spufix_part"] = np.where(
            sel_id, SELECTION, EVALUATION
        )
        return {
            "train_dataset": tr.name,
            "id_dataset": iid.name,
            "spurious_dataset": sp.name,
            "pca_fit_on": tr.name,
            "pca_fit_part": SELECTION if fit_on_id else "all",
            "npca_train_per_class": self.max_train_per_class,
            "split": split,
            "spurious_score": score["mean"],
            "spurious_trigger_rate": trigger,
            "spufix": spufix_values,
            "classes": classes,
        }

    def _class(
        self,
        model: ModelInfo,
        weight: np.ndarray,
        k: int,
        ap: float,
        tr: _Set,
        fit_labels: np.ndarray,
        iid: _Set,
        sel_id: np.ndarray,
        sp: _Set,
        sel_sp: np.ndarray,
    ) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
        """Class k's neural PCA: its artifact entry, and SpuFix's contributions of the flagged
        components on the id and spurious datasets (``None`` when none is flagged).

        The components are chosen from the selection parts (``sel_id``, ``sel_sp``) alone.
        """
        in_rows = np.flatnonzero(iid.y == k)
        sp_rows = np.flatnonzero(sp.y == k)
        in_sel, sp_sel = sel_id[in_rows], sel_sp[sp_rows]
        info: dict[str, Any] = {
            "class_index": int(k),
            "class_name": model.classes[k] if k < len(model.classes) else str(k),
            "ap": float(ap),
            "n_id": len(in_rows),
            "n_spurious": len(sp_rows),
            "n_id_selection": int(in_sel.sum()),
            "n_spurious_selection": int(sp_sel.sum()),
        }
        fitted = class_pca(tr.features, fit_labels, weight, k, self.max_train_per_class)
        if fitted is None:
            info.update(
                n_train=int((fit_labels == k).sum()), flagged=[], skipped="fewer than 2 images"
            )
            return info, None
        pca, train_rows = fitted
        a_tr = contributions_chunked(tr.features[train_rows], pca)
        a_in = contributions_chunked(iid.features[in_rows], pca)
        a_sp = contributions_chunked(sp.features[sp_rows], pca)
        if in_sel.any() and sp_sel.any():
            comp_scores = spurious_component_scores(a_in[in_sel], a_sp[sp_sel])
            flagged = find_spurious_components(
                a_in[in_sel], a_sp[sp_sel], self.n_flag, self.min_gap
            )
        else:
            comp_scores = np.full(pca.n_components, np.nan)
            flagged = np.zeros(0, dtype=np.int64)
            info["note"] = "no in-class or no spurious-only image in the selection part"
        flagged_list = flagged.tolist()
        shown = dict.fromkeys(
            [*top_components(pca, self.n_components_shown).tolist(), *flagged_list]
        )
        n = self.n_top_images
        info.update(
            n_train=len(train_rows),
            eigenvalues=pca.eigenvalues[: self.n_components_shown].tolist(),
            flagged=flagged_list,
            flagged_scores=comp_scores[flagged].tolist(),
            components=[
                {
                    "component": int(c),
                    "eigenvalue": float(pca.eigenvalues[c]),
                    "logit_weight": float(pca.logit_weights[c]),
                    "spurious_component_score": float(comp_scores[c]),
                    "mean_alpha_id": float(a_in[:, c].mean()) if len(a_in) else float("nan"),
                    "mean_alpha_spurious": float(a_sp[:, c].mean()) if len(a_sp) else float("nan"),
                    "flagged": c in flagged_list,
                    "top_train": tr.top_images(train_rows, a_tr[:, c], n),
                    "top_spurious": sp.top_images(sp_rows, a_sp[:, c], n),
                }
                for c in shown
            ],
        )
        if not len(flagged):
            return info, None
        return info, (
            contributions_chunked(iid.features, pca, flagged),
            contributions_chunked(sp.features, pca, flagged),
        )


def _check_fraction(v: Any) -> float:
    """``selection_fraction`` as a float in (0, 1), or a ConfigError naming it."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if isinstance(v, bool) or not 0.0 < f < 1.0:
        raise ConfigError(
            "spurious measure: selection_fraction must be a number strictly between 0 and 1 "
            "(the share of each class's images on which SpuFix's components are chosen; the "
            f"rest is where SpuFix is evaluated), got {v!r}"
        )
    return f


def _check_seed(v: Any) -> int:
    """``split_seed`` as a non-negative int, or a ConfigError naming it."""
    ok = isinstance(v, int | np.integer) and not isinstance(v, bool) and int(v) >= 0
    if not ok:
        raise ConfigError(f"spurious measure: split_seed must be an integer >= 0, got {v!r}")
    return int(v)
