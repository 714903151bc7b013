"""Where command-line output goes: tables to standard output, messages and progress to
standard error, and errors as one clear line with exit code 2 (or the error's own
``exit_code``: 130 for an interrupted study)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

# Wide enough for the per-model tables of the demo study; rich's 80 would cut model names.
LOG_WIDTH = 160


def stdout_console(width: int | None = None) -> Console:
    """A console for tables on standard output.

    A terminal keeps its own width. A log file or pipe has none, and rich would fall back to
    ``COLUMNS`` or 80 and cut the model names; it gets ``width`` (or ``LOG_WIDTH``) instead.
    ``COLUMNS`` is not trusted there: test runners and CI shells set it to 80 for pipes.
    """
    console = Console()
    if console.is_terminal:
        return console
    return Console(width=width or LOG_WIDTH)


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
