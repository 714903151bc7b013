"""What a report section reads: :class:`ReportContext`, and how it embeds a figure.

A section (a research line's :class:`robustlens.measure.Section`, or one of the page's own)
takes a :class:`ReportContext` and returns an HTML fragment (or ``None`` when it has nothing to
show). Figures are embedded as base64 PNG (no CDN, works offline).
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustlens.formatting import esc
from robustlens.report.exports import iter_per_sample


@dataclass
class ReportContext:
    """Everything a section may read. Sections never run models."""

    results: pd.DataFrame  # long: model, dataset, measure, name, value
    artifacts: dict[str, dict[str, Any]]  # {model: {measure: artifacts}}
    output_dir: Path
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> role, tags
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> config
    study: dict[str, Any] = field(default_factory=dict)  # name, counters, stage seconds

    def values(self, measure: str, name: str, dataset: str | None = None) -> pd.Series:
        """One number per model (mean over datasets when ``dataset`` is None)."""
        df = self.results[(self.results["measure"] == measure) & (self.results["name"] == name)]
        if dataset is not None:
            df = df[df["dataset"] == dataset]
        return df.groupby("model")["value"].mean()

    def role(self, dataset: str) -> str:
        """The study role of a dataset (``id``, ``corrupt``, ``sketch``, ...; ``other``)."""
        return str(self.datasets.get(dataset, {}).get("role", "other"))

    def datasets_with_role(self, *roles: str) -> list[str]:
        """Datasets of the given roles, in study order."""
        return [d for d, info in self.datasets.items() if info.get("role") in roles]

    def iter_per_sample(self, columns: list[str] | None = None, datasets: list[str] | None = None):
        """Yield ``(model, per-sample DataFrame)`` one model at a time (bounded memory)."""
        models = list(self.models) or None
        yield from iter_per_sample(self.output_dir, models, columns, datasets)


def figure_html(fig: Any, alt: str, width: int | None = None) -> str:
    """Embed a matplotlib figure as a base64 PNG <img>.

    Figures are best made with ``matplotlib.figure.Figure`` (no pyplot state); one made with
    pyplot is closed here, so that pyplot lets go of it.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")  # only loaded if a section used pyplot
    if pyplot is not None:
        pyplot.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    style = f' style="max-width:{width}px"' if width else ""
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{data}"{style}>'


def annotate_points(
    ax: Any, labels: Iterable[Any], xs: Iterable[Any], ys: Iterable[Any], **style: Any
) -> None:
    """Write each label (e.g. a model's name) next to its point of a scatter on ``ax``.

    Points with a non-finite coordinate are skipped; ``style`` adds text properties (such as
    ``color``) to the small (7 pt) labels, set 3 points up and right of their point.
    """
    for label, x, y in zip(labels, xs, ys, strict=True):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(
                str(label), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points", **style
            )
