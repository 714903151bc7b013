"""Read weight files safely and load them into an architecture with readable errors.

Two rules:

* A checkpoint is read without running code: ``.safetensors`` through safetensors, and
  ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` / ``.tar`` through ``torch.load(weights_only=True)``.
  A file that needs arbitrary unpickling (a pickled ``nn.Module``, a custom class, an
  optimizer with user objects) is refused with :class:`UntrustedCheckpointError` unless the
  caller passes ``trust_pickle=True`` (CLI ``--trust-pickle``); unpickling can execute code.
* Loading into a module never prints torch's wall of text: :func:`load_into` lists the first
  few missing keys, unexpected keys and shape mismatches, with their counts.

Training checkpoints are unwrapped: ``{"state_dict": ...}``, ``{"model": ...}``,
``{"model_state_dict": ...}`` and similar containers, a pickled ``nn.Module``, and the key
prefixes ``module.`` (``DataParallel`` / DDP) and ``_orig_mod.`` (``torch.compile``).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file
from torch import nn

from robustlens.errors import CheckpointError, UntrustedCheckpointError

__all__ = [
    "CONTAINER_KEYS",
    "TORCH_SUFFIXES",
    "LoadResult",
    "load_into",
    "load_state_dict",
    "unwrap_state_dict",
]

#: Suffixes read with ``torch.load``.
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
#: Keys under which training scripts nest the model's state dict, in order of preference
#: (``state_dict`` before ``state_dict_ema``: the raw weights win over an EMA copy).
CONTAINER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "weights",
    "params",
    "state_dict_ema",
    "model_ema",
)
#: Prefixes stripped when every key carries them (DataParallel / DDP, torch.compile).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_TRUST_HINT = "pass trust_pickle=True (CLI: --trust-pickle)"
_SHOW = 5  # how many names of each kind an error message lists


def _is_flat_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                changed = True
    return sd


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the flat ``{name: tensor}`` state dict inside a loaded checkpoint object.

    Accepts a flat state dict, an ``nn.Module``, or a mapping that nests one under one of
    :data:`CONTAINER_KEYS` (searched recursively, a few levels deep). Strips the ``module.``
    and ``_orig_mod.`` prefixes when every key carries them.

    Args:
        obj: what ``torch.load`` or safetensors returned.
        source: name of the file, for error messages.

    Example:
        >>> import torch
        >>> ckpt = {"epoch": 3, "state_dict": {"module.fc.weight": torch.zeros(2, 3)}}
        >>> sorted(unwrap_state_dict(ckpt))
        ['fc.weight']
    """
    for _ in range(4):
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        if _is_flat_state_dict(obj):
            return _strip_prefixes({str(k): v for k, v in obj.items()})
        if not isinstance(obj, Mapping):
            break
        for key in CONTAINER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module) or (isinstance(inner, Mapping) and len(inner) > 0):
                obj = inner
                break
        else:
            keys = list(obj)
            shown = ", ".join(repr(k) for k in keys[:10]) + (" ..." if len(keys) > 10 else "")
            non_tensor = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)][:_SHOW]
            raise CheckpointError(
                f"{source}: no state dict found. Expected a mapping of parameter names to "
                f"tensors, or one nested under one of {list(CONTAINER_KEYS)}; got a "
                f"{type(obj).__name__} with keys [{shown}]"
                + (f" (non-tensor values under {non_tensor})" if non_tensor else "")
            )
    raise CheckpointError(
        f"{source}: no state dict found. Expected a mapping of parameter names to tensors "
        f"(or an nn.Module); got {type(obj).__name__}"
    )


def _sniff_format(path: Path) -> str:
    """'safetensors' or 'torch' from a file's first bytes (for unknown suffixes)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointError(
        f"{path}: unknown checkpoint format. Expected a .safetensors file or a torch file "
        f"({', '.join(TORCH_SUFFIXES)})"
    )


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError
        raise CheckpointError(
            f"{path}: cannot read as safetensors ({type(exc).__name__}: {exc}); "
            "is the file complete and really in safetensors format?"
        ) from exc


def _load_torch(path: Path, trust_pickle: bool) -> Any:
    if trust_pickle:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(
                f"{path}: cannot read as a torch checkpoint even with trust_pickle=True "
                f"({type(exc).__name__}: {str(exc).strip()[:300]})"
            ) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        if found:
            what = f"it contains the Python object {found.group(1)!r}"
        else:
            operand = re.search(r"Unsupported operand[^\n]*", msg)
            what = (
                "it uses pickle operations outside the safe subset"
                + (f" ({operand.group(0).strip()})" if operand else "")
                + "; it may also be corrupt or not a torch checkpoint"
            )
        raise UntrustedCheckpointError(
            f"{path}: refusing to load: this checkpoint needs arbitrary unpickling, which can "
            f"execute code ({what}). If you trust its source, {_TRUST_HINT}; better, re-save "
            "it as a plain state dict or a .safetensors file."
        ) from exc
    except Exception as exc:  # RuntimeError (bad zip), EOFError, KeyError (not a pickle)
        raise CheckpointError(
            f"{path}: cannot read as a torch checkpoint ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]}); the file may be truncated or not a torch file"
        ) from exc


def load_state_dict(
    path: str | os.PathLike[str], trust_pickle: bool = False
) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat ``{name: tensor}`` dict on the CPU.

    Args:
        path: a ``.safetensors`` file, or a torch file (``.pt``, ``.pth``, ``.bin``,
            ``.ckpt``, ``.tar``); other suffixes are recognised from the file's first bytes.
        trust_pickle: allow arbitrary unpickling (``torch.load(weights_only=False)``). Only
            for files from a source you trust: unpickling can execute code.

    Returns:
        The state dict, unwrapped from training containers (see :func:`unwrap_state_dict`).

    Raises:
        UntrustedCheckpointError: the file needs arbitrary unpickling and ``trust_pickle``
            is False; the message names the flag.
        CheckpointError: the file is missing, unreadable, or holds no state dict.

    Example:
        >>> import tempfile, torch
        >>> from safetensors.torch import save_file
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_file({"w": torch.ones(2)}, f"{d}/m.safetensors")
        ...     load_state_dict(f"{d}/m.safetensors")
        {'w': tensor([1., 1.])}
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint not found: {p} (expected a .safetensors or "
            f"{'/'.join(TORCH_SUFFIXES)} file)"
        )
    suffix = p.suffix.lower()
    fmt = (
        "safetensors"
        if suffix == ".safetensors"
        else "torch"
        if suffix in TORCH_SUFFIXES
        else _sniff_format(p)
    )
    obj: Any = _load_safetensors(p) if fmt == "safetensors" else _load_torch(p, trust_pickle)
    return unwrap_state_dict(obj, source=str(p))


class LoadResult(NamedTuple):
    """Keys that did not match when loading with ``strict=False``."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _listing(items: list[str], noun: str, plural: str) -> str:
    n = len(items)
    shown = ", ".join(items[:_SHOW]) + (f", ... ({n - _SHOW} more)" if n > _SHOW else "")
    return f"{n} {noun if n == 1 else plural}: {shown}"


def load_into(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = True,
    source: str | None = None,
) -> LoadResult:
    """Load ``state_dict`` into ``module``; explain any misfit in one short message.

    Shape mismatches are always an error. With ``strict=True`` (default) missing and
    unexpected keys are errors too; with ``strict=False`` they are returned.
    BatchNorm ``num_batches_tracked`` buffers absent from old checkpoints are not counted
    as missing (torch fills them in).

    Args:
        module: the architecture to fill.
        state_dict: ``{name: tensor}``, e.g. from :func:`load_state_dict`.
        strict: require the key sets to match exactly.
        source: where the weights came from (a file name), for the message.

    Raises:
        CheckpointError: listing the first few missing keys, unexpected keys and shape
            mismatches, with their counts.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> try:
        ...     load_into(nn.Linear(3, 2), {"weight": torch.zeros(2, 4), "scale": torch.ones(1)})
        ... except CheckpointError as e:
        ...     print(e)  # doctest: +NORMALIZE_WHITESPACE
        checkpoint does not fit Linear: 1 missing key: bias; 1 unexpected key: scale;
        1 shape mismatch: weight (checkpoint (2, 4), model (2, 3))
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} (checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if strict and missing:
        problems.append(_listing(missing, "missing key", "missing keys"))
    if strict and unexpected:
        problems.append(_listing(unexpected, "unexpected key", "unexpected keys"))
    if mismatched:
        problems.append(_listing(mismatched, "shape mismatch", "shape mismatches"))
    if problems:
        hint = _prefix_hint(missing, unexpected) if strict else ""
        raise CheckpointError(
            f"{source + ' ' if source else ''}checkpoint does not fit "
            f"{type(module).__name__}: " + "; ".join(problems) + hint
        )
    module.load_state_dict(dict(state_dict), strict=False)
    return LoadResult(missing, unexpected)


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str:
    """Suggest a prefix to add or strip when that would make the keys match."""
    if not missing or not unexpected:
        return ""
    miss, unexp = set(missing), set(unexpected)
    # checkpoint keys carry an extra leading component: 'model.fc.weight' vs 'fc.weight'
    heads = {k.split(".", 1)[0] for k in unexpected if "." in k}
    for head in sorted(heads):
        stripped = {k[len(head) + 1 :] for k in unexpected if k.startswith(head + ".")}
        if miss <= stripped:
            return f" (the checkpoint's keys start with {head + '.'!r}; strip that prefix)"
    heads = {k.split(".", 1)[0] for k in missing if "." in k}
    for head in sorted(heads):
        stripped = {k[len(head) + 1 :] for k in missing if k.startswith(head + ".")}
        if unexp <= stripped:
            return f" (the model's keys start with {head + '.'!r}; add that prefix)"
    return ""
