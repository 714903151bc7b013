"""On-disk dataset layouts: the registry a study's ``layout:`` names are looked up in.

A layout says how a folder on disk becomes a dataset: the function that opens it, the study
role its datasets play by default (``role:`` in the study file overrides it), and the entry
keys it needs (every layout needs ``root``; ObjectNet needs its ``mapping_file`` too). The
study file is checked against this registry when it is read, and the planner opens datasets
through it, so a new layout is one :func:`register_layout` call and nothing else changes.

Example:
    >>> get_layout("imagenet_r").role, get_layout("objectnet").needs
    ('rendition', ('root', 'mapping_file'))
    >>> get_layout("imagenet_cbar").role, get_layout("stylized_imagenet").role
    ('corrupt_bar', 'stylized')
    >>> available_layouts()[:3]
    ['imagefolder', 'imagenet_val', 'imagenet_c']
    >>> get_layout("unlabeled").role  # any folder tree of images, no labels
    'unlabeled'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from robustlens.data import imagenet
from robustlens.data.base import Dataset
from robustlens.data.imagefolder import ImageFolderDataset, UnlabeledFolderDataset
from robustlens.errors import ConfigError

__all__ = [
    "Layout",
    "LayoutArgs",
    "available_layouts",
    "get_layout",
    "register_layout",
]


@dataclass(frozen=True)
class LayoutArgs:
    """What a layout's opener receives: the study entry's ``root``, ``size``, ``name`` and
    ``mapping_file`` (``name`` defaults to the layout's name)."""

    root: str
    size: int = 224
    name: str = ""
    mapping_file: str | None = None
    follow_symlinks: bool = False
    max_pixels: int | None = None


#: an opener returns one dataset, or (for a layout that expands) ``[(dataset, tags), ...]``
Opener = Callable[[LayoutArgs], Any]


@dataclass(frozen=True)
class Layout:
    """One on-disk layout.

    Attributes:
        name: what ``layout:`` says in a study file.
        role: the study role of its datasets (a :data:`robustlens.roles.ROLES` value).
        open: ``open(args) -> Dataset``; for a layout that ``expands``, a list of
            ``(dataset, tags)``, one per dataset found under the root (named by the layout).
        needs: the entry keys that must be set.
        expands: the root holds several datasets (ImageNet-C: one per corruption and
            severity); derived corruptions and acceptable labels do not apply to it.
        real_labels: ImageNet ReaL labels apply (``acceptable_labels: real``).
    """

    name: str
    role: str
    open: Opener
    needs: tuple[str, ...] = ("root",)
    expands: bool = False
    real_labels: bool = False


_LAYOUTS: dict[str, Layout] = {}


def register_layout(
    name: str,
    *,
    role: str,
    needs: tuple[str, ...] = ("root",),
    expands: bool = False,
    real_labels: bool = False,
) -> Callable[[Opener], Opener]:
    """Register the decorated opener as layout ``name`` (a later registration replaces it)."""

    def deco(fn: Opener) -> Opener:
        _LAYOUTS[name] = Layout(name, role, fn, tuple(needs), expands, real_labels)
        return fn

    return deco


def get_layout(name: str) -> Layout:
    """The layout registered as ``name``, or a :class:`ConfigError` naming the known ones."""
    if name not in _LAYOUTS:
        raise ConfigError(
            f"unknown dataset layout {name!r}; available: {', '.join(available_layouts())}"
        )
    return _LAYOUTS[name]


def available_layouts() -> list[str]:
    """Names of the registered layouts, in registration order."""
    return list(_LAYOUTS)


# ----------------------------------------------------------------------------- built-in layouts
def _corruption_tags(datasets: Sequence[Dataset]) -> list[tuple[Dataset, dict[str, Any]]]:
    """Each ``<prefix>/<corruption>/<severity>`` dataset with its corruption and severity tags."""
    out = []
    for ds in datasets:
        _, corruption, severity = ds.name.split("/")[-3:]
        out.append((ds, {"corruption": corruption, "severity": int(severity)}))
    return out


@register_layout("imagefolder", role="other")
def _imagefolder(a: LayoutArgs) -> Dataset:
    return ImageFolderDataset(
        a.root,
        size=a.size,
        name=a.name,
        follow_symlinks=a.follow_symlinks,
        max_pixels=a.max_pixels,
    )


@register_layout("imagenet_val", role="id", real_labels=True)
def _imagenet_val(a: LayoutArgs) -> Dataset:
    return imagenet.imagenet_val(a.root, size=a.size, name=a.name)


@register_layout("imagenet_c", role="corrupt", expands=True)
def _imagenet_c(a: LayoutArgs) -> list[tuple[Dataset, dict[str, Any]]]:
    return _corruption_tags(imagenet.imagenet_c(a.root, size=a.size))


@register_layout("imagenet_r", role="rendition")
def _imagenet_r(a: LayoutArgs) -> Dataset:
    return imagenet.imagenet_r(a.root, size=a.size)


@register_layout("imagenet_a", role="natural")
def _imagenet_a(a: LayoutArgs) -> Dataset:
    return imagenet.imagenet_a(a.root, size=a.size)


@register_layout("imagenet_sketch", role="sketch")
def _imagenet_sketch(a: LayoutArgs) -> Dataset:
    return imagenet.imagenet_sketch(a.root, size=a.size)


@register_layout("imagenet_v2", role="v2")
def _imagenet_v2(a: LayoutArgs) -> Dataset:
    return imagenet.imagenet_v2(a.root, size=a.size, name=a.name)


@register_layout("objectnet", role="natural", needs=("root", "mapping_file"))
def _objectnet(a: LayoutArgs) -> Dataset:
    return imagenet.objectnet(a.root, a.mapping_file, size=a.size)


@register_layout("cue_conflict", role="cue_conflict")
def _cue_conflict(a: LayoutArgs) -> Dataset:
    return imagenet.cue_conflict(a.root, a.mapping_file, size=a.size)


@register_layout("spurious_imagenet", role="spurious")
def _spurious_imagenet(a: LayoutArgs) -> Dataset:
    return imagenet.spurious_imagenet(a.root, size=a.size)


@register_layout("imagenet_cbar", role="corrupt_bar", expands=True)
def _imagenet_cbar(a: LayoutArgs) -> list[tuple[Dataset, dict[str, Any]]]:
    return _corruption_tags(imagenet.imagenet_cbar(a.root, size=a.size))


@register_layout("stylized_imagenet", role="stylized")
def _stylized_imagenet(a: LayoutArgs) -> Dataset:
    return imagenet.stylized_imagenet(a.root, size=a.size, name=a.name)


@register_layout("unlabeled", role="unlabeled")
def _unlabeled(a: LayoutArgs) -> Dataset:
    # any folder tree of images without labels: only label-free measures read it
    return UnlabeledFolderDataset(
        a.root,
        size=a.size,
        name=a.name,
        follow_symlinks=a.follow_symlinks,
        max_pixels=a.max_pixels,
    )
