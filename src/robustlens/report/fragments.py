"""The report's cache: every part of the page is drawn once per (code, inputs).

A part of the page (the per-model tables, a research line's section, the summary of what
predicts robustness) is a function of the :class:`~robustlens.report.context.ReportContext`.
Its HTML is kept in the study's store (:meth:`robustlens.store.Store.put_fragment`) under the
sha256 of

* the code that draws it: every file of the robustlens core (all but ``lines/``, package data
  included), the files of the research line the part comes from (or of the package that
  defines it), the versions of the drawing libraries, and the registered sections;
* the data it can read: the results table, the datasets and models, the study's summary
  (less the keys that change on every run, see below), every file of the output directory
  (artifacts, per-sample outputs, exports, files a line wrote there; not the report pages
  themselves), in-memory artifacts, and any file the summary names (e.g. a published table
  given as a path).

A re-render with the same code and data reads each part back (checked against its sha256 by
the store) instead of drawing it. The study summary's counters and timings
(:data:`VOLATILE_STUDY_KEYS`) change on every run; they are left out of the key, and a part
that reads one of them is never kept (it is drawn every time). Parts whose drawing function
is not a plain module-level function (a closure, a partial) are drawn every time too, as are
parts that fail (their error box is shown, as before). Warnings a part raised while drawn are
kept with it and raised again when it is reused.

Parts that must be drawn are drawn in parallel worker processes (forked, so they share the
loaded context) when several are missing and the machine has more than one core, the longest
first (by how long each took the last time it was drawn).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

import robustlens
from robustlens.errors import StoreError
from robustlens.paths import named_paths
from robustlens.report.context import ReportContext
from robustlens.store import Store

__all__ = [
    "FRAGMENT_FORMAT",
    "VOLATILE_STUDY_KEYS",
    "Drawn",
    "FragmentCache",
    "Part",
    "code_digest",
    "inputs_digest",
    "package_digest",
    "results_digest",
]

#: version of the fragment key and payload format (changing it redraws every fragment)
FRAGMENT_FORMAT = "1"
#: study-summary keys that change on every run (timings, counters, the time of writing)
VOLATILE_STUDY_KEYS = frozenset(
    {"written", "stage_seconds", "engine", "images_decoded", "forward_passes", "forward_seconds"}
)
#: libraries whose version can change what a part draws
_LIBRARIES = ("matplotlib", "numpy", "pandas", "scipy", "scikit-learn", "pyarrow")
#: fewest parts to draw before worker processes are worth their start
MIN_PARALLEL = 2


@dataclass(frozen=True)
class Part:
    """One part of the page: its anchor id, its title and the function that draws it.

    ``kind="table"``: ``draw`` returns a :class:`~robustlens.tables.Table` (or ``None``),
    such as a line's summary for the terminal; it is kept as its JSON
    (:meth:`~robustlens.tables.Table.to_json`), which is what :attr:`Drawn.html` holds.
    """

    id: str
    title: str
    draw: Callable[[ReportContext], Any]
    kind: str = "html"


@dataclass
class Drawn:
    """A part's HTML (``None``: nothing to show; a table part's JSON) or its error, and
    whether it was reused."""

    part: Part
    html: str | None = None
    error: tuple[str, str] | None = None  # (message, traceback)
    reused: bool = False
    warnings: list[list[Any]] = field(default_factory=list)
    #: the part may be kept (it read no volatile study key and did not fail)
    keep: bool = True
    #: how long drawing it took
    seconds: float = 0.0


# ----------------------------------------------------------------------------- the key
class _TrackedStudy(dict):
    """The study summary as a part sees it: notes whether a volatile key was read."""

    read_volatile = False

    def _note(self, key: Any) -> None:
        if key in VOLATILE_STUDY_KEYS:
            self.read_volatile = True

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __contains__(self, key: Any) -> bool:
        self._note(key)
        return super().__contains__(key)

    def _all(self) -> None:
        if any(k in VOLATILE_STUDY_KEYS for k in dict.keys(self)):
            self.read_volatile = True

    def __iter__(self) -> Iterator[Any]:
        self._all()
        return super().__iter__()

    def keys(self) -> Any:
        self._all()
        return super().keys()

    def values(self) -> Any:
        self._all()
        return super().values()

    def items(self) -> Any:
        self._all()
        return super().items()

    def copy(self) -> dict[Any, Any]:
        self._all()
        return dict(super().items())

    def pop(self, key: Any, *default: Any) -> Any:
        self._note(key)
        return super().pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return super().setdefault(key, default)


def _sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _files_digest(store: Store | None, files: Iterable[Path], root: Path) -> list[list[str]]:
    """``[[path relative to root, sha256], ...]`` in path order (``unreadable`` for a file
    that cannot be read)."""
    files = sorted(files)
    try:
        digests = store.file_digests(files) if store is not None else [_hash(f) for f in files]
    except OSError:
        digests = []
        for f in files:
            try:
                digests.append(store.file_digest(f) if store is not None else _hash(f))
            except OSError:
                digests.append("unreadable")
    return [[os.path.relpath(f, root), d] for f, d in zip(files, digests, strict=True)]


def _hash(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _package_files(root: Path, skip: str | None = None) -> list[Path]:
    """Every file under ``root`` but compiled Python (and the top folder ``skip``)."""
    out = []
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not (here == str(root) and d == skip)]
        out += [Path(here, f) for f in files if not f.endswith((".pyc", ".pyo"))]
    return out


@cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in _LIBRARIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "-"))
    return (*out, ("python", sys.version))


def _code_root(fn: Any) -> tuple[str, Path] | None:
    """Where the code of a drawing function lives: ``("core", dir)`` for robustlens outside
    ``lines/``, ``("line", dir)`` for a shipped line, ``("package", dir)`` or ``("module",
    file)`` for code outside robustlens; ``None`` when it cannot be read back."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    if module is None or not file:
        return None
    name = module.__name__
    if name == "robustlens" or name.startswith("robustlens."):
        parts = name.split(".")
        if len(parts) >= 3 and parts[1] == "lines":
            return "line", Path(robustlens.__file__).parent / "lines" / parts[2]
        return "core", Path(robustlens.__file__).parent
    top = sys.modules.get(name.split(".")[0])
    top_file = getattr(top, "__file__", None)
    if top is not None and top_file and Path(top_file).name == "__init__.py":
        return "package", Path(top_file).parent
    return "module", Path(file)


def code_digest(
    fn: Any, store: Store | None = None, memo: dict[tuple[str, Path], str] | None = None
) -> str | None:
    """The digest of the code that ``fn`` (a part's drawing function) runs, or ``None`` when
    it cannot be pinned down (not a plain module-level function, no source file): such a
    part is drawn every time. ``memo`` keeps folder digests between calls (one page)."""
    if not isinstance(fn, types.FunctionType) or fn.__closure__:
        return None
    where = _code_root(fn)
    if where is None:
        return None
    memo = {} if memo is None else memo

    def digest(kind: str, path: Path) -> str:
        if (kind, path) not in memo:
            if kind == "core":
                files = _files_digest(store, _package_files(path, skip="lines"), path)
            elif kind == "module":
                files = _files_digest(store, [path], path.parent)
            else:
                files = _files_digest(store, _package_files(path), path)
            memo[kind, path] = _sha(files)
        return memo[kind, path]

    kind, path = where
    parts = [FRAGMENT_FORMAT, _library_versions(), fn.__module__, fn.__qualname__]
    parts.append(digest("core", Path(robustlens.__file__).parent))
    if kind != "core":
        parts.append(digest(kind, path))
    return _sha(*parts)


def package_digest(store: Store | None = None) -> str:
    """The digest of every file of robustlens (the core, the research lines, package data)
    and of the drawing libraries' versions: the code behind the exports."""
    root = Path(robustlens.__file__).parent
    return _sha(
        FRAGMENT_FORMAT, _library_versions(), _files_digest(store, _package_files(root), root)
    )


def results_digest(df: pd.DataFrame) -> str:
    """The digest of a results table (columns, dtypes and every value)."""
    return _results_digest(df)


def _results_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, df.columns)), [str(t) for t in df.dtypes]]).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _named_files(study: Mapping[str, Any]) -> list[Path]:
    """Files the study summary names by path (e.g. a published table given as a file)."""
    return named_paths(study, files_only=True)


def _output_files(out_dir: Path, skip: Sequence[Path]) -> list[Path]:
    """Every file of the output directory a part may read: not the report pages (``*.html``:
    they hold the time they were written), the study summary (its timings, in ``skip``) or
    temporary and hidden files."""
    if not out_dir.is_dir():
        return []
    skipped = {os.path.abspath(p) for p in skip}
    out = []
    for here, dirs, files in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            p = os.path.join(here, f)
            if f.startswith(".") or f.endswith((".html", ".tmp")):
                continue
            if os.path.abspath(p) not in skipped:
                out.append(Path(p))
    return out


def inputs_digest(ctx: ReportContext, store: Store | None = None, skip: Sequence[Path] = ()) -> str:
    """The digest of everything a part can read from ``ctx`` (see the module docstring);
    ``skip``: files of the output directory that are not inputs (the summary file)."""
    study = {k: v for k, v in dict.items(ctx.study) if k not in VOLATILE_STUDY_KEYS}
    out_dir = Path(ctx.output_dir)
    artifacts: Any = "files"
    if not hasattr(ctx.artifacts, "_files"):  # in memory, not the output directory's files
        artifacts = {m: ctx.artifacts[m] for m in ctx.artifacts}
    named = _named_files(study)
    return _sha(
        FRAGMENT_FORMAT,
        _results_digest(ctx.results),
        ctx.datasets,
        ctx.models,
        study,
        artifacts,
        str(out_dir.resolve()),
        _files_digest(store, _output_files(out_dir, skip), out_dir),
        [
            [str(p), d]
            for p, (_, d) in zip(named, _files_digest(store, named, Path("/")), strict=True)
        ],
    )


# ----------------------------------------------------------------------------- drawing
def _draw(part: Part, ctx: ReportContext) -> Drawn:
    """Draw one part, noting its warnings and whether it read a volatile study key."""
    study = _TrackedStudy(ctx.study)
    local = replace(ctx, study=study)
    out = Drawn(part)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        try:
            drawn = part.draw(local)
            out.html = drawn.to_json() if part.kind == "table" and drawn is not None else drawn
        except Exception as exc:
            out.error = (repr(exc), traceback.format_exc())
    out.seconds = time.perf_counter() - t0
    out.warnings = [
        [w.category.__module__, w.category.__qualname__, str(w.message), w.filename, w.lineno]
        for w in caught
    ]
    out.keep = out.error is None and not study.read_volatile
    return out


def _replay(recorded: Iterable[Sequence[Any]]) -> None:
    """Raise again the warnings a part raised while it was drawn."""
    for module, qualname, message, filename, lineno in recorded:
        category: Any = None
        if module == "builtins":
            category = getattr(builtins, qualname, None)
        else:
            obj: Any = sys.modules.get(module)
            for attr in qualname.split("."):
                obj = getattr(obj, attr, None)
            category = obj
        if not (isinstance(category, type) and issubclass(category, Warning)):
            category = UserWarning
        warnings.warn_explicit(message, category, filename, lineno)


#: the context forked workers draw from (set in the parent just before they start)
_WORKER: dict[str, Any] = {}


def _draw_in_worker(index: int) -> tuple[Any, ...]:
    d = _draw(_WORKER["parts"][index], _WORKER["ctx"])
    return d.html, d.error, d.warnings, d.keep, d.seconds  # the part need not be picklable


def _workers(n_missing: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if n_missing < MIN_PARALLEL or cores < 2:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(cores, n_missing)


class FragmentCache:
    """Draws the parts of one page, reusing those whose code and inputs did not change.

    Args:
        store: where fragments are kept (``None``: nothing is kept, every part is drawn).
        ctx: the report context the parts read.
        skip: files of the output directory that are not inputs.
        parallel: draw missing parts in forked worker processes when there are several.

    Attributes:
        drawn, reused: how many parts were drawn and how many were read back, this page.
    """

    def __init__(
        self,
        store: Store | None,
        ctx: ReportContext,
        skip: Sequence[Path] = (),
        parallel: bool = True,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.parallel = parallel
        self.drawn = 0
        self.reused = 0
        self._code: dict[tuple[str, Path], str] = {}
        self._inputs: str | None = None
        if store is not None:
            try:
                self._inputs = inputs_digest(ctx, store, skip)
            except (TypeError, ValueError):  # inputs that cannot be written down: draw all
                self._inputs = None

    def _key(self, part: Part, registry: Any) -> str | None:
        if self.store is None or self._inputs is None:
            return None
        code = code_digest(part.draw, self.store, self._code)
        if code is None:
            return None
        return _sha(FRAGMENT_FORMAT, part.id, part.title, code, registry, self._inputs)

    def _read(self, key: str | None, part: Part) -> Drawn | None:
        if key is None or self.store is None:
            return None
        text = self.store.get_fragment(key)
        if text is None:
            return None
        try:
            payload = json.loads(text)
            html = payload["html"]
            recorded = list(payload.get("warnings") or [])
        except (ValueError, KeyError, TypeError):
            return None
        if html is not None and not isinstance(html, str):
            return None
        return Drawn(part, html=html, reused=True, warnings=recorded)

    def _last_seconds(self, part: Part) -> float:
        if self.store is None:
            return math.inf
        try:
            return float(self.store.memo("report-seconds", part.id) or math.inf)
        except ValueError:
            return math.inf

    def _keep(self, key: str | None, drawn: Drawn) -> None:
        if self.store is not None and drawn.error is None:
            with contextlib.suppress(StoreError):
                self.store.put_memo("report-seconds", drawn.part.id, f"{drawn.seconds:.3f}")
        if key is None or self.store is None or not drawn.keep:
            return
        with contextlib.suppress(StoreError):
            self.store.put_fragment(
                key, json.dumps({"html": drawn.html, "warnings": drawn.warnings})
            )

    def draw_all(self, parts: Sequence[Part], registry: Any = None) -> list[Drawn]:
        """Each part's :class:`Drawn`, in order: read back where it can be, drawn where it
        must be (in parallel when several must), warnings raised again in order."""
        keys = [self._key(p, registry) for p in parts]
        out: list[Drawn | None] = [self._read(k, p) for k, p in zip(keys, parts, strict=True)]
        missing = [i for i, d in enumerate(out) if d is None]
        n = _workers(len(missing)) if self.parallel else 1
        if n > 1:
            # the longest first (as they took last time; new ones count as long), so that
            # no worker is left with a long part at the end
            missing.sort(key=lambda i: -self._last_seconds(parts[i]))
            drawn = self._draw_forked(parts, missing, n)
        else:
            drawn = [_draw(parts[i], self.ctx) for i in missing]
        for i, d in zip(missing, drawn, strict=True):
            self._keep(keys[i], d)
            out[i] = d
        result: list[Drawn] = []
        for d in out:
            assert d is not None
            if d.reused:
                self.reused += 1
            else:
                self.drawn += 1
            _replay(d.warnings)
            result.append(d)
        return result

    def _draw_forked(self, parts: Sequence[Part], missing: list[int], n: int) -> list[Drawn]:
        _WORKER.update(parts=list(parts), ctx=self.ctx)
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(n, mp_context=ctx) as pool:
                done = list(pool.map(_draw_in_worker, missing))
            return [
                Drawn(parts[i], html=h, error=e, warnings=w, keep=k, seconds=t)
                for i, (h, e, w, k, t) in zip(missing, done, strict=True)
            ]
        except Exception:  # a worker could not start or died: draw here instead
            return [_draw(parts[i], self.ctx) for i in missing]
        finally:
            _WORKER.clear()
