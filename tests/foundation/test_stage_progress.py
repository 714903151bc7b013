"""Long stages report progress in a log too: a plain line at least every 30 seconds."""

from __future__ import annotations

import io

from rich.console import Console

from robustlens import console as console_mod
from robustlens.console import StageProgress


def _log() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, force_terminal=False), buf


def test_a_log_gets_a_first_line_then_one_per_interval_and_a_last_one(monkeypatch):
    # enter; each update reads the clock, and each line it prints reads it again
    clock = iter([0.0, 0.0, 0.0, 10.0, 31.0, 31.0, 40.0, 62.0])
    monkeypatch.setattr(console_mod.time, "perf_counter", lambda: next(clock))
    out, buf = _log()
    with StageProgress("zoo", total=4, unit="members", out=out) as p:
        p.advance()  # t=0: first line
        p.advance()  # t=10: within 30 s of the last line, quiet
        p.advance()  # t=31: a line
        p.advance()  # t=40: quiet
    lines = buf.getvalue().splitlines()
    assert [line.split(" (")[0].strip() for line in lines] == [
        "zoo: 1/4 members",
        "zoo: 3/4 members",
        "zoo: 4/4 members",
    ]
    assert "ETA" in lines[1] and "done in 62 s" in lines[-1]


def test_a_terminal_gets_a_bar_and_no_lines():
    buf = io.StringIO()
    out = Console(file=buf, width=100, force_terminal=True)
    with StageProgress("world", total=2, out=out) as p:
        p.advance(2)
    assert "world: 2/2" not in buf.getvalue()
