"""Report section "Spurious features" and the neural-PCA image grids it shows.

The report holds no dataset pixels, so the grids are written beforehand by
:func:`render_component_grids` (``robustlens spurious`` calls it): for the most spurious
model, per class (at most 4), each top neural-PCA component's top-activating training images
and top-activating spurious-only images (Neuhaus et al., "Spurious Features Everywhere",
ICCV 2023), saved as ``output_dir/spurious/*.png`` with an index ``grids.json``. The section
embeds whatever PNGs it finds there (base64) and says so when there are none.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustlens.errors import ConfigError
from robustlens.lines.spurious.analysis import (
    GROUND_TRUTH,
    score_vs_ground_truth,
    spufix_effect,
    spurious_table,
)
from robustlens.report.context import ReportContext, figure_html

__all__ = ["GRID_DIR", "render_component_grids", "spurious_section"]

GRID_DIR = "spurious"
INDEX_FILE = "grids.json"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_") or "x"


# ------------------------------------------------------------------------------ grids
def _resolve_source(source: Any, cfg: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    from robustlens.config import StudyConfig
    from robustlens.study import load_artifacts

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


def _thumb(image: np.ndarray, side: int) -> np.ndarray:
    """A (side, side, 3) uint8 tile: nearest upscaling of small images, bilinear downscaling."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
    if img.size != (side, side):
        small = img.size[0] < side
        img = img.resize(
            (side, side), Image.Resampling.NEAREST if small else Image.Resampling.BILINEAR
        )
    return np.asarray(img)


def _mosaic(
    comps: Sequence[dict[str, Any]], load: Any, n_top: int, side: int = 64, pad: int = 2
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


def _grid_figure(title: str, comps: Sequence[dict[str, Any]], load: Any, n_top: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side, pad = 64, 2
    mosaic = _mosaic(comps, load, n_top, side, pad)
    h, w = mosaic.shape[:2]
    fig = plt.figure(figsize=(w / 80 + 1.2, h / 80 + 0.6))
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
            f"c{comp['component']}{tag}\nλ={comp['eigenvalue']:.2g}",
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
    import matplotlib.pyplot as plt

    from robustlens.plan import resolve_datasets
    from robustlens.store import Store

    cfg, artifacts = _resolve_source(source, cfg)
    spur = {m: a["spurious"] for m, a in artifacts.items() if a.get("spurious", {}).get("sets")}
    if not spur:
        return []
    if model is None:
        model = min(spur, key=lambda m: (np.nan_to_num(_model_score(spur[m]), nan=np.inf), m))
    elif model not in spur:
        raise ConfigError(f"model {model!r} has no spurious artifacts; available: {sorted(spur)}")
    out = Path(out_dir or cfg.output) / GRID_DIR
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # the folder shows one model's grids: drop earlier ones
        old.unlink()
    specs = {s.name: s for s in resolve_datasets(cfg, Store(cfg.store))}

    def load(dataset: str | None, index: int) -> np.ndarray | None:
        spec = specs.get(dataset or "")
        if spec is None:
            return None
        try:
            return np.asarray(spec.dataset().load(index).image)
        except (IndexError, OSError, ValueError):
            return None

    written: list[Path] = []
    index: list[dict[str, Any]] = []
    for set_name, s in spur[model]["sets"].items():
        for cls in _pick_classes(s.get("classes", []), max_classes):
            comps = cls["components"]
            title = (
                f"{model}: class {cls['class_name']} ({cls['class_index']}), AP "
                f"{cls['ap']:.3f}, on {set_name}"
            )
            fig = _grid_figure(title, comps, load, n_top)
            path = out / f"{_safe(model)}__{_safe(set_name)}__{cls['class_index']:04d}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
            index.append(
                {
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
            )
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1))
    return written


# ------------------------------------------------------------------------------ section
def _png_html(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _grids_html(output_dir: Path) -> str:
    folder = Path(output_dir) / GRID_DIR
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pngs:
        return (
            f"<p>No neural-PCA image grids in <code>{html.escape(str(folder))}</code>: the "
            "report holds no dataset pixels; run <code>robustlens spurious CONFIG</code> "
            "to write them, then rebuild the report.</p>"
        )
    captions: dict[str, str] = {}
    idx = folder / INDEX_FILE
    if idx.is_file():
        try:
            for e in json.loads(idx.read_text()):
                flagged = ", ".join(f"c{c}" for c in e.get("flagged", [])) or "none"
                captions[e["file"]] = (
                    f"{e['model']} — class {e['class_name']} ({e['class_index']}) on "
                    f"{e['dataset']}: AP {e['ap']:.3f}; flagged components: {flagged}"
                )
        except (ValueError, KeyError, TypeError):
            captions = {}
    parts = []
    for p in pngs:
        cap = captions.get(p.name, p.stem)
        parts.append(
            f"<figure>{_png_html(p, cap)}<figcaption>{html.escape(cap)}</figcaption></figure>"
        )
    return "\n".join(parts)


def _scatter(table: Any, corr: Any) -> str | None:
    if GROUND_TRUTH not in table.columns or "spurious_score" not in table.columns:
        return None
    t = table[[GROUND_TRUTH, "spurious_score"]].dropna()
    if t.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.scatter(t[GROUND_TRUTH], t["spurious_score"], color="tab:purple")
    for name, row in t.iterrows():
        ax.annotate(
            str(name),
            (row[GROUND_TRUTH], row["spurious_score"]),
            fontsize=6,
            xytext=(3, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("training mark rate (ground truth)")
    ax.set_ylabel("spurious score (AP; high = less spurious)")
    row = corr[corr["metric"] == "spurious_score"] if len(corr) else corr
    if len(row):
        r = row.iloc[0]
        ax.set_title(
            f"Spearman ρ = {r['coefficient']:.2f} (p = {r['p_value']:.3g}, n = {int(r['n'])})",
            fontsize=9,
        )
    return figure_html(fig, "spurious score vs training mark rate")


def _fmt_table(df: Any) -> str:
    return df.to_html(
        float_format=lambda v: f"{v:.3f}", na_rep="–", border=0, classes="data", escape=True
    )


def spurious_section(ctx: ReportContext) -> str | None:
    """Spurious score vs mark rate, SpuFix before/after, and neural-PCA image grids."""
    table = spurious_table(ctx.results)
    if table.empty:
        return None
    corr = score_vs_ground_truth(ctx.results)
    parts = [
        "<p>Neural PCA of each class logit and the spurious score of Neuhaus et al. "
        "(ICCV 2023): the average precision of the class probability separating real class "
        "images from spurious-only images (the class's spurious feature without its object), "
        "mean over classes. <b>High score = less spurious</b>; reliance = 1 − score. "
        "SpuFix removes the positive part of the components flagged as spurious (flagged "
        "automatically: the components that raise the class logit on spurious-only images "
        "beyond in-class images).</p>"
    ]
    scatter = _scatter(table, corr)
    if scatter:
        parts.append(scatter)
    if len(corr):
        parts.append("<h4>Score vs ground truth (Spearman across models)</h4>")
        parts.append(_fmt_table(corr.set_index("metric")))
    parts.append("<h4>Per model (most spurious first)</h4>")
    parts.append(_fmt_table(table))
    parts.append("<h4>SpuFix before / after</h4>")
    parts.append(_fmt_table(spufix_effect(ctx.results)))
    parts.append("<h4>Neural-PCA components: top-activating images</h4>")
    parts.append(_grids_html(ctx.output_dir))
    return "\n".join(parts)
