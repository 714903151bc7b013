"""The model-adapter contract: every model robustlens evaluates looks like this.

An adapter owns its preprocessing (input size, mean, std), takes float pixels in [0, 1]
of shape (B, 3, H, W), and returns logits and penultimate features. Its last linear layer is
exposed for neural PCA, and the adapter itself is a differentiable ``nn.Module`` on pixels,
so PGD attacks it directly.

An adapter may also say how image files are to be decoded for it (``eval_transform``: the
resize, crop and interpolation its weights were evaluated with, e.g. timm's
``resolve_data_config``); the engine then decodes image folders at that transform instead of
the dataset's own size, and the transform is part of the adapter's fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustlens.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD, EvalTransform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelAdapter",
    "adapter_from_module",
    "state_dict_digest",
]


def state_dict_digest(module: nn.Module) -> str:
    """SHA-256 over parameter and buffer names, shapes, dtypes and bytes (sorted by name)."""
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ModelAdapter(nn.Module):
    """A classifier split into ``backbone`` (pixels -> penultimate features) and ``head``.

    Args:
        name: human-readable model name (unique within a study).
        backbone: module mapping normalized inputs to (B, D) penultimate features.
        head: the last linear layer, (B, D) -> (B, K) logits.
        classes: the K class names, in output order.
        mean, std: per-channel normalization applied inside the adapter.
        input_size: side length the backbone expects; other sizes are resized (bilinear,
            antialiased) inside the adapter.
        config: JSON-serialisable description (architecture, source, training recipe); it is
            part of the fingerprint.
        eval_transform: how image files are decoded for this model (resize, crop,
            interpolation; see :class:`~robustlens.data.imagefolder.EvalTransform`); ``None``:
            at the dataset's own size, resized here to ``input_size`` when it differs. Part
            of the fingerprint when set.
    """

    def __init__(
        self,
        name: str,
        backbone: nn.Module,
        head: nn.Linear,
        classes: Sequence[str],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        input_size: int | None = None,
        config: dict[str, Any] | None = None,
        eval_transform: EvalTransform | None = None,
    ) -> None:
        super().__init__()
        if head.out_features != len(classes):
            raise ValueError(
                f"model {name!r}: the head has {head.out_features} outputs but "
                f"{len(classes)} class names were given"
            )
        self.name = name
        self.backbone = backbone
        self.head = head
        self.classes = list(classes)
        self.input_size = input_size
        self.config = dict(config or {})
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self._fingerprint: str | None = None
        self._eval_transform = eval_transform
        self.eval()

    @property
    def eval_transform(self) -> EvalTransform | None:
        """How image files are decoded for this model (``None``: the dataset's own decode)."""
        return getattr(self, "_eval_transform", None)  # adapters pickled before it existed

    @eval_transform.setter
    def eval_transform(self, transform: EvalTransform | None) -> None:
        self._eval_transform = transform
        self._fingerprint = None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """Resize to the input size if needed, then normalize. Differentiable."""
        if self.input_size is not None and pixels.shape[-1] != self.input_size:
            pixels = F.interpolate(
                pixels,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        mean, std = self.mean.to(pixels.dtype), self.std.to(pixels.dtype)
        if (
            pixels.dim() == 4
            and pixels.is_contiguous(memory_format=torch.channels_last)
            and not pixels.is_contiguous()
        ):
            # a (1, 3, 1, 1) operand broadcast over a channels-last batch puts the channel in
            # the innermost loop, which does not vectorize: 3-8x slower than full-size operands
            # in the batch's own layout (measured on CPU), which give the very same floats
            size = (1, pixels.shape[1], *pixels.shape[-2:])
            mean = mean.expand(size).contiguous(memory_format=torch.channels_last)
            std = std.expand(size).contiguous(memory_format=torch.channels_last)
        return (pixels - mean) / std

    def preprocess_key(self) -> tuple:
        """What :meth:`preprocess` depends on besides the pixels: two adapters with equal keys
        turn the same pixels into the same tensor, so the engine prepares a batch once for
        all of them (:meth:`forward_preprocessed`)."""
        return (
            self.input_size,
            str(self.mean.device),
            tuple(self.mean.flatten().tolist()),
            tuple(self.std.flatten().tolist()),
        )

    def forward_with_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, K) and penultimate features (B, D) from pixels in [0, 1]."""
        return self.forward_preprocessed(self.preprocess(pixels))

    def forward_preprocessed(
        self, inputs: torch.Tensor, backbone: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features from what :meth:`preprocess` made of the pixels.

        ``backbone``: a module to run in place of :attr:`backbone` that computes the same
        function (the engine's BatchNorm-folded copy of it,
        :class:`~robustlens.models.folding.BatchNormFolding`)."""
        feats = (self.backbone if backbone is None else backbone)(inputs)
        if feats.ndim > 2:
            feats = torch.flatten(feats, 1)
        return self.head(feats), feats

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(pixels)[0]

    def classifier_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(W, b) of the last linear layer as float64 numpy arrays, W of shape (K, D)."""
        w = self.head.weight.detach().cpu().double().numpy()
        b = (
            self.head.bias.detach().cpu().double().numpy()
            if self.head.bias is not None
            else np.zeros(w.shape[0])
        )
        return w, b

    def fingerprint(self) -> str:
        """Hash of the weights and the adapter configuration (cached after the first call)."""
        if self._fingerprint is None:
            described: dict[str, Any] = {
                "config": self.config,
                "classes": self.classes,
                "input_size": self.input_size,
                "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(),
            }
            if self.eval_transform is not None:  # absent otherwise: old digests still hold
                described["decode"] = [*self.eval_transform.decode_key()]
            cfg = json.dumps(described, sort_keys=True, default=str)
            h = hashlib.sha256(state_dict_digest(self).encode() + cfg.encode())
            self._fingerprint = h.hexdigest()[:32]
        return self._fingerprint

    def __repr__(self) -> str:
        return (
            f"ModelAdapter(name={self.name!r}, classes={self.n_classes}, "
            f"input_size={self.input_size}, arch={self.config.get('arch', '?')})"
        )


def adapter_from_module(
    name: str,
    module: nn.Module,
    classes: Sequence[str],
    head_attr: str | None = None,
    **kwargs: Any,
) -> ModelAdapter:
    """Wrap any ``nn.Module`` whose last layer is an ``nn.Linear``.

    The linear layer is found at ``head_attr`` (dotted path) or, if not given, as the last
    ``nn.Linear`` among the module's children; it is replaced by ``nn.Identity`` in the
    backbone so that the backbone returns penultimate features.
    """
    module = copy.deepcopy(module)
    if head_attr is None:
        linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(f"model {name!r}: no nn.Linear layer found; pass head_attr")
        head_attr = linears[-1]
    parent = module
    *path, last = head_attr.split(".")
    for p in path:
        parent = getattr(parent, p)
    head = getattr(parent, last)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"model {name!r}: {head_attr} is {type(head).__name__}, not nn.Linear")
    setattr(parent, last, nn.Identity())
    config = {"arch": type(module).__name__, "source": "user-module", **kwargs.pop("config", {})}
    return ModelAdapter(name, module, head, classes, config=config, **kwargs)
