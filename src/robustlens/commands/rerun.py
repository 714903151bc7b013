"""A re-run of a study in which nothing changed answers from its record, in a second.

When ``robustlens study`` finishes a run that computed everything (no failed model, no
skipped file, no damaged array) and wrote its report, it writes a *run record*: what the run
read and wrote, each checked cheaply (size and modification time of every file), and the
summary it printed. The next ``robustlens study`` of the same file with the same options
checks the record before it imports anything heavy (torch, pandas, the lines) and, when every
check holds, prints the recorded summary and stops. ``robustlens demo`` does the same with a
record of its own (a demo run also builds the world and the zoo, and writes its study file
from the code, which the checks of the code cover). Checked, every time:

* the study file's bytes (SHA-256), the command (``study``, ``demo``, ``demo --quick``) and
  its options;
* the code: every file of the installed robustlens package, the name and version of every
  installed distribution (torch, timm, a third-party line, ...), the Python version, the
  variables ``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS`` and ``ROBUSTLENS_*``, and which GPU
  devices exist;
* the inputs: every path the study file names that exists (model checkpoints and the zoo
  directory, dataset roots, class and label files, published tables), each file's size and
  modification time, folders walked;
* the outputs: every file in the study's output folder (the report, the exports, the
  per-sample tables) as it was left, and the store's folder exists.

Anything that moved (an edited file, a touched checkpoint, a deleted export, a new package
version) and the study runs in full, reading every array it can from the store, and writes a
new record. A study whose models come from a download cache (``pretrained: true`` or a named
weights tag, read from the Hugging Face or torch cache) gets no record: those files are not
named in the study, so the check could not see them change.

The records live in the user's cache directory (:func:`robustlens.commands.lazy.cache_dir`),
one per study file and options, written atomically. They hold no numbers the report does not
show; deleting them only makes the next run a full one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import robustlens
from robustlens.commands.lazy import cache_dir
from robustlens.paths import named_paths

if TYPE_CHECKING:
    from robustlens.config import StudyConfig
    from robustlens.study import StudyResult

__all__ = ["RECORD_VERSION", "environment_signature", "record_run", "replay", "tree_signature"]

#: bumped when the record's content or the checks change
RECORD_VERSION = 1
#: environment variables that can change what a run computes
_ENV_PREFIXES = ("ROBUSTLENS_",)
_ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: model-entry keys that name a download cache rather than a file
_CACHE_KEYS = ("pretrained",)


def _record_path(config_path: Path, options: Mapping[str, Any]) -> Path:
    key = json.dumps([str(config_path.resolve()), dict(sorted(options.items()))], default=str)
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir() / "runs" / f"{name}.json"


def _files(root: Path) -> Iterator[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of every file under ``root`` (symlinks followed,
    each real folder once), sorted."""
    seen: set[str] = set()
    for here, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            p = os.path.join(here, f)
            try:
                st = os.stat(p)
            except OSError:  # a dangling link: its presence is what is recorded
                yield os.path.relpath(p, root), -1, -1
                continue
            yield os.path.relpath(p, root), st.st_size, st.st_mtime_ns


def _tree(path: str | Path) -> tuple[str, int]:
    """A file's or folder's digest of sizes and modification times (``"absent"`` if gone),
    and the newest modification time in it (ns; -1 if gone)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return "absent", -1
    h = hashlib.sha256()
    if not p.is_dir():
        h.update(json.dumps([st.st_size, st.st_mtime_ns]).encode())
        return h.hexdigest(), st.st_mtime_ns
    newest = -1
    for item in _files(p):
        h.update(json.dumps(item).encode())
        newest = max(newest, item[2])
    return h.hexdigest(), newest


def tree_signature(path: str | Path) -> str:
    """A digest of a file's or folder's sizes and modification times (``"absent"`` if gone).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "a.txt").write_text("x")
        >>> before = tree_signature(d)
        >>> _ = (d / "a.txt").write_text("xy")
        >>> before != tree_signature(d), tree_signature(d / "nothing")
        (True, 'absent')
    """
    return _tree(path)[0]


def _distributions() -> list[str]:
    """Installed distributions as ``name-version`` from the metadata folders' names (no
    metadata file is read), and the ``.pth`` files that extend the path."""
    out: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if n.endswith((".dist-info", ".egg-info", ".pth", ".egg-link")):
                out.add(f"{entry}:{n}")
    return sorted(out)


#: the installed robustlens package, whose files are part of the code a run used
_PACKAGE = Path(robustlens.__file__).resolve().parent


def environment_signature(package_digest: str | None = None) -> str:
    """What the code of a run was: robustlens's files (``package_digest``, the
    :func:`tree_signature` of the package, computed when not given), the installed
    distributions, Python, the variables that change what runs, the GPUs present (see the
    module doc)."""
    h = hashlib.sha256()
    h.update((package_digest or tree_signature(_PACKAGE)).encode())
    for item in _distributions():
        h.update(item.encode())
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _ENV_NAMES or (k.startswith(_ENV_PREFIXES) and k != "ROBUSTLENS_CACHE_DIR")
    }
    try:
        gpus = sorted(n for n in os.listdir("/dev") if n.startswith(("nvidia", "dri")))
    except OSError:
        gpus = []
    h.update(json.dumps([sys.version, sorted(env.items()), gpus]).encode())
    return h.hexdigest()


def _input_paths(cfg: StudyConfig, base: Path) -> list[Path] | None:
    """Every existing path the study file names (inputs), or ``None`` when some model comes
    from a download cache (see the module doc)."""
    data = cfg.model_dump(mode="json", exclude={"store", "output", "measures", "name"})
    for entry in data.get("models") or []:
        if any(entry.get(k) for k in _CACHE_KEYS):
            return None
    store, output = Path(cfg.store).resolve(), Path(cfg.output).resolve()
    return [
        p
        for p in named_paths(data, base)
        if p != Path("/") and p not in (store, output) and not {store, output} & set(p.parents)
    ]


def _options(
    store: Path | None, executor: str | None, address: str | None, report: bool, command: str
) -> dict[str, Any]:
    return {"store": str(store) if store else None, "executor": executor, "address": address,
            "report": report, "command": command}  # fmt: skip


def _checks(
    config_path: Path, output: Path, store: Path, inputs: list[str]
) -> tuple[dict[str, Any], int]:
    """The record's checks, and the newest modification time (ns) among the study file, the
    robustlens package and the inputs (one walk of each serves both)."""
    package_digest, package_newest = _tree(_PACKAGE)
    trees = {p: _tree(p) for p in inputs}
    checks = {
        "config_sha256": hashlib.sha256(config_path.read_bytes()).hexdigest(),
        "environment": environment_signature(package_digest),
        "inputs": {p: digest for p, (digest, _) in trees.items()},
        "outputs": tree_signature(output),
        "store": store.is_dir(),
    }
    newest = max(config_path.stat().st_mtime_ns, package_newest, *(n for _, n in trees.values()))
    return checks, newest


def record_run(
    config_path: Path,
    result: StudyResult,
    summary: str,
    *,
    started: float,
    report_path: Path | None = None,
    store: Path | None = None,
    executor: str | None = None,
    address: str | None = None,
    report: bool = True,
    command: str = "study",
) -> Path | None:
    """Write the run record of a finished study that began at ``started`` (``time.time()``;
    see the module doc), for the ``command`` that ran it. ``None`` when the run may not have
    one: a failure, a skipped file, a damaged array, a download cache, or a study file, input
    or robustlens file modified since the run began (its numbers may come from the old
    one)."""
    if result.failures or result.incidents or any(result.skipped.values()):
        return None
    cfg = result.config
    if cfg is None:
        return None
    inputs = _input_paths(cfg, config_path.resolve().parent)
    if inputs is None:
        return None
    output, store_dir = Path(cfg.output).resolve(), Path(cfg.store).resolve()
    try:
        checks, newest = _checks(config_path, output, store_dir, [str(p) for p in inputs])
    except OSError:  # a file vanished meanwhile: no record, the next run runs
        return None
    if newest >= int(started * 1e9) or "absent" in checks["inputs"].values():
        return None  # modified (or gone) while the study ran
    record = {
        "version": RECORD_VERSION,
        "config": str(config_path.resolve()),
        "output": str(output),
        "store": str(store_dir),
        "input_paths": [str(p) for p in inputs],
        "checks": checks,
        "summary": summary,
        "report": str(report_path) if report_path else None,
        "shape": f"{len(result.models)} models x {len(result.datasets)} datasets",
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = _record_path(config_path, _options(store, executor, address, report, command))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError:  # a read-only cache directory: every run is a full one
        return None
    return path


def replay(
    config_path: Path,
    *,
    store: Path | None = None,
    executor: str | None = None,
    address: str | None = None,
    report: bool = True,
    command: str = "study",
) -> dict[str, Any] | None:
    """The run record of this study, ``command`` and options when every check still holds,
    else ``None`` (the study must run). Reads no array and imports nothing heavy."""
    path = _record_path(config_path, _options(store, executor, address, report, command))
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return None
    try:
        now, _ = _checks(
            config_path,
            Path(record["output"]),
            Path(record["store"]),
            list(record["input_paths"]),
        )
    except (OSError, KeyError, TypeError):
        return None
    return record if now == record.get("checks") else None
