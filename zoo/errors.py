"""Errors raised by zoo.

Every zoo failure a user can cause is a :class:`ZooError`, and every message says what went
wrong *and* how to fix it, so callers can catch one type and show the message as it is.
"""

from __future__ import annotations


class ZooError(Exception):
    """Base class of every error zoo raises on purpose."""


class UnknownModelError(ZooError, ValueError):
    """A model name that is neither registered nor a path, URL or ``hf-hub:`` id."""


class ChecksumError(ZooError):
    """A file's sha256 differs from the one the registry (or the caller) expects."""


class DownloadError(ZooError):
    """A remote file could not be fetched (HTTP error, connection refused, bad URL)."""


class OfflineError(ZooError):
    """``ZOO_OFFLINE=1`` is set and the file is not in the cache."""


class CacheError(ZooError):
    """The cache directory cannot be created or written."""


class WeightsError(ZooError):
    """A weights file is corrupted, truncated or not in a format zoo can read."""


class StateDictMismatchError(WeightsError):
    """Weights that do not fit the architecture: missing, unexpected or mis-shaped keys."""


class ConversionError(WeightsError):
    """An upstream checkpoint that a converter cannot map completely."""


class ImageError(ZooError, ValueError):
    """An input that is not a readable image."""


class ExportError(ZooError):
    """An export whose result does not match the PyTorch model (or cannot be written)."""


class InvalidArgumentError(ZooError, ValueError):
    """An argument zoo cannot use: a malformed sha256, an unsafe file name."""


class OutputError(ZooError, OSError):
    """An output that cannot be written: its folder is missing, the disk is full, the name is
    too long for the file system, permission is denied. Raised before the work where possible."""
