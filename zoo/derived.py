"""Files zoo derives and caches (converted upstream weights, exported ONNX graphs), verified
like downloads before every use.

Each derived file or folder carries a manifest, ``<name>.derived.json`` beside a file or
``derived.json`` inside a folder, holding what it was made from (``source``: a hash of the
inputs) and the sha256 of every file it consists of. :func:`is_intact` checks both; anything
else (no manifest, another source, a changed, missing or truncated file) means "derive it
again". A manifest is written only after the files it describes are complete.

:func:`private_dir` gives a fallback cache folder outside ``ZOO_HOME`` that only the current
user can write, or none: a folder in a shared temp directory that someone else created (or
could write into) would let them plant graphs that zoo runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DERIVED_VERSION",
    "MANIFEST",
    "cached_array",
    "code_key",
    "files_key",
    "is_intact",
    "manifest_path",
    "private_dir",
    "write_manifest",
]

MANIFEST = "derived.json"
_CHUNK = 1 << 20

#: Bumped whenever zoo changes what it derives from the same inputs (a converter's mapping, the
#: ONNX export or its int8 quantisation): caches are keyed by it, so files an older zoo derived
#: are derived again instead of being taken for this version's.
DERIVED_VERSION = 1


def code_key(*parts: str) -> str:
    """A short tag of the code that derives a file from given inputs: :data:`DERIVED_VERSION`,
    torch's version (an ONNX graph is torch's export) and ``parts`` (the opset, a runtime's
    version). Caches put it in their keys, so two versions of zoo or torch sharing a cache
    each keep their own files instead of replacing each other's."""
    import torch

    tag = "|".join((f"derived{DERIVED_VERSION}", f"torch{torch.__version__}", *parts))
    return hashlib.blake2b(tag.encode(), digest_size=4).hexdigest()


def manifest_path(target: Path) -> Path:
    """Where the manifest of ``target`` lives: inside a folder, beside a file."""
    return target / MANIFEST if target.is_dir() else target.with_name(target.name + ".derived.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _members(target: Path, files: Iterable[str] | None) -> list[Path]:
    if files is not None:
        return [target / f if target.is_dir() else target.with_name(f) for f in files]
    return [target]


def write_manifest(target: Path, source: str, files: Iterable[str] | None = None) -> Path:
    """Record that ``target`` was made from ``source`` and hash its files (all of ``files``,
    relative to the folder ``target`` or beside the file ``target``; default: ``target``)."""
    from zoo.folder import atomic_write_text

    members = _members(target, files)
    record = {"source": source, "files": {p.name: _sha256(p) for p in members}}
    manifest = manifest_path(target)
    atomic_write_text(manifest, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return manifest


def is_intact(target: Path, source: str) -> bool:
    """Whether ``target`` has a manifest naming ``source`` and every file it lists is unchanged."""
    try:
        record = json.loads(manifest_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    files = record.get("files")
    if record.get("source") != source or not isinstance(files, dict) or not files:
        return False
    base = target if target.is_dir() else target.parent
    for name, digest in files.items():
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
            return False
        try:
            if _sha256(base / name) != digest:
                return False
        except OSError:
            return False
    return True


def files_key(tag: str, files: Sequence[str | os.PathLike]) -> str:
    """A cache key for something computed from ``files``: their resolved paths, sizes and
    modification times, so an image replaced under the same name is computed again."""
    key = hashlib.blake2b(digest_size=12)
    key.update(tag.encode())
    for f in files:
        st = os.stat(f)
        key.update(f"{Path(f).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return key.hexdigest()


def cached_array(
    path: Path,
    compute: Callable[[], np.ndarray],
    *,
    shape: tuple[int, ...],
    dtype: np.dtype | type,
    enabled: bool = True,
) -> np.ndarray:
    """``compute()``, kept in the ``.npy`` file ``path`` (its name being the cache key).

    A cached array is used only when its manifest's sha256 matches and it has the ``shape``
    and ``dtype`` expected; anything else (missing, truncated, edited, another shape) is
    computed again. An unwritable cache only costs the computation.
    """
    from zoo.folder import atomic_write_bytes

    source = f"npy:{path.stem}"
    if enabled and path.is_file() and is_intact(path, source):
        try:
            array = np.load(path, allow_pickle=False)
            if array.shape == tuple(shape) and array.dtype == np.dtype(dtype):
                return array
        except (OSError, ValueError):
            pass
    array = compute()
    if enabled:
        buf = io.BytesIO()
        np.save(buf, array)
        try:
            atomic_write_bytes(path, buf.getvalue())
            write_manifest(path, source)
        except OSError:
            pass
    return array


_PRIVATE: dict[str, Path] = {}


def private_dir(name: str) -> Path:
    """A cache folder ``<tmp>/<name>-<uid>`` that only this user can use, else a fresh private one.

    The shared folder is created 0700; if it already exists it is used only when it is a real
    folder (not a link) owned by this user and closed to everyone else. Otherwise a new folder
    from :func:`tempfile.mkdtemp` (0700, unique) is used for the rest of this process.
    """
    if name in _PRIVATE:
        return _PRIVATE[name]
    if hasattr(os, "getuid"):
        uid = os.getuid()
        shared = Path(tempfile.gettempdir()) / f"{name}-{uid}"
        try:
            shared.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(shared)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o077:
                _PRIVATE[name] = shared
                return shared
        except OSError:
            pass
    _PRIVATE[name] = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    return _PRIVATE[name]
