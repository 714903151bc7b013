"""Datasets derived from another dataset on the fly (e.g. ImageNet-C-style corruptions of val).

Used where no corrupted copy exists on disk: each image of the base dataset is corrupted at
load time with noise seeded by its sample id, so the derived set is deterministic and its
fingerprint follows from the base fingerprint and the corruption.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from robustlens.data.base import ClassMapping, Dataset, Sample, stable_id
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
