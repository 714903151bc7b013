"""Dataset roles: the one place that says what part a dataset plays in a study.

A role tells measures and analyses which datasets to read (``id`` is the clean test set,
``corrupt`` a corrupted copy, ``sketch`` a concept shift, ...). A study assigns each dataset a
role when it resolves it (from its layout, its world split, or ``role:`` in the study file);
code that only has names (an export read back, a table from elsewhere) infers the role from
the name with :func:`role_from_name`. Every other module asks this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from robustlens.data.layouts import available_layouts, get_layout
from robustlens.errors import ConfigError

__all__ = [
    "NATURAL_SHIFT_ROLES",
    "NEEDS_LABELS",
    "ROLES",
    "SHIFTED_ROLES",
    "UNLABELED",
    "check_role",
    "corrupt_group",
    "dataset_roles",
    "is_labelled",
    "layout_role",
    "role_from_name",
    "unlabeled_skips",
    "world_role",
]

#: roles a dataset can play in a study; measures choose datasets by role
ROLES = (
    "train",
    "id",
    "v2",
    "corrupt",
    "corrupt_bar",
    "sketch",
    "cue_conflict",
    "spurious",
    "rendition",
    "stylized",
    "adversarial",
    "natural",
    "other",
    "unlabeled",
)

#: the role of a dataset without labels (layout ``unlabeled``, or any dataset given
#: ``role: unlabeled``): only label-free measures read it, and no accuracy is computed on it
UNLABELED = "unlabeled"
#: why a measure that needs labels does not read an unlabelled dataset
NEEDS_LABELS = "needs labels; the dataset is unlabelled"

#: roles of datasets that are a distribution shift from ``id``, in report order
#: (``corrupt_bar``: ImageNet-C-bar's corruptions; ``stylized``: Stylized-ImageNet)
SHIFTED_ROLES = ("v2", "corrupt", "corrupt_bar", "sketch", "rendition", "stylized", "natural")
#: shifts in the natural sense of Taori et al. 2020 (effective robustness is defined on them)
NATURAL_SHIFT_ROLES = ("v2", "sketch", "rendition", "natural")

_WORLD_SPLIT_ROLES = (
    "train",
    "v2",
    "sketch",
    "cue_conflict",
    "spurious",
    "rendition",
    "adversarial",
    "stylized",
    "natural",
)


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a :class:`ConfigError` naming them."""
    if role not in ROLES:
        raise ConfigError(f"unknown dataset role {role!r}; known roles: {', '.join(ROLES)}")
    return role


def world_role(split: str) -> tuple[str, dict[str, Any]]:
    """Role and tags of a synthetic-world split.

    ``cbar/<corruption>/<severity>`` (ImageNet-C-bar's corruptions) plays ``corrupt_bar``,
    ``stylized`` (the Stylized-ImageNet counterpart) ``stylized`` and ``natural`` (the
    adversarially filtered split, like ImageNet-A) ``natural``.

    Example:
        >>> world_role("val"), world_role("corrupt/fog/3")
        (('id', {}), ('corrupt', {'corruption': 'fog', 'severity': 3}))
        >>> world_role("cbar/sparkles/2")
        ('corrupt_bar', {'corruption': 'sparkles', 'severity': 2})
        >>> world_role("stylized"), world_role("natural")
        (('stylized', {}), ('natural', {}))
    """
    if split == "val":
        return "id", {}
    if split.startswith("corrupt/"):
        _, c, s = split.split("/")
        return "corrupt", {"corruption": c, "severity": int(s)}
    if split.startswith("cbar/"):
        _, c, s = split.split("/")
        return "corrupt_bar", {"corruption": c, "severity": int(s)}
    if split in _WORLD_SPLIT_ROLES:
        return split, {}
    return "other", {}


def layout_role(layout: str) -> str | None:
    """The default role of a dataset layout (its registration says), ``None`` if unknown.

    Example:
        >>> layout_role("imagenet_r"), layout_role("imagefolder"), layout_role("nope")
        ('rendition', 'other', None)
    """
    return get_layout(layout).role if layout in available_layouts() else None


def role_from_name(name: str) -> str:
    """The study role of a dataset from the name a study gives it (``"other"`` if unknown).

    World splits are ``world/<split>``; on-disk layouts are named after the layout; derived
    and ImageNet-C sets carry ``corrupt`` in their path.

    Example:
        >>> [role_from_name(n) for n in ("world/val", "world/corrupt/fog/3", "imagenet_r", "x")]
        ['id', 'corrupt', 'rendition', 'other']
    """
    name = str(name)
    if name.startswith("world/"):
        return world_role(name[len("world/") :])[0]
    head = name.split("/")[0]
    if head == "imagenet_c" or "/corrupt/" in f"/{name}/":
        return "corrupt"
    return layout_role(head) or "other"


def dataset_roles(names: Iterable[str], roles: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Role of every dataset: from ``roles`` where given, else inferred from the name.

    Args:
        names: dataset names.
        roles: ``{name: role}`` or ``{name: {"role": role, ...}}`` (e.g. a study's recorded
            datasets); names it lacks are inferred with :func:`role_from_name`.

    Example:
        >>> dataset_roles(["world/val", "mine"], {"mine": {"role": "sketch"}})
        {'world/val': 'id', 'mine': 'sketch'}
    """
    roles = roles or {}
    out: dict[str, str] = {}
    for n in names:
        r = roles.get(n)
        if isinstance(r, Mapping):
            r = r.get("role")
        out[n] = str(r) if r is not None else role_from_name(n)
    return out


def corrupt_group(dataset: str, tags: Mapping[str, Any] | None = None) -> str:
    """The set a corrupted dataset was derived from, e.g. ``world/corrupt`` or ``imagenet_c``.

    Corrupted datasets of one group are averaged together in tables and plots. ImageNet-C-bar
    sets form their own groups (``imagenet_cbar``, ``world/cbar``), never ImageNet-C's.

    Example:
        >>> corrupt_group("world/corrupt/fog/3", {"corruption": "fog", "severity": 3})
        'world/corrupt'
        >>> corrupt_group("val/corrupt/contrast/2")
        'val/corrupt'
        >>> tags = {"corruption": "sparkles", "severity": 2}
        >>> corrupt_group("world/cbar/sparkles/2", tags), corrupt_group("imagenet_cbar/sparkles/2")
        ('world/cbar', 'imagenet_cbar')
    """
    tags = tags or {}
    c, s = tags.get("corruption"), tags.get("severity")
    suffix = f"/{c}/{s}"
    if c is not None and s is not None and dataset.endswith(suffix):
        return dataset[: -len(suffix)]
    return dataset.rsplit("/", 2)[0] if dataset.count("/") >= 2 else "corrupt"


def is_labelled(role: str) -> bool:
    """Whether a dataset of ``role`` has labels that a measure may score predictions against.

    Example:
        >>> is_labelled("corrupt"), is_labelled("unlabeled")
        (True, False)
    """
    return role != UNLABELED


def unlabeled_skips(measures: Iterable[Any], datasets: Mapping[str, Any]) -> list[dict[str, str]]:
    """Which measures leave out which unlabelled datasets, and why (a study records them).

    A measure reads a dataset when its ``reads(info)`` (``requests(info)`` where it has no
    ``reads``) is not empty. Every measure that does
    not read an unlabelled dataset (role :data:`UNLABELED`) is listed with it, with the reason
    the measure gives in its ``unlabeled_reason`` attribute, else :data:`NEEDS_LABELS`.

    Args:
        measures: the study's measures (objects with ``name`` and ``requests(info)``).
        datasets: ``{name: info}``, each ``info`` with a ``role``
            (:class:`robustlens.measure.DatasetInfo`), in study order.

    Returns:
        ``[{"measure": ..., "dataset": ..., "reason": ...}, ...]``, datasets in study order.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> def accuracy_requests(info):
        ...     return {"clean": False} if is_labelled(info.role) else {}
        >>> acc = NS(name="accuracy", requests=accuracy_requests)
        >>> ei = NS(name="invariance", requests=lambda i: {"clean": False})
        >>> skips = unlabeled_skips([acc, ei], {"val": NS(role="id"), "u": NS(role="unlabeled")})
        >>> [(s["measure"], s["dataset"], s["reason"]) for s in skips]
        [('accuracy', 'u', 'needs labels; the dataset is unlabelled')]
    """
    measures = list(measures)
    out = []
    for name, info in datasets.items():
        if is_labelled(str(info.role)):
            continue
        for m in measures:
            # ``reads`` (robustlens.measure.Measure) keeps label-needing measures off
            if not getattr(m, "reads", m.requests)(info):
                reason = getattr(m, "unlabeled_reason", None) or NEEDS_LABELS
                out.append({"measure": str(m.name), "dataset": str(name), "reason": str(reason)})
    return out
