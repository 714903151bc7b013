"""Start-up: ``robustlens --help`` imports no research line, no torch, no pandas.

The lines' commands are listed from an index in the cache directory, written the first time
the lines are imported (and again whenever they change); each run here is a fresh process
with its own cache directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer

import robustlens
from robustlens.cli import app
from robustlens.commands import lazy
from robustlens.commands import store as store_commands
from robustlens.measure import ENTRY_POINT_GROUP, lines
from robustlens.store import GC_GRACE_S

HEAVY = ("torch", "torchvision", "timm", "matplotlib", "pandas", "numpy", "scipy", "sklearn")
_SCRIPT = f"""
import sys
from robustlens.cli import app
try:
    app(sys.argv[1:], prog_name="robustlens")
except SystemExit:
    pass
heavy = [m for m in {HEAVY!r} if m in sys.modules]
lines = [m for m in sys.modules if m.startswith("robustlens.lines")]
print("LOADED:" + repr((heavy, lines)), file=sys.stderr)
"""


def _cli(cache: Path, *args: str) -> tuple[str, list[str], list[str]]:
    """Run the command line in a fresh process: (stdout, heavy modules, line modules)."""
    src = str(Path(robustlens.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "ROBUSTLENS_CACHE_DIR": str(cache),
        "COLUMNS": "100",
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    loaded = [ln for ln in proc.stderr.splitlines() if ln.startswith("LOADED:")]
    assert loaded, proc.stderr
    heavy, line_modules = eval(loaded[-1].removeprefix("LOADED:"))
    return proc.stdout, heavy, line_modules


def _line_commands() -> set[str]:
    return set(lazy.line_commands())


def test_help_lists_every_command_without_importing_the_lines(tmp_path):
    cold, _, cold_lines = _cli(tmp_path, "--help")
    assert cold_lines  # the first run imports the lines and writes the index
    index = json.loads((tmp_path / lazy.INDEX_FILE).read_text())
    assert {c["name"] for c in index["commands"]} == _line_commands()
    warm, heavy, warm_lines = _cli(tmp_path, "--help")
    assert warm == cold  # the same page, every line's command in it
    assert heavy == [] and warm_lines == []
    for name in _line_commands() | {"study", "report", "store", "zoo"}:
        assert f" {name} " in warm


def test_a_core_command_needs_no_line_and_no_torch(tmp_path):
    out, heavy, line_modules = _cli(tmp_path, "study", "--help")
    assert "--config" in out and "STUDY" in out
    assert heavy == [] and line_modules == []
    assert not (tmp_path / lazy.INDEX_FILE).exists()  # nothing looked up


def test_a_damaged_or_stale_index_is_written_again(tmp_path):
    path = tmp_path / lazy.INDEX_FILE
    path.write_text("{not json")
    out, _, line_modules = _cli(tmp_path, "--help")
    assert line_modules  # the lines were imported to list their commands
    index = json.loads(path.read_text())
    assert index["signature"] == lazy.signature()
    for name in _line_commands():
        assert f" {name} " in out
    # the index is what --help shows while it is current ...
    ghost = {"name": "ghost", "help": "Not a command of any line.", "short_help": None}
    path.write_text(json.dumps({**index, "commands": [*index["commands"], ghost]}))
    out, _, line_modules = _cli(tmp_path, "--help")
    assert "Not a command of any line." in out and line_modules == []
    # ... and is not, once the lines changed
    path.write_text(json.dumps({"signature": "older lines", "commands": [ghost]}))
    out, _, line_modules = _cli(tmp_path, "--help")
    assert "ghost" not in out and line_modules
    assert json.loads(path.read_text())["signature"] == index["signature"]


def test_in_a_process_that_loaded_the_lines_every_command_is_registered():
    lines()  # a test, a notebook: the registry is loaded, the index is never read
    group = typer.main.get_command(app)
    assert _line_commands() <= set(group.commands)
    assert set(group.list_commands(None)) == set(group.commands)


def test_constants_written_out_for_start_up_agree_with_their_modules():
    assert store_commands.GC_GRACE_S == GC_GRACE_S
    assert lazy.ENTRY_POINT_GROUP == ENTRY_POINT_GROUP
