"""The layout is the architecture: layers, independent lines, and no hidden imports.

* the import-linter contracts of ``pyproject.toml`` hold (each module imports only from the
  layers below it; research lines never import each other);
* no module imports inside a function, except optional dependencies and the command line's
  lazy imports, each saying so in a comment on the line or just above it;
* the core never names a research line: lines are found through entry points.
"""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

import robustlens
from robustlens.measure import ENTRY_POINT_GROUP, lines

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(robustlens.__file__).parent
ALLOWED_REASONS = ("optional dependency", "lazy:")


def test_import_linter_contracts_hold(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def _function_local_imports(path: Path) -> list[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    lines_ = source.splitlines()
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                here = lines_[node.lineno - 1]
                above = lines_[node.lineno - 2] if node.lineno > 1 else ""
                if not any(r in here or r in above for r in ALLOWED_REASONS):
                    found.append((node.lineno, here.strip()))
    return found


def test_no_function_local_imports_without_a_reason():
    offenders = {
        str(p.relative_to(PACKAGE)): hits
        for p in sorted(PACKAGE.rglob("*.py"))
        if (hits := _function_local_imports(p))
    }
    assert not offenders, (
        "imports inside functions need a comment saying why ('# optional dependency: ...' or "
        f"'# lazy: ...'); hoist the others: {offenders}"
    )


def test_the_detector_finds_an_unexplained_local_import(tmp_path):
    p = tmp_path / "m.py"
    p.write_text(
        "def f():\n    import json\n    # optional dependency: ray\n    import ray\n"
        "    import yaml  # lazy: keeps --help fast\n"
    )
    assert _function_local_imports(p) == [(2, "import json")]


@pytest.mark.parametrize(
    "name",
    ["accuracy", "invariance", "clustering", "biases", "spurious", "robustness", "published"],
)
def test_each_shipped_line_is_an_entry_point(name):
    eps = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert eps.get(name) == f"robustlens.lines.{name}:LINE"
    assert name in [line.name for line in lines()]


def test_the_core_never_names_a_line():
    """Outside ``lines/``, no module imports ``robustlens.lines`` (not even the CLI)."""
    offenders = []
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(PACKAGE)
        if rel.parts[0] == "lines":
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "robustlens.lines"
            ):
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Import) and any(
                a.name.startswith("robustlens.lines") for a in node.names
            ):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders
