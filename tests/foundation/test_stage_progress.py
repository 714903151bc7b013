"""Long stages report progress in a log too: a plain line at least every 30 seconds."""

from __future__ import annotations

import io
import time

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


def test_one_long_batch_moves_the_engine_bar_after_each_forward_pass(
    monkeypatch, tiny_world, tiny_models, tmp_path
):
    # a log line at every update: the bar must move inside a batch, not only after it
    from robustlens.engine import Engine, EngineJob
    from robustlens.store import Store

    out, buf = _log()
    init = StageProgress.__init__

    def logged(self, stage, total=None, unit="", out=out, every=0.0):
        init(self, stage, total, unit, out, every)

    monkeypatch.setattr(StageProgress, "__init__", logged)
    ds = tiny_world.dataset("val")
    views = ["clean", "rot90", "gray"]
    engine = Engine(Store(tmp_path / "store"), batch_size=1000, device="cpu", progress=True)
    engine.run(ds, [EngineJob(m, views, frozenset()) for m in tiny_models])
    counts = [
        int(line.split(": ")[1].split("/")[0])
        for line in buf.getvalue().splitlines()
        if line.strip().startswith("world/val:")
    ]
    # 3 models x 3 views = 9 passes over the one batch of all images: 8 lines inside it
    assert len(counts) >= 9 and counts == sorted(counts) and counts[-1] == len(ds)
    assert 0 < counts[0] < len(ds)


def test_a_log_hears_from_a_stage_whose_steps_take_longer_than_the_interval():
    out, buf = _log()
    with StageProgress("zoo", total=3, unit="members", out=out, every=0.2):
        time.sleep(0.7)  # no step at all yet: the heartbeat still prints
    lines = [line for line in buf.getvalue().splitlines() if line.strip()]
    assert len(lines) >= 2 and all(line.strip().startswith("zoo: 0/3 members") for line in lines)
