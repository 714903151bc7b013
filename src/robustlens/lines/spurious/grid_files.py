"""Where the neural-PCA image grids live: written by :mod:`robustlens.lines.spurious.grids`
(``robustlens spurious``), read back by the report section.

``output_dir/spurious/*.png``, one per (model, spurious dataset, class), and the index
``grids.json`` (file, model, dataset, class_index, class_name, ap, flagged, components,
missing_datasets) the section writes its captions from.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GRID_DIR", "INDEX_FILE", "grid_folder"]

GRID_DIR = "spurious"
INDEX_FILE = "grids.json"


def grid_folder(output_dir: str | Path) -> Path:
    """The folder of the grids under a study's output directory.

    Example:
        >>> grid_folder("out").as_posix()
        'out/spurious'
    """
    return Path(output_dir) / GRID_DIR
