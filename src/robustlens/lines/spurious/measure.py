"""Spurious features: class-wise neural PCA, spurious score and SpuFix, from stored features.

Reference: Y. Neuhaus, M. Augustin, V. Boreiko, M. Hein, "Spurious Features Everywhere -
Large-Scale Detection of Harmful Spurious Features in ImageNet", ICCV 2023.

The measure reads what the engine stored (clean logits and penultimate features) on three
roles and runs no model:

* ``train``: training images; class k's neural PCA is fitted on the features of its training
  images (at most ``max_train_per_class``, evenly spaced in stored order). Without a
  ``train`` dataset the ``id`` dataset is used instead (recorded as ``pca_fit_on``).
* ``id``: real images of each class (positives of the spurious score; SpuFix's clean
  accuracy).
* ``spurious``: spurious-only images (the spurious feature of class k, no object of class k;
  the dataset label names k).

Everything is done in the model's output space: a dataset label y becomes the model class
``mapping.targets[y][0]`` (identity on the synthetic world; the ImageNet index on Spurious
ImageNet), and the class probability p_k is the softmax over all of the model's outputs, as
in the paper. The formulas live in :mod:`robustlens.metrics.spurious`.

Values (``dataset`` is the spurious dataset's name unless said otherwise):

* ``spurious_score``: mean over classes of the average precision of p_k separating in-class
  images (positive) from spurious-only images (negative). HIGH = the model tells them apart,
  i.e. relies LESS on spurious features.
* ``spurious_reliance``: ``1 - spurious_score`` (higher = more reliance).
* ``spurious_trigger_rate``: fraction of spurious-only images whose top-1 prediction (over
  all model outputs) is the class whose spurious feature they show.
* ``spufix_id_accuracy_before`` / ``_after``: top-1 accuracy (in the id dataset's class space,
  as the ``accuracy`` measure) on the id dataset, before / after SpuFix with the components
  flagged from this spurious dataset.
* ``spufix_spurious_trigger_before`` / ``_after``: the trigger rate before / after SpuFix.
* ``spufix_spurious_score_after``: the spurious score from SpuFix-corrected logits.
* ``n_flagged``: number of components flagged as spurious (all classes);
  ``n_classes_flagged``: classes with at least one.
* ``n_classes_scored``: classes with in-class and spurious-only images.
* ``train_mark_rate`` (dataset ``"*"``), zoo models only: the ground-truth rate of the
  spurious mark in the model's training data (recipe ``mark_rate``; ``None`` there means the
  world's rate, taken from the model config's ``world_mark_rate`` if present, else the
  ``default_mark_rate`` option).

Artifacts: ``{"train_mark_rate": r, "sets": {spurious dataset: {"train_dataset",
"id_dataset", "spurious_dataset", "pca_fit_on", "spurious_score", "classes": [per class:
class_index, class_name, ap, n_train, n_id, n_spurious, eigenvalues (top n), flagged,
flagged_scores, components: [component, eigenvalue, logit_weight, spurious_component_score,
mean_alpha_id, mean_alpha_spurious, flagged, top_train {dataset, indices, sample_ids,
alphas}, top_spurious {...}]]}}}``; ``indices`` are positions in the datasets (what
``Dataset.load`` takes), for the image grids of :mod:`robustlens.lines.spurious.grids`.
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
    "SpuriousMeasure",
    "class_pca",
    "contributions_chunked",
    "model_space_labels",
    "train_mark_rate",
]

ROLES_USED = ("train", "id", "spurious")
_CHUNK_ROWS = 4096


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


def _even_rows(rows: np.ndarray, n_max: int) -> np.ndarray:
    if n_max <= 0 or len(rows) <= n_max:
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, n_max).round().astype(np.int64))]


def class_pca(
    features: np.ndarray,
    labels_model: np.ndarray,
    weight: np.ndarray,
    class_index: int,
    max_per_class: int = 500,
) -> tuple[NeuralPCA, np.ndarray] | None:
    """Neural PCA of class k from the rows labelled k (at most ``max_per_class``, evenly spaced).

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


class SpuriousMeasure(Measure):
    """Neural PCA, spurious score and SpuFix (Neuhaus et al., ICCV 2023); see the module doc.

    Args:
        n_components_shown: top components (by eigenvalue) kept per class in the artifacts.
        n_flag: at most this many components flagged as spurious per class.
        min_gap: minimum spurious-component score (in in-class logit standard deviations) to
            flag a component (:func:`~robustlens.metrics.spurious.find_spurious_components`).
        max_train_per_class: training images per class used for the neural PCA.
        n_top_images: top-activating images kept per component for the image grids.
        default_mark_rate: the world's mark rate for zoo models trained at the default rate.
    """

    name = "spurious"
    description = "neural PCA components, spurious score (AP) and SpuFix per model"

    def __init__(
        self,
        n_components_shown: int = 3,
        n_flag: int = 1,
        min_gap: float = 0.5,
        max_train_per_class: int = 500,
        n_top_images: int = 8,
        default_mark_rate: float = 0.8,
    ) -> None:
        for name, v in (
            ("n_components_shown", n_components_shown),
            ("n_flag", n_flag),
            ("n_top_images", n_top_images),
        ):
            if int(v) < 0:
                raise ConfigError(f"spurious measure: {name} must be >= 0, got {v}")
        if int(max_train_per_class) < 2:
            raise ConfigError(
                f"spurious measure: max_train_per_class must be >= 2 (a covariance needs two "
                f"images), got {max_train_per_class}"
            )
        self.n_components_shown = int(n_components_shown)
        self.n_flag = int(n_flag)
        self.min_gap = float(min_gap)
        self.max_train_per_class = int(max_train_per_class)
        self.n_top_images = int(n_top_images)
        self.default_mark_rate = float(default_mark_rate)

    def requests(self, dataset: DatasetInfo) -> dict[str, bool]:
        return {"clean": True} if dataset.role in ROLES_USED else {}

    # ------------------------------------------------------------------ compute
    def compute_datasets(self, data: Mapping[str, DatasetContext], out: MeasureOutput) -> None:
        """Each spurious dataset against the first ``id`` and ``train`` datasets (by name)."""
        if not data:
            return
        model = next(iter(data.values())).model
        rate = train_mark_rate(model.config, self.default_mark_rate)
        if rate is not None:
            out.values[("*", "train_mark_rate")] = rate
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
        out.artifacts = {
            "train_mark_rate": rate,
            "sets": {d.name: self._one_set(model, weight, train, ids[0], d, out) for d in spurious},
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
        p_id, p_sp = softmax(iid.logits), softmax(sp.logits)
        try:
            score = spurious_score_per_class(p_id, iid.y, p_sp, sp.y, n_classes)
        except ValidationError as exc:
            raise ValidationError(
                f"spurious score of model {model.name!r} on {iid.name!r} vs {sp.name!r}: {exc}"
            ) from exc
        trigger = float(np.mean(sp.logits.argmax(axis=1) == sp.y))

        classes: list[dict[str, Any]] = []
        fix_id: dict[int, np.ndarray] = {}
        fix_sp: dict[int, np.ndarray] = {}
        flagged_by_class: dict[int, np.ndarray] = {}
        for k, ap in score["per_class"].items():
            info, fix = self._class(model, weight, k, ap, tr, iid, sp)
            classes.append(info)
            if fix is not None:
                flagged_by_class[k] = np.arange(len(info["flagged"]))
                fix_id[k], fix_sp[k] = fix

        fixed_id = spufix_multi(iid.logits, fix_id, flagged_by_class)
        fixed_sp = spufix_multi(sp.logits, fix_sp, flagged_by_class)
        id_map = id_data.mapping
        score_after = spurious_score_per_class(
            softmax(fixed_id), iid.y, softmax(fixed_sp), sp.y, n_classes
        )["mean"]
        values = {
            "spurious_score": score["mean"],
            "spurious_reliance": score["spurious_reliance"],
            "spurious_trigger_rate": trigger,
            "n_classes_scored": float(score["n_classes_scored"]),
            "n_flagged": float(sum(len(f) for f in flagged_by_class.values())),
            "n_classes_flagged": float(len(flagged_by_class)),
            "spufix_id_accuracy_before": float(
                np.mean(dataset_predictions(iid.logits, id_map)[1] == iid.labels)
            ),
            "spufix_id_accuracy_after": float(
                np.mean(dataset_predictions(fixed_id, id_map)[1] == iid.labels)
            ),
            "spufix_spurious_trigger_before": trigger,
            "spufix_spurious_trigger_after": float(np.mean(fixed_sp.argmax(axis=1) == sp.y)),
            "spufix_spurious_score_after": float(score_after),
        }
        out.values.update({(sp.name, name): v for name, v in values.items()})
        out.per_sample[sp.name] = {
            "sample_id": sp.sample_ids,
            "spurious_class_prob": p_sp[np.arange(len(sp.y)), sp.y],
            "spufix_prediction": fixed_sp.argmax(axis=1).astype(np.int64),
        }
        return {
            "train_dataset": tr.name,
            "id_dataset": iid.name,
            "spurious_dataset": sp.name,
            "pca_fit_on": tr.name,
            "spurious_score": score["mean"],
            "spurious_trigger_rate": trigger,
            "classes": classes,
        }

    def _class(
        self,
        model: ModelInfo,
        weight: np.ndarray,
        k: int,
        ap: float,
        tr: _Set,
        iid: _Set,
        sp: _Set,
    ) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
        """Class k's neural PCA: its artifact entry, and SpuFix's contributions of the flagged
        components on the id and spurious datasets (``None`` when none is flagged)."""
        info: dict[str, Any] = {
            "class_index": int(k),
            "class_name": model.classes[k] if k < len(model.classes) else str(k),
            "ap": float(ap),
            "n_id": int((iid.y == k).sum()),
            "n_spurious": int((sp.y == k).sum()),
        }
        fitted = class_pca(tr.features, tr.y, weight, k, self.max_train_per_class)
        if fitted is None:
            info.update(n_train=int((tr.y == k).sum()), skipped="fewer than 2 images")
            return info, None
        pca, train_rows = fitted
        sp_rows = np.flatnonzero(sp.y == k)
        a_tr = contributions_chunked(tr.features[train_rows], pca)
        a_in = contributions_chunked(iid.features[np.flatnonzero(iid.y == k)], pca)
        a_sp = contributions_chunked(sp.features[sp_rows], pca)
        comp_scores = spurious_component_scores(a_in, a_sp)
        flagged = find_spurious_components(a_in, a_sp, self.n_flag, self.min_gap)
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
