"""End to end: the quick demo from an empty directory to the HTML report (slow: minutes)."""

import pytest
from typer.testing import CliRunner

from robustlens.cli import app

pytestmark = pytest.mark.slow


def test_quick_demo_end_to_end(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path), "--quick"])
    assert res.exit_code == 0, res.output
    report = tmp_path / "report" / "report.html"
    assert report.exists(), res.output
    html = report.read_text()
    assert "cnn32-standard" in html and "<img" in html
    assert list((tmp_path / "report" / "per_sample").glob("*.parquet"))
    # a second run replays the first one's summary (nothing changed); --full runs every
    # stage, answered from the store
    again = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path), "--quick"])
    assert again.exit_code == 0, again.output
    assert "nothing changed since the run of" in again.output
    full = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path), "--quick", "--full"])
    assert full.exit_code == 0, full.output
    assert "no forward pass" in full.output
