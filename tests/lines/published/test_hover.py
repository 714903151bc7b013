"""Hover spots lie on the points of the PNG that ``figure_html`` embeds."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from robustlens.lines.published.hover import figure_with_hover


def _red_centre(html: str) -> tuple[float, float]:
    png = base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1))
    im = imread(io.BytesIO(png))
    red = (im[..., 0] > 0.9) & (im[..., 1] < 0.2) & (im[..., 2] < 0.2)
    ys, xs = np.nonzero(red)
    h, w = im.shape[:2]
    return 100 * xs.mean() / w, 100 * ys.mean() / h


@pytest.mark.parametrize("log", [False, True])
def test_spots_are_where_the_points_are_drawn(log):
    fig = Figure(figsize=(6, 4))
    axes = fig.subplots(1, 2)
    for ax in axes:
        ax.scatter([1, 50, 2000], [0.3, 0.9, 0.5], color="k", s=5)  # autoscaled limits
        ax.set_xlabel("a long x label")
        ax.set_title("title")
    if log:
        axes[1].set_xscale("log")
    axes[1].scatter([30], [0.4], color=(1, 0, 0), s=90)
    html = figure_with_hover(
        fig,
        "t",
        None,
        [(axes[1], 30.0, 0.4, "red one"), (axes[0], 1.0, 0.3, "a<b"), (axes[0], np.nan, 1, "x")],
    )
    spots = re.findall(r"left:([\d.]+)%;top:([\d.]+)%' title='([^']*)'", html)
    assert [s[2] for s in spots] == ["red one", "a&lt;b"]  # escaped; NaN left out
    x, y = _red_centre(html)
    assert float(spots[0][0]) == pytest.approx(x, abs=0.5)
    assert float(spots[0][1]) == pytest.approx(y, abs=0.5)
    assert html.startswith("<div class='published-hover'>")
