"""Model names on hover over a figure embedded by :func:`robustlens.report.context.figure_html`.

The figure stays a PNG; over it lie transparent spots, one per point, whose ``title`` is the
model's name (the browser shows it on hover). Spots are placed in percent of the image, so
they follow the image when the page scales it. Their position repeats what ``figure_html``
does when it saves: a ``bbox_inches="tight"`` crop padded by ``savefig.pad_inches``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from robustlens.formatting import esc
from robustlens.report.context import figure_html

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["HOVER_STYLE", "figure_with_hover", "spot_positions"]

#: the page style the spots need (once per section)
HOVER_STYLE = (
    "<style>.published-hover{position:relative;display:inline-block;margin:12px 0}"
    ".published-hover>img.plot{margin:0}"
    ".published-hover>span{position:absolute;width:12px;height:12px;margin:-6px 0 0 -6px;"
    "border-radius:50%;cursor:help}"
    ".published-hover>span:hover{outline:2px solid #c62828}</style>"
)


def spot_positions(
    fig: Figure, points: Iterable[tuple[Any, float, float, str]]
) -> list[tuple[float, float, str]]:
    """``(left %, top %, label)`` of each point in the image ``figure_html`` saves.

    Args:
        fig: the figure, laid out as it will be saved.
        points: ``(axes, x, y, label)`` in data coordinates; points that are not finite or lie
            outside their axes are left out.
    """
    # lazy: matplotlib is slow to import
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: see above

    renderer = FigureCanvasAgg(fig).get_renderer()
    pad = mpl.rcParams["savefig.pad_inches"]
    box = fig.get_tightbbox(renderer).padded(0.1 if pad in (None, "layout") else float(pad))
    out = []
    for ax, x, y, label in points:
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        px, py = ax.transData.transform((x, y))
        if not ax.bbox.contains(px, py):
            continue
        xin, yin = px / fig.dpi, py / fig.dpi
        left = 100 * (xin - box.x0) / box.width
        top = 100 * (box.y1 - yin) / box.height
        out.append((left, top, str(label)))
    return out


def figure_with_hover(
    fig: Figure,
    alt: str,
    width: int | None,
    points: Iterable[tuple[Any, float, float, str]],
) -> str:
    """``figure_html(fig, alt, width)`` with the name of each point shown on hover.

    Needs :data:`HOVER_STYLE` once on the page.
    """
    spots = spot_positions(fig, points)
    img = figure_html(fig, alt, width)
    style = f" style='max-width:{width}px'" if width else ""
    marks = "".join(
        f"<span style='left:{left:.2f}%;top:{top:.2f}%' title='{esc(label)}'></span>"
        for left, top, label in spots
    )
    return f"<div class='published-hover'{style}>{img}{marks}</div>"
