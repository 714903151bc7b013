"""The paths a nested structure names: the strings in a study's config or summary that are
existing files or folders. Imports nothing heavy (the run record's checks use it before any
heavy import)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["named_paths", "strings_in"]


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a nesting of mappings (their values) and iterables, depth first.

    Example:
        >>> list(strings_in({"a": "x", "b": [1, "y", {"c": ("z",)}]}))
        ['x', 'y', 'z']
    """
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        for v in value:
            yield from strings_in(v)


def named_paths(value: Any, base: Path | None = None, files_only: bool = False) -> list[Path]:
    """The existing paths among the strings of ``value`` (:func:`strings_in`), resolved and
    sorted; relative ones are taken against ``base`` (the working directory when None).
    Strings that cannot be paths (empty, multi-line, over 4096 characters) are skipped.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "w.json").write_text("{}")
        >>> named_paths({"weights": "w.json", "arch": "resnet"}, base=d) == [d.resolve() / "w.json"]
        True
    """
    found: set[Path] = set()
    for s in strings_in(value):
        if not s or len(s) > 4096 or "\n" in s:
            continue
        with contextlib.suppress(OSError, ValueError):
            p = Path(s).expanduser()
            if not p.is_absolute() and base is not None:
                p = base / p
            if p.is_file() or (not files_only and p.exists()):
                found.add(p.resolve())
    return sorted(found)
