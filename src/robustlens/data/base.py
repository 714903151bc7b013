"""The dataset contract: what the engine reads and what measures know about a dataset.

A dataset is a sequence of samples. Each sample is a decoded ``uint8`` image of shape
(H, W, 3), an integer label in the dataset's own class list, extra labels where the set has
them (``texture_label`` of a cue-conflict image, ``spurious_label`` of a spurious image) and a
stable 63-bit sample id that seeds every random view of that sample.

How dataset classes relate to a model's classes is always explicit (:class:`ClassMapping`):
identity when the class names agree, a mask for ImageNet-R/-A, a many-to-one mapping for
ObjectNet and the 16 cue-conflict categories. Nothing is masked silently: a study scores a
folder whose classes are some of the model's over the model's whole class space
(:class:`robustlens.data.derived.ModelClassesDataset`), and restricts to the dataset's classes
(:data:`RESTRICTED`) only where the study file asks (``restrict_classes: true``). Each
mapping states the class space it scores in (:attr:`ClassMapping.summary`).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from robustlens.errors import ClassMismatchError


def stable_id(text: str) -> int:
    """A 63-bit integer id from a string (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def placeholder_classes(classes: Sequence[str]) -> bool:
    """Whether ``classes`` are the made-up names of a model that gave none
    (``class_0 .. class_{K-1}``, in order).

    >>> placeholder_classes(["class_0", "class_1"]), placeholder_classes(["cat", "dog"])
    (True, False)
    """
    return len(classes) > 0 and all(c == f"class_{i}" for i, c in enumerate(classes))


@dataclass(frozen=True)
class Sample:
    """One decoded sample."""

    image: np.ndarray  # uint8 (H, W, 3)
    label: int
    sample_id: int
    extras: dict[str, int] = field(default_factory=dict)


#: how a mapping onto a subset of a model's classes, matched by name, describes itself
RESTRICTED = "restricted to the dataset's classes"


@dataclass(frozen=True)
class ClassMapping:
    """How the classes of a dataset map onto a model's output indices.

    ``targets[c]`` lists the model output indices that count as dataset class ``c``.
    ``reduce`` says how a dataset-class score is formed from those outputs: ``"max"`` of the
    logits (masking, e.g. ImageNet-R's 200 classes) or ``"mean"`` of the probabilities
    (the 16 cue-conflict categories, Geirhos et al. 2019).
    """

    targets: tuple[tuple[int, ...], ...]
    reduce: str = "max"
    description: str = "identity"

    @property
    def n_classes(self) -> int:
        return len(self.targets)

    @property
    def is_identity(self) -> bool:
        return all(t == (i,) for i, t in enumerate(self.targets))

    @classmethod
    def identity(cls, n: int) -> ClassMapping:
        return cls(tuple((i,) for i in range(n)), "max", "identity")

    @classmethod
    def from_indices(cls, indices: Sequence[int], description: str) -> ClassMapping:
        return cls(tuple((int(i),) for i in indices), "max", description)

    @property
    def one_output_per_class(self) -> bool:
        """Whether each dataset class is one model output (identity or a mask), so that a
        dataset class index has one model class index (:meth:`model_indices`)."""
        return all(len(t) == 1 for t in self.targets)

    @property
    def restricted_by_name(self) -> bool:
        """Whether this is the mask onto the dataset's own classes, matched by name (not a
        published protocol)."""
        return self.description.startswith(RESTRICTED)

    @property
    def summary(self) -> str:
        """The class space in a few words: ``"200 classes: ImageNet-R mask"``.

        A published mapping is named by the part of its description before the first colon.

        >>> ClassMapping.identity(1000).summary
        '1000 classes'
        >>> ClassMapping.from_indices([1, 5], "ImageNet-R: 2-class mask onto ...").summary
        '2 classes: ImageNet-R mask'
        >>> ClassMapping(((1, 2), (3,)), "max", "ObjectNet: 2 classes -> 3 indices").summary
        '2 classes: ObjectNet mapping'
        >>> ClassMapping(((1, 2), (3,)), "mean", "cue-conflict: 2 categories, ...").summary
        '2 categories: cue-conflict'
        >>> ClassMapping.from_indices([4, 9], RESTRICTED + " (by name)").summary
        "2 classes: restricted to the dataset's classes"
        """
        n = self.n_classes
        if self.is_identity:
            return f"{n} classes"
        if self.restricted_by_name:
            return f"{n} classes: {RESTRICTED}"
        source = self.description.split(":", 1)[0].strip() if ":" in self.description else ""
        if self.reduce == "mean":
            return f"{n} categories: {source or 'mean probability over model classes'}"
        if not source:
            return f"{n} classes: {self.description}"
        kind = "mask" if self.one_output_per_class else "mapping"
        return f"{n} classes: {source} {kind}"

    def model_indices(self, dataset_indices: np.ndarray) -> np.ndarray:
        """The model output index of each dataset class index; -1 where a class maps to
        several outputs (ObjectNet, the cue-conflict categories) or the index is -1.

        >>> m = ClassMapping(((7,), (2, 3)), "max", "x")
        >>> m.model_indices(np.array([0, 1, -1])).tolist()
        [7, -1, -1]
        """
        single = np.array([t[0] if len(t) == 1 else -1 for t in self.targets], dtype=np.int64)
        idx = np.asarray(dataset_indices, dtype=np.int64)
        return np.where(idx >= 0, single[np.clip(idx, 0, None)], -1)

    def dataset_scores(self, logits: np.ndarray) -> np.ndarray:
        """Scores per dataset class, shape (N, n_classes): logits for masks, probs for means."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.is_identity and logits.shape[1] == self.n_classes:
            return logits
        if self.reduce == "mean":
            z = logits - logits.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            return np.stack([p[:, list(t)].mean(axis=1) for t in self.targets], axis=1)
        return np.stack([logits[:, list(t)].max(axis=1) for t in self.targets], axis=1)


class Dataset(ABC):
    """Abstract dataset. Subclasses implement ``__len__``, ``load`` and ``fingerprint``."""

    name: str
    classes: list[str]
    #: names of the extra integer labels every sample carries (e.g. ``texture_label``)
    extra_label_names: tuple[str, ...] = ()
    #: files that could not be decoded: (path, reason); filled while indexing or loading
    skipped: list[tuple[str, str]]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> Sample:
        """Decode sample ``index``."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Content fingerprint: changes whenever any image, label or preprocessing changes."""

    def labels(self) -> np.ndarray:
        """All labels, without decoding images where the subclass can avoid it."""
        return np.array([self.load(i).label for i in range(len(self))], dtype=np.int64)

    def sample_ids(self) -> np.ndarray:
        return np.array([self.load(i).sample_id for i in range(len(self))], dtype=np.int64)

    def extra_labels(self) -> dict[str, np.ndarray]:
        if not self.extra_label_names:
            return {}
        out: dict[str, list[int]] = {k: [] for k in self.extra_label_names}
        for i in range(len(self)):
            s = self.load(i)
            for k in self.extra_label_names:
                out[k].append(s.extras[k])
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}

    def acceptable_labels(self) -> np.ndarray | None:
        """Every label that counts as correct per sample, or ``None`` (only ``label`` does).

        Shape (N, L), int64 dataset class indices padded with -1 (the ReaL protocol of Beyer
        et al. 2020, "Are we done with ImageNet?": a prediction is correct when it is one of
        the sample's labels; rows with none are left out of that accuracy).
        """
        return None

    def published_mapping(self) -> bool:
        """Whether the dataset brings its own published class protocol (ImageNet-R/-A mask,
        ObjectNet mapping, cue-conflict categories: a ``target_mapping``); such a dataset is
        scored over its own classes, never over the model's whole class space."""
        return getattr(self, "target_mapping", None) is not None

    def class_mapping(self, model_classes: Sequence[str]) -> ClassMapping:
        """Map this dataset's classes onto a model's classes (identity by name by default).

        Classes that are some of the model's (by name) give the mask onto them
        (:data:`RESTRICTED`: the argmax is taken over the dataset's classes only). A study
        uses it only where asked (``restrict_classes: true``) or where the dataset has a
        published protocol; otherwise it scores such a dataset over the model's whole class
        space (:class:`robustlens.data.derived.ModelClassesDataset`).

        Raises :class:`ClassMismatchError` naming both class counts when the names differ.
        """
        model_classes = list(model_classes)
        if model_classes == list(self.classes):
            return ClassMapping.identity(len(self.classes))
        if placeholder_classes(model_classes) and len(model_classes) != len(self.classes):
            # ``class_0 .. class_{K-1}`` are names robustlens made up for a model that gave
            # none: matching a dataset's folders by them would pick outputs at random
            raise ClassMismatchError(
                f"the model has {len(model_classes)} outputs but dataset {self.name!r} has "
                f"{len(self.classes)} classes, and its outputs have no class names (they are "
                f"class_0 .. class_{len(model_classes) - 1}), so which {len(self.classes)} "
                "outputs to use is not known. Give the model `classes:` (the names of its "
                "outputs, in order; the dataset's classes select among them) or give the "
                "dataset a class mapping."
            )
        index = {c: i for i, c in enumerate(model_classes)}
        if all(c in index for c in self.classes):
            return ClassMapping.from_indices(
                [index[c] for c in self.classes],
                f"{RESTRICTED}: {len(self.classes)} of the model's {len(model_classes)}, by name",
            )
        missing = [c for c in self.classes if c not in index][:5]
        raise ClassMismatchError(
            f"dataset {self.name!r} has {len(self.classes)} classes but the model has "
            f"{len(model_classes)}; classes such as {missing} are not among the model's classes. "
            "Give the dataset a class mapping (mask or mapping file) or use a model trained on "
            "these classes."
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, classes={len(self.classes)})"
        )


class ArrayDataset(Dataset):
    """A dataset held in arrays (or memory maps): the synthetic world's splits use it."""

    def __init__(
        self,
        name: str,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        fingerprint: str,
        extras: dict[str, np.ndarray] | None = None,
        sample_ids: np.ndarray | None = None,
    ) -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(f"images ({len(images)}) and labels ({len(labels)}) differ in length")
        self.name = name
        self.images = images
        self._labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self._fingerprint = fingerprint
        self._extras = {k: np.asarray(v, dtype=np.int64) for k, v in (extras or {}).items()}
        self.extra_label_names = tuple(self._extras)
        ids = np.arange(len(images), dtype=np.int64) if sample_ids is None else sample_ids
        self._ids = np.asarray(ids, dtype=np.int64)
        self.skipped = []

    def __len__(self) -> int:
        return len(self._labels)

    def load(self, index: int) -> Sample:
        extras = {k: int(v[index]) for k, v in self._extras.items()}
        return Sample(
            np.asarray(self.images[index]), int(self._labels[index]), int(self._ids[index]), extras
        )

    def fingerprint(self) -> str:
        return self._fingerprint

    def labels(self) -> np.ndarray:
        return self._labels

    def sample_ids(self) -> np.ndarray:
        return self._ids

    def extra_labels(self) -> dict[str, np.ndarray]:
        return dict(self._extras)
