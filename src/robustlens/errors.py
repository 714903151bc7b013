"""Exceptions raised by robustlens.

Every error names what was expected, what arrived, and, where there is one, the fix.
"""

from __future__ import annotations


class RobustlensError(Exception):
    """Base class of every error robustlens raises on purpose."""


class ValidationError(RobustlensError, ValueError):
    """An input array or argument does not have the expected shape, type or range."""


class ConfigError(RobustlensError, ValueError):
    """A study or CLI configuration is invalid (unknown key, wrong type, missing file)."""


class DatasetLayoutError(RobustlensError, FileNotFoundError):
    """A dataset directory does not have the expected on-disk layout."""


class ClassMismatchError(RobustlensError, ValueError):
    """A model and a dataset do not share a class space and no mapping was given."""


class CheckpointError(RobustlensError, ValueError):
    """A checkpoint cannot be loaded into the requested architecture."""


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint needs arbitrary unpickling and the caller did not trust it."""


class StoreError(RobustlensError, OSError):
    """The result store cannot be read or written (read-only, disk full, corrupt)."""


class FitError(RobustlensError, RuntimeError):
    """A curve fit failed or produced parameters outside their valid range."""
