"""Where the command-line tables go."""

from __future__ import annotations

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
