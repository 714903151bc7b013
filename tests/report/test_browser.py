"""Open the report in headless Chromium: screenshot, plots rendered, no script errors, and the
table script sorts and filters. Skips only when Chromium cannot be found or installed."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robustlens.config import parse_config
from robustlens.report import write_report
from robustlens.report.browser import dump_dom, find_chromium, screenshot
from robustlens.study import run_study

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install_browser.sh"


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    said = ""
    if exe is None and INSTALL.exists():
        proc = subprocess.run(
            ["sh", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False
        )
        said = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
        exe = find_chromium()
    if exe is None:
        pytest.skip(
            f"Chromium not found and could not be installed ({said or 'no installer'}); "
            "run scripts/install_browser.sh to enable this test"
        )
    return exe


@pytest.fixture(scope="module")
def report(tiny_world, tiny_zoo_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-study")
    world = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_world.config).items()
    }
    cfg = parse_config(
        {
            "name": "browser",
            "store": str(root / "store"),
            "output": str(root / "out"),
            "world": world,
            "models": [{"source": "zoo", "path": str(tiny_zoo_dir)}],
            "datasets": [{"world": "all"}],
            "measures": ["accuracy"],
            "engine": {"num_workers": 0},
        }
    )
    return write_report(run_study(cfg), strict=True)


def test_report_renders_every_plot_without_script_errors(chromium, report, tmp_path):
    from PIL import Image

    page = report.read_text()
    n_plots = len(re.findall(r'<img class="plot"', page))
    assert n_plots >= 3
    png = tmp_path / "report.png"
    info = screenshot(report, png, width=1400, height=3000, chromium=chromium)
    assert info["ready"], f"the page's load script did not run: {info['stderr_tail']}"
    assert info["errors"] == []
    assert info["plots_total"] == n_plots
    assert info["plots"] == n_plots  # every plot decoded with a non-zero width
    assert png.exists() and info["png_bytes"] > 50_000
    with Image.open(png) as im:
        assert im.size == (1400, 3000)
        gray = np.asarray(im.convert("L"), dtype=float)
    assert gray.std() > 10  # not a blank page: text, tables and plots are drawn


def test_a_script_error_is_reported(chromium, report, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        report.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load',function(){});"
            "undefinedFunctionCall();</script></body>",
        )
    )
    info = dump_dom(bad, chromium=chromium)
    assert any("undefinedFunctionCall" in e for e in info["errors"]), info["errors"]


_PROBE = """<script>window.addEventListener('load',function(){
var t=document.getElementById('t-models'),th=t.tHead.rows[0].cells[1];
function col(){return [].map.call(t.tBodies[0].rows,function(r){
  return r.cells[1].getAttribute('data-v');});}
th.click();var d1=col();th.click();var d2=col();
var f=document.querySelector('.col-filter[data-table="t-models"]');f.value='ece';
f.dispatchEvent(new Event('input'));
var vis=[].filter.call(t.tHead.rows[0].cells,function(c){return !c.classList.contains('hidden');})
  .map(function(c){return c.getAttribute('data-col');});
document.body.dataset.probe=JSON.stringify({first:d1,second:d2,visible:vis});});</script>"""


def test_table_sorts_and_filters_columns(chromium, report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    info = dump_dom(probe, chromium=chromium)
    assert info["errors"] == []
    got = json.loads(info["data"]["probe"])
    first = [float(v) for v in got["first"]]
    second = [float(v) for v in got["second"]]
    assert first == sorted(first, reverse=True)  # numbers sort largest first on first click
    assert second == sorted(second)  # and flip on the second
    assert got["visible"][0] == "model"
    assert len(got["visible"]) > 1 and all("ece" in c for c in got["visible"][1:])
