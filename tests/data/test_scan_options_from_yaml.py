"""A study file's folder-scan options reach the dataset: symlinks and the pixel limit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from robustlens.config import parse_config
from robustlens.data.imagefolder import DecompressionBombRefused
from robustlens.plan import resolve_datasets
from robustlens.store import Store


def _folder(root):
    for cls, side in (("a", 8), ("b", 32)):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(root / cls / "x.png")
    outside = root.parent / "elsewhere"
    outside.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(outside / "y.png")
    (root / "a" / "more").symlink_to(outside, target_is_directory=True)
    return root


def _dataset(tmp_path, **entry):
    cfg = parse_config(
        {"datasets": [{"layout": "imagefolder", "root": str(tmp_path / "f"), **entry}]}
    )
    [spec] = resolve_datasets(cfg, Store(tmp_path / "store"))
    return spec.dataset()


def test_symlinked_folders_only_when_asked_and_the_pixel_limit(tmp_path):
    _folder(tmp_path / "f")
    assert len(_dataset(tmp_path)) == 2  # a/x.png, b/x.png; a/more is not followed
    assert len(_dataset(tmp_path, follow_symlinks=True)) == 3  # a/more/y.png too
    # b/x.png has 32 x 32 = 1024 pixels: above a limit of 100, refused undecoded
    limited = _dataset(tmp_path, max_pixels=100)
    by_class = {limited.classes[int(y)]: i for i, y in enumerate(limited.labels())}
    limited.load(by_class["a"])  # 8 x 8 = 64 pixels: decoded
    with pytest.raises(DecompressionBombRefused, match="max_pixels"):
        limited.load(by_class["b"])
