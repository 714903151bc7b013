"""Arrays computed by an earlier version of a view are never served for the new one."""

from __future__ import annotations

import shutil
from pathlib import Path

import robustlens
from robustlens.store import ENGINE_VERSION, ArrayKey, pixel_code_version

PACKAGE = Path(robustlens.__file__).resolve().parent


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "robustlens"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_array_keys_carry_the_pixel_and_view_code_version():
    assert ArrayKey("m", "d", "highpass:0.1").engine_version == ENGINE_VERSION
    assert ENGINE_VERSION.endswith(pixel_code_version())


def test_editing_a_view_or_transform_changes_the_version(tmp_path):
    root = _copy(tmp_path)
    before = pixel_code_version(root)
    assert before == pixel_code_version()
    for rel in ("transforms/frequency.py", "views/registry.py", "engine.py"):
        f = root / rel
        original = f.read_bytes()
        f.write_bytes(original + b"\n# a changed filter\n")
        assert pixel_code_version(root) != before, rel
        f.write_bytes(original)
    assert pixel_code_version(root) == before


def test_code_that_does_not_make_pixels_leaves_the_version_alone(tmp_path):
    root = _copy(tmp_path)
    before = pixel_code_version(root)
    (root / "report" / "page.py").write_text("# the report does not touch stored arrays\n")
    assert pixel_code_version(root) == before
