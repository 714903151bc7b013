"""Datasets derived from another dataset on the fly.

:class:`CorruptedDataset`: ImageNet-C-style corruptions of a set, used where no corrupted copy
exists on disk: each image of the base dataset is corrupted at load time with noise seeded by
its sample id, so the derived set is deterministic and its fingerprint follows from the base
fingerprint and the corruption.

:class:`ModelClassesDataset`: a set whose classes are some of a model's (a folder of three
ImageNet wnids) relabelled into the model's whole class list, so that it is scored over every
class the model knows (1000-way for an ImageNet model), as timm's ``validate.py`` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import torch

from robustlens.data.base import ClassMapping, Dataset, Sample, placeholder_classes, stable_id
from robustlens.transforms.corruptions import CORRUPTIONS, corrupt


class CorruptedDataset(Dataset):
    """``base`` under corruption ``name`` at ``severity`` (1..5), applied at load time."""

    def __init__(self, base: Dataset, name: str, severity: int) -> None:
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {name!r}; available: {', '.join(CORRUPTIONS)}")
        if not 1 <= severity <= 5:
            raise ValueError(f"severity must be 1..5, got {severity}")
        self.base = base
        self.corruption = name
        self.severity = severity
        self.name = f"{base.name}/corrupt/{name}/{severity}"
        self.classes = base.classes
        self.extra_label_names = base.extra_label_names
        self.skipped = base.skipped

    def __len__(self) -> int:
        return len(self.base)

    def load(self, index: int) -> Sample:
        s = self.base.load(index)
        x = torch.from_numpy(np.array(s.image)).permute(2, 0, 1)[None].float() / 255
        # a 62-bit seed per (corruption, severity, sample)
        seed = stable_id(f"{self.corruption}:{self.severity}:{s.sample_id}") >> 1
        y = corrupt(x, self.corruption, self.severity, [seed])
        img = (y[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return Sample(img, s.label, s.sample_id, s.extras)

    def fingerprint(self) -> str:
        text = f"{self.base.fingerprint()}:corrupt:{self.corruption}:{self.severity}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def labels(self) -> np.ndarray:
        return self.base.labels()

    def sample_ids(self) -> np.ndarray:
        return self.base.sample_ids()

    def extra_labels(self) -> dict[str, np.ndarray]:
        return self.base.extra_labels()

    def acceptable_labels(self) -> np.ndarray | None:
        return self.base.acceptable_labels()

    def class_mapping(self, model_classes) -> ClassMapping:
        return self.base.class_mapping(model_classes)


def widens_to(dataset: Dataset, model_classes: Sequence[str]) -> bool:
    """Whether ``dataset`` is scored over ``model_classes`` by default: its classes are some,
    not all, of them (by name), it brings no published protocol of its own
    (:meth:`Dataset.published_mapping`) and the model's classes are real names (not the
    ``class_0 ..`` placeholders of a model that gave none).

    >>> from robustlens.data.base import ArrayDataset
    >>> ds = ArrayDataset("d", np.zeros((1, 2, 2, 3), np.uint8), [0], ["b"], "fp")
    >>> widens_to(ds, ["a", "b", "c"]), widens_to(ds, ["b"]), widens_to(ds, ["a", "c"])
    (True, False, False)
    """
    model_classes = list(model_classes)
    classes = list(dataset.classes)
    # no classes: an unlabelled set, which has no labels to relabel
    if not classes or classes == model_classes or placeholder_classes(model_classes):
        return False
    if dataset.published_mapping():
        return False
    names = set(model_classes)
    return all(c in names for c in classes)


class ModelClassesDataset(Dataset):
    """``base`` relabelled into a model's class list: scored over all of the model's classes.

    ``classes`` are ``model_classes``; a sample's label (and each acceptable label) is the
    model index of its class in ``base``, matched by name; images, sample ids and extra labels
    are ``base``'s. The class mapping for a model with exactly these classes is the identity,
    so every prediction is an argmax over all of the model's outputs and the stored labels,
    per-sample labels and predictions are model class indices. The fingerprint covers the
    class list, so the arrays of the restricted and of the relabelled set never mix.

    Raises:
        ValueError: a class of ``base`` is not among ``model_classes``.

    Example:
        >>> from robustlens.data.base import ArrayDataset
        >>> base = ArrayDataset("d", np.zeros((2, 2, 2, 3), np.uint8), [0, 1], ["b", "c"], "fp")
        >>> wide = ModelClassesDataset(base, ["a", "b", "c"])
        >>> wide.labels().tolist(), wide.load(1).label, len(wide.classes)
        ([1, 2], 2, 3)
        >>> wide.class_mapping(["a", "b", "c"]).is_identity
        True
    """

    def __init__(self, base: Dataset, model_classes: Sequence[str]) -> None:
        self.base = base
        self.name = base.name
        self.classes = list(model_classes)
        self.extra_label_names = base.extra_label_names
        self.skipped = base.skipped
        index = {c: i for i, c in enumerate(self.classes)}
        missing = [c for c in base.classes if c not in index]
        if missing:
            raise ValueError(
                f"dataset {base.name!r}: classes {missing[:5]} are not among the "
                f"{len(self.classes)} model classes"
            )
        self._to_model = np.array([index[c] for c in base.classes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.base)

    def _relabel(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64)
        return np.where(labels >= 0, self._to_model[np.clip(labels, 0, None)], -1)

    def load(self, index: int) -> Sample:
        s = self.base.load(index)
        return Sample(s.image, int(self._to_model[s.label]), s.sample_id, s.extras)

    def fingerprint(self) -> str:
        classes = hashlib.sha256(json.dumps(self.classes).encode()).hexdigest()
        text = f"{self.base.fingerprint()}:model-classes:{classes}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def labels(self) -> np.ndarray:
        return self._relabel(self.base.labels())

    def sample_ids(self) -> np.ndarray:
        return self.base.sample_ids()

    def extra_labels(self) -> dict[str, np.ndarray]:
        return self.base.extra_labels()

    def acceptable_labels(self) -> np.ndarray | None:
        acceptable = self.base.acceptable_labels()
        return None if acceptable is None else self._relabel(acceptable)

    def path(self, index: int):
        """The file of sample ``index`` (a folder dataset's ``path``)."""
        return self.base.path(index)  # type: ignore[attr-defined]

    def with_transform(self, transform) -> Dataset:
        """The same relabelled set decoded at a model's evaluation transform (the base's
        ``with_transform``; ``self`` where the base has none or keeps its decode)."""
        convert = getattr(self.base, "with_transform", None)
        other = convert(transform) if convert is not None else self.base
        return self if other is self.base else ModelClassesDataset(other, self.classes)

    def decoding(self, *args, **kwargs) -> tuple:
        """What decides the pixels (the base's ``decoding``; labels do not change them)."""
        return self.base.decoding(*args, **kwargs)  # type: ignore[attr-defined]
