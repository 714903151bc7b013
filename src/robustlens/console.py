"""Where command-line output goes: tables to standard output, messages and progress to
standard error, and errors as one clear line with exit code 2 (or the error's own
``exit_code``: 130 for an interrupted study)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Wide enough for the per-model tables of the demo study; rich's 80 would cut model names.
LOG_WIDTH = 160


def stdout_console(width: int | None = None) -> Console:
    """A console for tables on standard output.

    A terminal keeps its own width. A log file or pipe has none, and rich would fall back to
    ``COLUMNS`` or 80 and cut the model names; it gets ``width`` (or ``LOG_WIDTH``) instead.
    ``COLUMNS`` is not trusted there: test runners and CI shells set it to 80 for pipes.
    """
    record = _captured is not None
    console = Console(record=record)
    if not console.is_terminal:
        console = Console(width=width or LOG_WIDTH, record=record)
    if _captured is not None:
        _captured.append(console)
    return console


_captured: list[Console] | None = None


@contextlib.contextmanager
def capturing_tables() -> Iterator[list[Console]]:
    """Keep every table console made inside (:func:`stdout_console`), printing as usual, so
    that what was printed can be read back (``console.export_text()``)."""
    global _captured
    previous, _captured = _captured, []
    try:
        yield _captured
    finally:
        _captured = previous


# Progress lines are not hard-wrapped, so a log keeps one line per dataset (grep-able).
console = Console(stderr=True, soft_wrap=True)


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` as one error line and exit with code 2 (no traceback).

    An error with an ``exit_code`` attribute exits with that code instead (an interrupted
    study: 130, as shells do for Ctrl-C).
    """
    code = int(getattr(exc, "exit_code", 2))
    if code == 130:  # the message says it: "interrupted after ..."
        console.print(f"[bold yellow]{exc}[/]", highlight=False)
    else:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(code=code)


#: a log (no terminal) gets a progress line at least this often while a stage runs
LOG_EVERY_SECONDS = 30.0


class StageProgress:
    """Progress of one long stage (world, zoo, generator, engine passes, store verify).

    On a terminal: a rich bar (done/total, elapsed, remaining). In a log or pipe, where a bar
    would print nothing until the end: a plain line ``stage: done/total (rate/s, ETA)`` at the
    first step and then at most every :data:`LOG_EVERY_SECONDS`, and one when the stage ends;
    a step that takes longer (the first zoo member to finish, a long batch) still gets a line
    every :data:`LOG_EVERY_SECONDS` from a heartbeat thread, so a log never goes quiet longer.
    """

    def __init__(
        self,
        stage: str,
        total: float | None = None,
        unit: str = "",
        out: Console | None = None,
        every: float = LOG_EVERY_SECONDS,
    ) -> None:
        self.stage, self.total, self.unit, self.every = stage, total, unit, every
        self.out = out or console
        self.done = 0.0
        self._bar: Progress | None = None
        self._task: Any = None
        self._t0 = self._last = 0.0
        self._last_wall = 0.0  # monotonic time of the last line, for the heartbeat
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> StageProgress:
        self._t0 = time.perf_counter()
        self._last = -float("inf")
        if self.out.is_terminal:
            self._bar = Progress(
                f"[bold]{self.stage}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.out,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.stage, total=self.total)
        elif self.every > 0:
            self._last_wall = time.monotonic()
            self._heartbeat = threading.Thread(target=self._beat, daemon=True)
            self._heartbeat.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every / 4):
            if time.monotonic() - self._last_wall >= self.every:
                self._line()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self._bar is not None:
            self._bar.stop()
        elif self.done:
            self._line(final=True)

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def update(self, completed: float, total: float | None = None) -> None:
        self.done = completed
        if total is not None:
            self.total = total
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, total=self.total)
        elif time.perf_counter() - self._last >= self.every:
            self._line()

    def _line(self, final: bool = False) -> None:
        now = time.perf_counter()
        self._last = now
        self._last_wall = time.monotonic()
        elapsed = max(now - self._t0, 1e-9)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        total = f"/{self.total:g}" if self.total else ""
        eta = ""
        if self.total and rate > 0 and not final:
            eta = f", ETA {(self.total - self.done) / rate:.0f} s"
        when = f"done in {elapsed:.0f} s" if final else f"{rate:.2f}{unit}/s{eta}"
        # a count of things (images) moves by fractions inside a long batch: show whole ones
        done = f"{self.done:g}" if (self.total or 0) < 10 else f"{int(self.done)}"
        self.out.print(f"  {self.stage}: {done}{total}{unit} ({when})")
