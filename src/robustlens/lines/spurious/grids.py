"""Neural-PCA image grids: the top-activating images of each class's components, as PNGs.

The report holds no dataset pixels, so ``robustlens spurious`` writes the grids beforehand
with :func:`render_component_grids`: for the most spurious model, per class (at most 4),
each top neural-PCA component's top-activating training images and top-activating
spurious-only images (Neuhaus et al., "Spurious Features Everywhere", ICCV 2023), saved as
``output_dir/spurious/*.png`` with an index ``grids.json`` (:mod:`.grid_files`). The report
section embeds whatever PNGs it finds there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from robustlens.config import StudyConfig
from robustlens.errors import ConfigError
from robustlens.formatting import number, significant
from robustlens.lines.spurious.grid_files import INDEX_FILE, grid_folder
from robustlens.plan import DatasetSpec, resolve_datasets
from robustlens.store import Store
from robustlens.study import load_artifacts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_component_grids"]

#: ``load(dataset name, index) -> HxWx3 image | None``
ImageLoader = Callable[[str | None, int], np.ndarray | None]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"


def _resolve_source(source: Any, cfg: Any) -> tuple[StudyConfig, dict[str, dict[str, Any]]]:
    if isinstance(source, StudyConfig):
        cfg = source
    cfg = cfg or getattr(source, "config", None) or getattr(source, "cfg", None)
    if not isinstance(cfg, StudyConfig):
        raise ConfigError(
            "render_component_grids needs the study config to open the datasets (a "
            f"{type(source).__name__} holds no config); pass the StudyConfig, or cfg=..."
        )
    artifacts = getattr(source, "artifacts", None) or {}
    if not any("spurious" in a for a in artifacts.values()):
        artifacts = load_artifacts(Path(cfg.output))
    return cfg, artifacts


def _model_score(art: dict[str, Any]) -> float:
    scores = [s.get("spurious_score") for s in art.get("sets", {}).values()]
    scores = [float(s) for s in scores if s is not None]
    return float(np.mean(scores)) if scores else float("nan")


def _pick_classes(classes: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    usable = [c for c in classes if c.get("components")]
    usable.sort(key=lambda c: (not c.get("flagged"), c.get("ap", 1.0), c["class_index"]))
    return usable[:limit]


def _image_loader(specs: dict[str, DatasetSpec]) -> ImageLoader:
    """Images by (dataset name, position); ``None`` for an unknown dataset or unreadable image."""

    def load(dataset: str | None, index: int) -> np.ndarray | None:
        spec = specs.get(dataset or "")
        if spec is None:
            return None
        try:
            return np.asarray(spec.dataset().load(index).image)
        except (IndexError, OSError, ValueError):
            return None

    return load


def _thumb(image: np.ndarray, side: int) -> np.ndarray:
    """A (side, side, 3) uint8 tile: nearest upscaling of small images, bilinear downscaling."""
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
    if img.size != (side, side):
        small = img.size[0] < side
        img = img.resize(
            (side, side), Image.Resampling.NEAREST if small else Image.Resampling.BILINEAR
        )
    return np.asarray(img)


def _mosaic(
    comps: Sequence[dict[str, Any]], load: ImageLoader, n_top: int, side: int = 64, pad: int = 2
) -> np.ndarray:
    """One image: a row per component, n_top train tiles | gap | n_top spurious tiles."""
    cell = side + pad
    n_cols = 2 * n_top + 1
    out = np.full((len(comps) * cell + pad, n_cols * cell + pad, 3), 255, dtype=np.uint8)
    for r, comp in enumerate(comps):
        for offset, key in ((0, "top_train"), (n_top + 1, "top_spurious")):
            group = comp.get(key) or {}
            for j, idx in enumerate(group.get("indices", [])[:n_top]):
                img = load(group.get("dataset"), int(idx))
                if img is None:
                    continue
                y, x = pad + r * cell, pad + (offset + j) * cell
                out[y : y + side, x : x + side] = _thumb(img, side)
    return out


def _grid_figure(
    title: str, comps: Sequence[dict[str, Any]], load: ImageLoader, n_top: int
) -> Figure:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    side, pad = 64, 2
    mosaic = _mosaic(comps, load, n_top, side, pad)
    h, w = mosaic.shape[:2]
    fig = Figure(figsize=(w / 80 + 1.2, h / 80 + 0.6))
    ax = fig.add_axes(
        (1.2 / (w / 80 + 1.2), 0.02, w / 80 / (w / 80 + 1.2), h / 80 / (h / 80 + 0.6))
    )
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    cell = side + pad
    for r, comp in enumerate(comps):
        tag = " FLAGGED" if comp.get("flagged") else ""
        ax.text(
            -6,
            pad + r * cell + side / 2,
            # significant digits: eigenvalues span orders of magnitude
            f"c{comp['component']}{tag}\nλ={significant(comp['eigenvalue'], 2)}",
            ha="right",
            va="center",
            fontsize=7,
            color="crimson" if tag else "black",
        )
    ax.text(pad, -4, "top-activating training images", fontsize=7, va="bottom")
    ax.text(
        pad + (n_top + 1) * cell, -4, "top-activating spurious-only images", fontsize=7, va="bottom"
    )
    fig.suptitle(title, fontsize=8)
    return fig


def _index_entry(
    path: Path, model: str, set_name: str, cls: dict[str, Any], specs: dict[str, DatasetSpec]
) -> dict[str, Any]:
    """The ``grids.json`` entry of one grid (the section's caption)."""
    comps = cls["components"]
    return {
        "file": path.name,
        "model": model,
        "dataset": set_name,
        "class_index": cls["class_index"],
        "class_name": cls["class_name"],
        "ap": cls["ap"],
        "flagged": cls.get("flagged", []),
        "components": [c["component"] for c in comps],
        "missing_datasets": sorted(
            {
                c[k]["dataset"]
                for c in comps
                for k in ("top_train", "top_spurious")
                if c.get(k) and c[k].get("dataset") not in specs
            }
        ),
    }


def render_component_grids(
    source: Any,
    out_dir: str | Path | None = None,
    *,
    cfg: Any = None,
    model: str | None = None,
    max_classes: int = 4,
    n_top: int = 8,
) -> list[Path]:
    """Write neural-PCA image grids of one model as PNGs under ``out_dir/spurious/``.

    One PNG per (spurious dataset, class): a row per component kept by the ``spurious``
    measure (top components by eigenvalue, plus flagged ones), with the ``n_top`` training
    images of the class that activate it most (largest alpha_l) on the left and the
    spurious-only images of the class that activate it most on the right. Images are read
    with ``DatasetSpec.dataset().load(i)`` from the datasets the study config resolves to.
    Also writes ``grids.json`` (file, model, dataset, class, components, ap) for captions.
    PNGs already in that folder are removed first, so the folder holds one model's grids.

    Args:
        source: the StudyConfig (or an object with ``config``/``cfg`` and ``artifacts``,
            e.g. a StudyResult given ``cfg=``).
        out_dir: output directory (default: the config's ``output``).
        cfg: the StudyConfig when ``source`` does not carry it.
        model: the model to show (default: the most spurious, lowest spurious score).
        max_classes: at most this many classes per spurious dataset (classes with flagged
            components first, then lowest AP).
        n_top: images per side of a row.

    Returns:
        The PNG paths written (empty when no model has spurious artifacts).

    Raises:
        ConfigError: no study config to open the datasets with, or ``model`` unknown.
    """
    cfg, artifacts = _resolve_source(source, cfg)
    spur = {m: a["spurious"] for m, a in artifacts.items() if a.get("spurious", {}).get("sets")}
    if not spur:
        return []
    if model is None:
        model = min(spur, key=lambda m: (np.nan_to_num(_model_score(spur[m]), nan=np.inf), m))
    elif model not in spur:
        raise ConfigError(f"model {model!r} has no spurious artifacts; available: {sorted(spur)}")
    out = grid_folder(out_dir or cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # the folder shows one model's grids: drop earlier ones
        old.unlink()
    specs = {s.name: s for s in resolve_datasets(cfg, Store(cfg.store))}
    load = _image_loader(specs)

    written: list[Path] = []
    index: list[dict[str, Any]] = []
    for set_name, s in spur[model]["sets"].items():
        for cls in _pick_classes(s.get("classes", []), max_classes):
            title = (
                f"{model}: class {cls['class_name']} ({cls['class_index']}), AP "
                f"{number(cls['ap'])}, on {set_name}"
            )
            fig = _grid_figure(title, cls["components"], load, n_top)
            path = out / f"{_safe(model)}__{_safe(set_name)}__{cls['class_index']:04d}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            written.append(path)
            index.append(_index_entry(path, model, set_name, cls, specs))
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1))
    return written
