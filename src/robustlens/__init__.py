"""robustlens: audit how image classifiers generalize beyond their test set."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
