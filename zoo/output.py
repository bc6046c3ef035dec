"""Where zoo writes results: checks made before the work, and OS errors made readable.

A command that embeds ten thousand images must not fail at the very end because the output
folder is missing or the file name is too long, so :func:`check_output_file` and
:func:`check_output_folder` run first; a failure that only the write itself can reveal (a
full disk) becomes an :class:`OutputError` through :func:`output_error`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from zoo.errors import OutputError

__all__ = ["check_output_file", "check_output_folder", "output_error"]

# What each errno means for a person writing a file, and what to do about it.
_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded; free some space or write somewhere else",
    errno.ENAMETOOLONG: "the name is too long for the file system; choose a shorter one",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "permission denied; choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.ENOENT: "the folder does not exist; create it first",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder; give a file name",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "input/output error (a failing disk or a lost network mount)",
}


def output_error(err: OSError, path: str | os.PathLike) -> OutputError:
    """``err`` (raised while writing ``path``) as one clear :class:`OutputError`."""
    advice = _ADVICE.get(err.errno or -1, err.strerror or str(err))
    out = OutputError(f"cannot write {path}: {advice}")
    out.errno = err.errno
    return out


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or the folder is gone
        return 255


def _check_folder(folder: Path, target: Path) -> None:
    if not folder.exists():
        raise OutputError(f"cannot write {target}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {target}: no permission to write in {folder}")


def _check_name(folder: Path, target: Path) -> None:
    limit = _name_max(folder)
    size = len(os.fsencode(target.name))
    if size > limit:
        raise OutputError(
            f"cannot write {target}: the name is too long for the file system ({size} bytes, at most"
            f" {limit}); choose a shorter one"
        )


def check_output_file(path: str | os.PathLike) -> Path:
    """Check, before any work, that the file ``path`` can be written; returns it as a Path.

    Its folder must exist and be writable, the name must fit the file system, and ``path``
    must not be a folder. (Whether the disk has room only the write can tell.)

    Raises:
        OutputError: saying what is wrong and what to do.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    _check_folder(folder, target)
    _check_name(folder, target)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder; give a file name")
    return target


def check_output_folder(path: str | os.PathLike) -> Path:
    """Check, before any work, that files can be written into the folder ``path``.

    An existing folder must be writable; a new one is created later, so its parent must exist
    and be writable, and its name must fit the file system.

    Raises:
        OutputError: saying what is wrong and what to do.
    """
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"cannot write into {target}: it is a file, not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write into {target}: permission denied; choose another folder")
        return target
    parent = target.parent if str(target.parent) else Path(".")
    _check_folder(parent, target)
    _check_name(parent, target)
    return target
