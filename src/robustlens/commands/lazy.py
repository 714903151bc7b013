"""The research lines' commands, listed without importing the lines.

Importing a research line imports everything it runs (torch, the models, the report), which
``robustlens --help`` and the core commands do not need. The command line's group
(:class:`LazyGroup`) therefore lists the lines' commands from an index (name, help text, help
panel of each) kept in the user's cache directory, and imports the lines only when one of
their commands runs, when its own help is asked for, or when the index is stale.

The index is valid for one signature: the entry points of the ``robustlens.lines`` group (and
the distributions that declare them), the robustlens version, and the size and modification
time of every Python file of the packages that hold the lines (``robustlens/lines`` for the
shipped ones). Any change there (an edited command, a line installed or removed) makes the
next invocation import the lines and write the index again; editing the core does not.
A process that has imported the line registry already (a test, a notebook) never reads the
index: it registers the lines' commands as they are.

The cache directory is ``$ROBUSTLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/robustlens``, else
``~/.cache/robustlens``; when it cannot be written the lines are simply imported every time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

import robustlens

__all__ = [
    "ENTRY_POINT_GROUP",
    "INDEX_FILE",
    "LazyGroup",
    "cache_dir",
    "describe",
    "line_commands",
    "read_index",
    "signature",
    "write_index",
]

#: ``robustlens.measure.ENTRY_POINT_GROUP``, written out: the measure module imports the data
#: layer (a test checks that the two agree)
ENTRY_POINT_GROUP = "robustlens.lines"
INDEX_FILE = "line-commands.json"
_INDEX_VERSION = 1
#: the module whose presence says that the lines are (about to be) loaded in this process
_REGISTRY_MODULE = "robustlens.measure"


def cache_dir() -> Path:
    """Where the index lives (see the module docstring)."""
    explicit = os.environ.get("ROBUSTLENS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "robustlens"


def _py_files(root: Path) -> Iterator[list[Any]]:
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                p = os.path.join(here, f)
                st = os.stat(p)
                yield [os.path.relpath(p, root), st.st_size, st.st_mtime_ns]


def signature() -> str:
    """What the index is valid for: the lines' entry points and their packages' files."""
    eps = sorted(
        (
            ep.name,
            ep.value,
            getattr(ep.dist, "name", "") or "",
            getattr(ep.dist, "version", "") or "",
        )
        for ep in entry_points(group=ENTRY_POINT_GROUP)
    )
    # the shipped lines (their commands' help is all the index keeps), then other packages
    roots = {Path(robustlens.__file__).resolve().parent / "lines"}
    for _, value, _, _ in eps:
        top = value.split(":", 1)[0].split(".", 1)[0]
        if top == "robustlens":
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            roots.add(Path(top))  # not importable: the load will say so
        elif spec.submodule_search_locations:
            roots.update(Path(p) for p in spec.submodule_search_locations)
        elif spec.origin:
            roots.add(Path(spec.origin))
    files = []
    for root in sorted(roots):
        if root.is_dir():
            files.append([str(root), list(_py_files(root))])
        elif root.is_file():
            st = root.stat()
            files.append([str(root), st.st_size, st.st_mtime_ns])
        else:
            files.append([str(root), None])
    payload = [_INDEX_VERSION, robustlens.__version__, sys.version, eps, files]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def read_index(sig: str) -> list[dict[str, Any]] | None:
    """The indexed commands for signature ``sig``, or ``None`` (no index, or a stale one)."""
    try:
        data = json.loads((cache_dir() / INDEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("signature") != sig:
        return None
    commands = data.get("commands")
    if not isinstance(commands, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in commands
    ):
        return None
    return commands


def write_index(sig: str, commands: list[dict[str, Any]]) -> None:
    """Keep the index (atomically; nothing happens when the cache cannot be written)."""
    try:
        text = json.dumps({"signature": sig, "commands": commands})
    except (TypeError, ValueError):  # a command whose help is not text: no index
        return
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, folder / INDEX_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def _plain(value: Any) -> str | None:
    """A help panel's name (typer wraps a default one in a placeholder)."""
    value = getattr(value, "value", value)
    return value if isinstance(value, str) else None


def describe(commands: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the index keeps of each command: what the top-level help shows of it."""
    return [
        {
            "name": name,
            "help": cmd.help,
            "short_help": cmd.short_help,
            "hidden": bool(cmd.hidden),
            "deprecated": bool(cmd.deprecated),
            "panel": _plain(getattr(cmd, "rich_help_panel", None)),
            "group": isinstance(cmd, TyperGroup),
        }
        for name, cmd in commands.items()
    ]


def line_commands(rich_markup_mode: Any = "rich") -> dict[str, Any]:
    """Every research line's commands, as click commands (imports the lines)."""
    from robustlens.measure import lines  # lazy: the lines import torch and the report

    sub = typer.Typer(rich_markup_mode=rich_markup_mode)
    for line in lines():
        for register in line.commands:
            register(sub)
    if not sub.registered_commands and not sub.registered_groups:
        return {}
    return dict(typer.main.get_group(sub).commands)


def _placeholder(entry: Mapping[str, Any]) -> TyperCommand:
    """A stand-in that shows in the command list as the indexed command does."""
    return TyperCommand(
        name=entry["name"],
        help=entry.get("help"),
        short_help=entry.get("short_help"),
        hidden=bool(entry.get("hidden")),
        deprecated=bool(entry.get("deprecated")),
        rich_help_panel=entry.get("panel"),
    )


class _LazyCommands(dict):
    """The group's commands: the core's at once, the lines' loaded on the first look at all of
    them (iteration, length) or at one that is not there yet."""

    def __init__(self, eager: Mapping[str, Any], load: Callable[[], None]) -> None:
        super().__init__(eager)
        self._load = load
        self.loaded = False

    def _full(self) -> None:
        if not self.loaded:
            self.loaded = True
            self._load()

    def __iter__(self) -> Iterator[str]:
        self._full()
        return super().__iter__()

    def __len__(self) -> int:
        self._full()
        return super().__len__()

    def __contains__(self, name: object) -> bool:
        if not super().__contains__(name):
            self._full()
        return super().__contains__(name)

    def __getitem__(self, name: str) -> Any:
        if not super().__contains__(name):
            self._full()
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        if not super().__contains__(name):
            self._full()
        return super().get(name, default)

    def keys(self) -> Any:
        self._full()
        return super().keys()

    def values(self) -> Any:
        self._full()
        return super().values()

    def items(self) -> Any:
        self._full()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._full()
        return dict(super().items())

    def eager_names(self) -> list[str]:
        return list(super().keys())

    def eager_get(self, name: str) -> Any:
        return super().get(name)

    def replace_all(self, ordered: Mapping[str, Any]) -> None:
        super().clear()
        super().update(ordered)


class LazyGroup(TyperGroup):
    """The top-level group: the core's commands, and the lines' from the index (see the
    module docstring) until one of them is needed."""

    def __init__(self, *args: Any, commands: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, commands=commands, **kwargs)
        self.commands = _LazyCommands(dict(self.commands), self._load_lines)
        self._listing = False
        self._index: list[dict[str, Any]] | bool | None = False  # False: not looked at yet
        self._sig: str | None = None

    def _indexed(self) -> list[dict[str, Any]] | None:
        """The index, when this process may use it and it is current."""
        if self._index is False:
            self._index = None
            if _REGISTRY_MODULE not in sys.modules:
                self._sig = signature()
                self._index = read_index(self._sig)
        return self._index  # type: ignore[return-value]

    def _load_lines(self) -> None:
        commands: _LazyCommands = self.commands  # type: ignore[assignment]
        fresh = _REGISTRY_MODULE not in sys.modules
        found = line_commands(self.rich_markup_mode)
        eager = {n: commands.eager_get(n) for n in commands.eager_names()}
        ordered: dict[str, Any] = {}  # commands first, then groups (as typer orders them)
        for want_group in (False, True):
            for source in (eager, found):
                ordered.update(
                    {n: c for n, c in source.items() if isinstance(c, TyperGroup) == want_group}
                )
        commands.replace_all(ordered)
        if fresh:
            sig = self._sig or signature()
            write_index(sig, describe(found))

    def _entries(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self._indexed() or []}

    def list_commands(self, ctx: Any) -> list[str]:
        commands: _LazyCommands = self.commands  # type: ignore[assignment]
        index = None if commands.loaded else self._indexed()
        if index is None:
            return list(commands)
        eager = {n: commands.eager_get(n) for n in commands.eager_names()}
        plain = [n for n, c in eager.items() if not isinstance(c, TyperGroup)]
        groups = [n for n, c in eager.items() if isinstance(c, TyperGroup)]
        plain += [e["name"] for e in index if not e.get("group") and e["name"] not in eager]
        groups += [e["name"] for e in index if e.get("group") and e["name"] not in eager]
        return plain + groups

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands: _LazyCommands = self.commands  # type: ignore[assignment]
        found = commands.eager_get(cmd_name)
        if found is not None or commands.loaded:
            return found
        if self._listing:
            entry = self._entries().get(cmd_name)
            if entry is not None:
                return _placeholder(entry)
        return commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            return super().format_help(ctx, formatter)
        finally:
            self._listing = False
