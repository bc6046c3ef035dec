"""Fetching weight files: local paths, ``file://`` and ``http(s)://`` URLs, and the Hugging Face Hub.

Downloads land in a content-addressed cache (see :func:`cache_dir`) and are made safe for
interrupted and concurrent runs:

* bytes stream into ``<name>.part`` next to the final file and are only renamed to ``<name>``
  once complete, fsynced and (when a sha256 is known) verified, so a file under its final name
  is always whole;
* an interrupted transfer keeps its ``.part`` and the next call resumes it with a ``Range``
  request guarded by ``If-Range`` (the ``ETag`` or ``Last-Modified`` of the first response,
  kept in ``<name>.part.validator``), so a file that changed on the server in between is
  downloaded again from the start rather than spliced from two versions; without a validator
  or an expected sha256 nothing is resumed;
* a body sent without ``Content-Length`` (it ends when the connection closes, so a cut-short
  transfer looks complete) is confirmed with a ``Range`` request past its end; one the server
  cannot confirm is used once but not kept as complete: the next call downloads it again;
* on POSIX, an advisory lock on ``<name>.lock`` makes a second process wait for the first one's
  download instead of fetching the same bytes again; where no lock can be taken (Windows, a
  file system that refuses ``flock``) each process downloads into a ``.part`` of its own.

Only the standard library speaks HTTP here (``urllib``), so zoo does not need ``requests``.
``huggingface_hub`` is imported lazily, and only by :func:`hf_download`.

Environment variables:

``ZOO_HOME``
    cache directory (default ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``).
``ZOO_OFFLINE``
    ``1``/``true``/``yes``/``on``: never touch the network; only cached files are returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tqdm.auto import tqdm

from zoo.errors import (
    CacheError,
    ChecksumError,
    DownloadError,
    InvalidArgumentError,
    OfflineError,
    ZooError,
)
from zoo.hf_errors import http_status, is_transport_error, status_text

try:  # POSIX only; elsewhere no lock is held and each download writes a .part of its own.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_TIMEOUT",
    "cache_dir",
    "cached_path",
    "check_hf_reference",
    "download_url",
    "hf_download",
    "is_offline",
    "is_unconfirmed",
    "normalize_sha256",
    "sha256_file",
]

#: Seconds a connect or a single socket read may block before the download is abandoned.
DEFAULT_TIMEOUT = 60.0

# 1 MiB: large enough for throughput, small enough for a smooth progress bar.
_CHUNK = 1 << 20
_TRUE = frozenset({"1", "true", "yes", "on"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
# What may follow "hf-hub:org/name@": a commit sha, a branch or a tag, or a Hub pull-request ref.
# Path separators and ".." would let a revision or file name walk out of the client's cache.
_HF_REVISION = re.compile(r"^(?:[0-9a-f]{40}|[A-Za-z0-9][A-Za-z0-9._-]{0,127}|refs/pr/[0-9]{1,9})$")
_HF_FILENAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
_HF_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_USER_AGENT = "zoo (+https://github.com/; python-urllib)"


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Root of zoo's cache: ``$ZOO_HOME``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``.

    The directory is not created here: read-only callers (offline lookups, listing) must work
    on read-only or not-yet-existing caches.
    """
    zoo_home = os.environ.get("ZOO_HOME")
    if zoo_home:
        return Path(zoo_home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "zoo"
    return Path.home() / ".cache" / "zoo"


def is_offline() -> bool:
    """Whether ``ZOO_OFFLINE`` asks zoo to stay off the network (``1``/``true``/``yes``/``on``)."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in _TRUE


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file at ``path``, read in chunks so large weights never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# download_url
# --------------------------------------------------------------------------------------------


def download_url(
    url: str,
    *,
    sha256: str | None = None,
    filename: str | None = None,
    cache: Path | None = None,
    progress: bool = True,
) -> Path:
    """Return a local path to the file at ``url``, downloading it into the cache if needed.

    Args:
        url: ``http(s)://`` URL, ``file://`` URL or plain local path. Local files are used
            where they are, never copied.
        sha256: expected hex sha256 (64 digits). When given, every file returned has been
            verified, and the cache key is derived from it, so the same content is shared
            between mirrors.
        filename: name of the cached file; defaults to the last component of the URL path.
        cache: cache root instead of :func:`cache_dir`; files go to ``<cache>/downloads/``.
        progress: show a tqdm progress bar while downloading.

    Returns:
        The local file: the path itself for local inputs, else
        ``<cache>/downloads/<key>/<filename>`` where ``key`` is the first 16 hex digits of
        ``sha256``, or of the sha256 of the URL when no hash is given.

    Raises:
        ChecksumError: the file's sha256 differs from ``sha256``.
        DownloadError: missing local file, HTTP error, refused connection, timeout, truncated
            transfer or unsupported URL scheme.
        OfflineError: ``ZOO_OFFLINE`` is set and the file is not cached.
        CacheError: the cache directory cannot be created or written.
        ValueError: ``sha256`` is not 64 hex digits, or ``filename`` is not a plain file name.
    """
    expected = normalize_sha256(sha256)
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _download_http(url, parts, expected, filename, cache, progress)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(
                f"Cannot open {url}: file:// URLs on another host ({parts.netloc}) are not "
                "supported. Mount the file locally and pass its path."
            )
        return _local_file(Path(urllib.request.url2pathname(parts.path)), expected, url)
    # No scheme is a plain path; a one-letter "scheme" is a Windows drive ("C:\\weights.pt").
    if scheme == "" or len(scheme) == 1:
        return _local_file(Path(url).expanduser(), expected, url)
    raise DownloadError(
        f"Cannot download {url}: unsupported URL scheme {parts.scheme!r}. Use an http(s):// or "
        "file:// URL, or a local path."
    )


def cached_path(
    url: str, *, sha256: str | None = None, filename: str | None = None, cache: Path | None = None
) -> Path:
    """Where :func:`download_url` keeps the file of an ``http(s)://`` ``url`` (it may not exist)."""
    return _cache_target(url, urllib.parse.urlsplit(url), normalize_sha256(sha256), filename, cache)


def normalize_sha256(sha256: str | None) -> str | None:
    """``sha256`` as 64 lower-case hex digits (None stays None).

    Raises:
        InvalidArgumentError: (a ValueError) it is not 64 hex digits.
    """
    if sha256 is None:
        return None
    value = sha256.strip().lower() if isinstance(sha256, str) else ""
    # A wrong-length hash can never match; failing now beats downloading then failing.
    if not _SHA256.match(value):
        raise InvalidArgumentError(
            f"sha256 must be 64 hex digits, got {sha256!r}; copy the full hash (e.g. from sha256sum)"
        )
    return value


def _local_file(path: Path, expected: str | None, url: str) -> Path:
    """Validate a local file in place: copying it into the cache would only waste disk."""
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DownloadError(f"Cannot use {url}: {path} {what}. Check the path.")
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"sha256 mismatch for {path}: expected {expected}, got {actual}. The file is "
                "corrupted or is not the one expected; replace it with the right file or fix "
                "the expected hash."
            )
    return path


def _cache_target(
    url: str, parts: urllib.parse.SplitResult, expected: str | None, filename: str | None, cache: Path | None
) -> Path:
    name = filename
    if name is None:
        name = urllib.parse.unquote(parts.path).rstrip("/").rsplit("/", 1)[-1]
        if name in ("", ".", ".."):
            raise DownloadError(
                f"Cannot name the cached file for {url}: the URL path has no file name. Pass filename=."
            )
    # The name becomes a path component: anything that could escape the key directory is refused.
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidArgumentError(f"filename must be a plain file name, got {name!r}")
    # Keyed by content when the hash is known (mirrors share an entry; a new hash never reuses a
    # stale file), else by URL (different URLs with the same basename never collide).
    key = expected[:16] if expected is not None else hashlib.sha256(url.encode()).hexdigest()[:16]
    root = cache if cache is not None else cache_dir()
    return Path(root).expanduser() / "downloads" / key / name


def _download_http(
    url: str,
    parts: urllib.parse.SplitResult,
    expected: str | None,
    filename: str | None,
    cache: Path | None,
    progress: bool,
) -> Path:
    final = _cache_target(url, parts, expected, filename, cache)

    # Fast path: no lock and no write, so cached files stay usable on a read-only cache.
    offline = is_offline()
    seen = _stat_key(final)
    # Offline, a corrupted file cannot be replaced: the OfflineError below says so instead.
    if seen is not None and _cached_ok(final, expected, url, warn=not offline):
        return final

    if offline:
        state = "is not in the cache"
        if seen is not None:
            state = (
                "is corrupted (sha256 mismatch)"
                if expected
                else "may be incomplete (its length was never confirmed)"
            )
        raise OfflineError(
            f"ZOO_OFFLINE is set and {url} {state}: expected the file at {final}"
            + (f" with sha256 {expected}" if expected else "")
            + ". Unset ZOO_OFFLINE to download it, or put the file at that path."
        )

    directory = final.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cache_error(directory, err, cache) from err

    part = final.with_name(final.name + ".part")
    with _file_lock(final.with_name(final.name + ".lock"), cache) as locked:
        # Another process may have finished this download while we waited for the lock.
        now = _stat_key(final)
        if now is not None and now != seen and _cached_ok(final, expected, url, warn=False):
            return final
        if locked:
            _download_verified(url, part, final, expected, progress, cache)
        else:
            _download_unlocked(url, part, final, expected, progress, cache)
    return final


def _download_unlocked(
    url: str, shared: Path, final: Path, expected: str | None, progress: bool, cache: Path | None
) -> None:
    """:func:`_download_verified` where no lock is held (no ``flock``: Windows, some network
    file systems). Two processes appending to one ``.part`` would interleave their bytes, so each
    downloads into a name of its own. A transfer that fails on the way is handed back to the
    shared ``.part`` (with its validator) and the next call takes it over to resume it: a rename
    moves it whole to one taker, never to two."""
    private = final.with_name(f"{final.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    for src, dst in ((shared, private), (_validator_file(shared), _validator_file(private))):
        with contextlib.suppress(OSError):  # absent, or another process took it first
            os.replace(src, dst)
    try:
        _download_verified(url, private, final, expected, progress, cache)
    except ChecksumError:
        raise  # the bytes were discarded: nothing to hand back
    except BaseException as err:
        if _file_size(private) > 0:
            with contextlib.suppress(OSError):
                os.replace(private, shared)
                os.replace(_validator_file(private), _validator_file(shared))
        if isinstance(err, DownloadError) and str(private) in str(err):
            # Its message names the partial file the next call resumes: the shared one now.
            raise DownloadError(str(err).replace(str(private), str(shared))) from err.__cause__
        raise
    finally:
        _discard(private)  # renamed to final on success; a leftover of a failed hand-back


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    """Identity of a file's current content, to tell whether it changed since we last hashed it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _cached_ok(final: Path, expected: str | None, url: str, *, warn: bool) -> bool:
    if not final.is_file():
        return False
    if expected is None:
        # Without a hash there is nothing to check; the rename-on-completion scheme guarantees
        # the file was complete when written, unless the server could not confirm its length.
        return not _unconfirmed_marker(final).exists()
    actual = sha256_file(final)
    if actual == expected:
        return True
    if warn:
        warnings.warn(
            f"Cached file {final} is corrupted (sha256 {actual}, expected {expected}); "
            f"downloading it again from {url}.",
            RuntimeWarning,
            stacklevel=4,
        )
    return False


def _cache_error(directory: Path, err: OSError, cache: Path | None) -> CacheError:
    fix = "Pass a writable cache=" if cache is not None else "Set ZOO_HOME to a writable directory"
    reason = err.strerror or str(err)
    return CacheError(f"Cannot write to the zoo cache directory {directory}: {reason}. {fix}.")


@contextlib.contextmanager
def _file_lock(lock_path: Path, cache: Path | None) -> Iterator[bool]:
    """Exclusive advisory lock so concurrent processes download a given file only once; yields
    whether the lock is held (not where ``flock`` is missing or refused).

    Opening the lock file doubles as the cache writability check: ``mkdir`` may succeed (or the
    directory may already exist) on a read-only mount.
    """
    try:
        handle = open(lock_path, "a+b")  # released in the finally below
    except OSError as err:
        raise _cache_error(lock_path.parent, err, cache) from err
    try:
        held = False
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                held = True
            except OSError:
                # Some network filesystems refuse flock: the caller then downloads into a
                # file of its own (see _download_unlocked).
                pass
        yield held
    finally:
        # Closing the descriptor releases the lock. The lock file is left in place: unlinking
        # it would let a waiting process lock an orphaned inode while a new one is created.
        handle.close()


def _download_verified(
    url: str, part: Path, final: Path, expected: str | None, progress: bool, cache: Path | None
) -> None:
    """Fill ``part`` (resuming it if present), verify it, then atomically rename it to ``final``."""
    resumed = _file_size(part) > 0
    complete = _fetch(url, part, final.name, progress, cache, expected)
    if expected is not None:
        actual = sha256_file(part)
        if actual != expected and resumed:
            # The kept prefix may come from another version of the file: start over once
            # before blaming the server.
            _discard(part)
            _fetch(url, part, final.name, progress, cache, expected)
            actual = sha256_file(part)
        if actual != expected:
            _discard(part)
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {expected}, got {actual}. The download was "
                "discarded. The file on the server changed or was corrupted in transit; retry, "
                "or check the URL and the expected hash."
            )
    marker = _unconfirmed_marker(final)
    try:
        if not complete and expected is None:
            # Used by this call, but never taken for a complete cached file: see _cached_ok.
            marker.touch()
            warnings.warn(
                f"{url} was sent without a length and the server cannot confirm its size (no range"
                " requests): it may be incomplete. It is used now and downloaded again next time.",
                RuntimeWarning,
                stacklevel=4,
            )
        os.replace(part, final)
        if complete or expected is not None:
            marker.unlink(missing_ok=True)
        _validator_file(part).unlink(missing_ok=True)
    except OSError as err:
        raise _cache_error(final.parent, err, cache) from err


def _unconfirmed_marker(final: Path) -> Path:
    return final.with_name(final.name + ".unconfirmed")


def is_unconfirmed(path: Path) -> bool:
    """Whether the downloaded file ``path`` came without a length the server could confirm: it may
    be cut short, so it is used once but nothing about it (a pinned hash, a conversion) is kept."""
    return _unconfirmed_marker(path).exists()


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _validator_file(part).unlink(missing_ok=True)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# A representation's validators (RFC 9110 8.8): {"etag": ..., "last_modified": ...}, or None.
Validator = dict[str, str]


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _validator_of(headers: Any) -> Validator | None:
    found = {key: headers.get(name) for key, name in (("etag", "ETag"), ("last_modified", "Last-Modified"))}
    kept = {k: v.strip() for k, v in found.items() if v and v.strip()}
    return kept or None


def _read_validator(part: Path) -> Validator | None:
    try:
        data = json.loads(_validator_file(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    kept = {k: v for k, v in data.items() if k in ("etag", "last_modified") and isinstance(v, str)}
    return kept or None


def _write_validator(part: Path, validator: Validator | None, cache: Path | None) -> None:
    path = _validator_file(part)
    try:
        if validator is None:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(validator), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise _cache_error(part.parent, err, cache) from err


def _if_range(validator: Validator | None) -> str | None:
    """The ``If-Range`` value for ``validator``: a strong ETag, else the Last-Modified date."""
    if validator is None:
        return None
    etag = validator.get("etag")
    if etag and not etag.startswith("W/"):  # weak ETags are not allowed in If-Range
        return etag
    return validator.get("last_modified")


def _same_version(kept: Validator | None, seen: Validator | None) -> bool:
    """False when a validator the server sends now differs from the one of the kept bytes."""
    if kept is None or seen is None:
        return True
    return all(kept[k] == seen[k] for k in kept.keys() & seen.keys())


def _fetch(
    url: str, part: Path, display: str, progress: bool, cache: Path | None, expected: str | None = None
) -> bool:
    """Download ``url`` into ``part``, resuming from its current size; fsync before returning.

    A transfer that ends early keeps ``part`` (and its validator) so the next call resumes it.
    Returns whether the file is known to be whole: its length was announced, or confirmed
    afterwards (see :func:`_confirm_length`).
    """
    offset = _file_size(part)
    kept = _read_validator(part) if offset else None
    if offset and kept is None and expected is None:
        # Nothing could tell the kept bytes from those of a newer version of the file, and no
        # hash will catch a splice: start over.
        offset = 0
    try:
        response = _open(url, offset, _if_range(kept))
    except _RangeNotSatisfiable as err:
        if err.total == offset and _same_version(kept, err.validator):
            return True  # the .part already holds the whole file (crash before rename)
        # The .part is longer than the file, or another version, or the server will not say.
        _discard(part)
        return _fetch(url, part, display, progress, cache, expected)
    with response:
        seen = _validator_of(response.headers)
        if offset and response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset or not _same_version(kept, seen):
                # Not the bytes we asked for, or of another version: start from zero.
                response.close()
                _discard(part)
                return _fetch(url, part, display, progress, cache, expected)
        else:
            # A fresh download, or 200 to a Range request (the server sends the whole file, e.g.
            # because If-Range saw a new version): start from zero, remembering this version.
            offset, total = 0, None
            _write_validator(part, seen, cache)
        length = _content_length(response)
        # Without a length, and not chunked, the body ends when the connection closes: a
        # transfer cut short ends the same way.
        unbounded = length is None and not getattr(response, "chunked", False)
        if total is None and length is not None:
            total = offset + length
        received = _stream(response, part, offset, total, url, display, progress, cache)
    if length is not None and received < length:
        raise DownloadError(
            f"Download of {url} was cut short: received {offset + received} of {offset + length} "
            f"bytes. The partial file {part} is kept; call again to resume the download."
        )
    if not unbounded:
        return True
    return _confirm_length(url, part, offset + received, _read_validator(part))


def _confirm_length(url: str, part: Path, size: int, kept: Validator | None) -> bool:
    """Ask for the bytes after ``size``: none (416) means the download is whole.

    Returns False when the server cannot say (it ignores ``Range`` and sends no length).
    Raises DownloadError when bytes are missing (``part`` is kept when they can be resumed).
    """
    short = f"Download of {url} was cut short after {size} bytes (the server sent no length)"
    try:
        response = _open(url, size, _if_range(kept))
    except _RangeNotSatisfiable as err:
        if err.total is None or err.total == size:
            return True
        _discard(part)
        raise DownloadError(f"{short}: the file on the server has {err.total} bytes. Call again.") from None
    with response:
        seen = _validator_of(response.headers)
        if not _same_version(kept, seen):
            _discard(part)
            raise DownloadError(
                f"{url} changed on the server while it was downloaded; the partial file was discarded."
                " Call again."
            )
        if response.status == 206:
            raise DownloadError(f"{short}. The partial file {part} is kept; call again to resume.")
        length = _content_length(response)
    if length is None:
        return False
    if length == size:
        return True
    _discard(part)
    raise DownloadError(f"{short}: the file on the server has {length} bytes. Call again.")


class _RangeNotSatisfiable(Exception):
    """HTTP 416 to a resume request; ``total`` is the file size from ``Content-Range``, if sent."""

    def __init__(self, total: int | None, validator: Validator | None = None) -> None:
        super().__init__(total)
        self.total = total
        self.validator = validator


def _open(url: str, offset: int, if_range: str | None = None) -> http.client.HTTPResponse:
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if if_range:
            headers["If-Range"] = if_range
    request = urllib.request.Request(url, headers=headers)
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=DEFAULT_TIMEOUT)
        return response
    except urllib.error.HTTPError as err:
        with err:
            if err.code == 416 and offset:
                total = _parse_content_range(err.headers.get("Content-Range"))[1]
                raise _RangeNotSatisfiable(total, _validator_of(err.headers)) from err
            hint = {
                401: " Access denied: the file needs authentication.",
                403: " Access denied: check the URL or your access rights.",
                404: " Check the URL.",
            }.get(err.code, "")
            if 300 <= err.code < 400:  # urllib's reason spans lines and names no fix
                raise DownloadError(
                    f"Cannot download {url}: HTTP {err.code}, the server redirects in a loop (or more"
                    " than 10 times). Check the URL."
                ) from err
            raise DownloadError(f"Cannot download {url}: HTTP {err.code} {err.reason}.{hint}") from err
    except urllib.error.URLError as err:
        raise DownloadError(
            f"Cannot download {url}: {_reason(err.reason)}. Check the URL and your network "
            "connection (or set ZOO_OFFLINE=1 to use cached files only)."
        ) from err
    except (OSError, http.client.HTTPException, ValueError) as err:  # timeouts, resets, bad status lines
        raise DownloadError(f"Cannot download {url}: {_reason(err)}. Check your network connection.") from err


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    offset: int,
    total: int | None,
    url: str,
    display: str,
    progress: bool,
    cache: Path | None,
) -> int:
    """Copy the response body into ``part`` (appending after ``offset`` bytes); return bytes received."""
    received = 0
    try:
        f: BinaryIO = open(part, "ab" if offset else "wb")  # closed by the `with` below
    except OSError as err:
        raise _cache_error(part.parent, err, cache) from err
    bar: Any = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=display,
        disable=not progress,
        leave=False,
    )
    with f, bar:
        while True:
            try:
                block = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                with contextlib.suppress(OSError):  # keep what arrived, for the next resume
                    _flush(f)
                raise DownloadError(
                    f"Download of {url} was interrupted after {offset + received} bytes: "
                    f"{_reason(err)}. The partial file {part} is kept; call again to resume."
                ) from err
            if not block:
                break
            try:
                f.write(block)
            except OSError as err:
                raise _cache_error(part.parent, err, cache) from err
            received += len(block)
            bar.update(len(block))
        try:
            _flush(f)
        except OSError as err:
            raise _cache_error(part.parent, err, cache) from err
    return received


def _flush(f: BinaryIO) -> None:
    # fsync before the rename, or a crash could leave a renamed-but-empty file behind.
    f.flush()
    os.fsync(f.fileno())


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` (or ``bytes */TOTAL``) -> (START, TOTAL), None where unknown."""
    if not value:
        return None, None
    value = value.strip()
    match = _CONTENT_RANGE.match(value)
    if match is not None:
        total = match.group(3)
        return int(match.group(1)), (int(total) if total != "*" else None)
    unsatisfied = re.match(r"^bytes\s+\*/(\d+)$", value)
    return None, (int(unsatisfied.group(1)) if unsatisfied else None)


def _reason(err: object) -> str:
    if isinstance(err, (socket.timeout, TimeoutError)):
        return f"timed out after {DEFAULT_TIMEOUT:g} s"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


# --------------------------------------------------------------------------------------------
# Hugging Face Hub
# --------------------------------------------------------------------------------------------


def hf_download(repo_id: str, filename: str, *, revision: str | None = None) -> Path:
    """Fetch ``filename`` from the Hugging Face Hub repo ``repo_id`` through ``huggingface_hub``.

    The real client does the work, so its cache layout and environment variables apply
    (``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_TOKEN``...).
    With ``ZOO_OFFLINE`` set, only the local Hugging Face cache is consulted.

    Raises:
        OfflineError: offline (``ZOO_OFFLINE`` or ``HF_HUB_OFFLINE``) and the file is not cached.
        DownloadError: ``huggingface_hub`` is not installed, the repo, revision or file does not
            exist (or is private/gated), or the network failed; or the repo id, revision or file
            name is malformed (checked before anything reaches the client).
        CacheError: the Hugging Face cache cannot be written.
    """
    check_hf_reference(repo_id, filename, revision)
    try:
        import huggingface_hub
        from huggingface_hub import constants as hf_constants
        from huggingface_hub import errors as hf_errors
    except ImportError as err:
        raise DownloadError(
            f"Downloading hf-hub:{repo_id} needs the huggingface_hub package: pip install huggingface_hub"
        ) from err

    where = f"{filename!r} from hf-hub:{repo_id}" + (f" (revision {revision})" if revision else "")
    offline = is_offline()
    try:
        path = huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, local_files_only=offline)
    except Exception as err:
        mapped = _hf_error(err, where, repo_id, filename, revision, offline, hf_constants, hf_errors)
        if mapped is None:  # not a failure the user can fix (a bug): let it through untouched
            raise
        raise mapped from err
    return Path(path)


def check_hf_reference(repo_id: str, filename: str, revision: str | None = None) -> None:
    """Refuse a malformed Hub repo id, file name or revision before any client sees it.

    A revision is a commit sha (40 hex digits), a branch or tag name (letters, digits, ``.``,
    ``_``, ``-``) or a pull-request ref ``refs/pr/N``; a file name is a plain name. Neither may
    hold a path separator or ``..``: both end up in cache paths and URLs.

    Raises:
        DownloadError: naming the part that is malformed and what is allowed.
    """
    where = f"hf-hub:{repo_id}" + (f"@{revision}" if revision is not None else "")
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(_HF_REPO_PART.match(p) and ".." not in p for p in parts):
        raise DownloadError(
            f"Cannot download from {where}: {repo_id!r} is not a Hub repo id; expected 'org/name'"
            " (letters, digits, '.', '_', '-')."
        )
    if revision is not None and (
        not isinstance(revision, str) or not _HF_REVISION.match(revision) or ".." in revision
    ):
        raise DownloadError(
            f"Cannot download from {where}: revision {revision!r} is not a commit sha (40 hex digits),"
            " a branch or tag name (letters, digits, '.', '_', '-'; no '/' or '..') or refs/pr/N."
        )
    if not isinstance(filename, str) or not _HF_FILENAME.match(filename) or ".." in filename:
        raise DownloadError(
            f"Cannot download {filename!r} from {where}: not a plain file name (letters, digits, '.',"
            " '_', '-'; no '/' or '..')."
        )


def _hf_error(
    err: Exception,
    where: str,
    repo_id: str,
    filename: str,
    revision: str | None,
    offline: bool,
    hf_constants: Any,
    hf_errors: Any,
) -> ZooError | None:
    """Translate what ``hf_hub_download`` raises into a zoo error, or None to re-raise as is.

    The order matters: the client's classes nest (``GatedRepoError`` is a
    ``RepositoryNotFoundError``; before 1.0, ``LocalEntryNotFoundError`` was an HTTP
    ``EntryNotFoundError``), and class names moved between major versions, hence ``getattr``.
    """
    never = ()  # isinstance(x, ()) is False: stands in for a class this version lacks
    local_miss = getattr(hf_errors, "LocalEntryNotFoundError", never)
    remote_miss = getattr(
        hf_errors, "RemoteEntryNotFoundError", getattr(hf_errors, "EntryNotFoundError", never)
    )
    http_error = getattr(hf_errors, "HfHubHTTPError", never)
    login = "log in (hf auth login, or set HF_TOKEN)"

    if isinstance(err, getattr(hf_errors, "HFValidationError", never)):
        return DownloadError(f"Cannot download {where}: {err}. Check the repo id and the file name.")
    if isinstance(err, local_miss):
        # The client's "could not reach the Hub and nothing is cached": offline, or a failed
        # metadata request whose error is chained as the cause.
        return _hf_local_miss(err, where, repo_id, filename, offline, hf_constants, hf_errors)
    if isinstance(err, getattr(hf_errors, "GatedRepoError", never)):
        return DownloadError(
            f"Cannot download {where}: the repository is gated. Accept its terms on the Hub and {login}."
        )
    if isinstance(err, getattr(hf_errors, "RepositoryNotFoundError", never)):
        return DownloadError(
            f"Cannot download {where}: repository {repo_id} not found (or private). Check the repo id; "
            f"for a private repo, {login}."
        )
    if isinstance(err, getattr(hf_errors, "RevisionNotFoundError", never)):
        return DownloadError(
            f"Cannot download {where}: revision {revision!r} not found in {repo_id}. Check the revision."
        )
    if isinstance(err, remote_miss):
        return DownloadError(
            f"Cannot download {where}: file {filename!r} not found in {repo_id}. Check the file name."
        )
    if isinstance(err, http_error):
        return DownloadError(f"Cannot download {where}: {status_text(err)}.")
    if is_transport_error(err):
        return DownloadError(
            f"Cannot download {where}: {type(err).__name__}: {err}. Check your network connection "
            "and HF_ENDPOINT."
        )
    if isinstance(err, OSError) and (isinstance(err, PermissionError) or err.filename is not None):
        return CacheError(
            f"Cannot write to the Hugging Face cache {hf_constants.HF_HUB_CACHE}: {err}. Set HF_HOME "
            "(or HF_HUB_CACHE) to a writable directory."
        )
    if isinstance(err, OSError):
        # e.g. the client's size consistency check after a dropped transfer.
        return DownloadError(f"Cannot download {where}: {err}. Retry; the partial file was discarded.")
    return None


def _hf_local_miss(
    err: Exception,
    where: str,
    repo_id: str,
    filename: str,
    offline: bool,
    hf_constants: Any,
    hf_errors: Any,
) -> ZooError:
    cause = err.__cause__
    http_error = getattr(hf_errors, "HfHubHTTPError", ())
    hf_offline = bool(hf_constants.HF_HUB_OFFLINE) or isinstance(
        cause, getattr(hf_errors, "OfflineModeIsEnabled", ())
    )
    if offline or hf_offline:
        switch = "ZOO_OFFLINE" if offline else "HF_HUB_OFFLINE"
        return OfflineError(
            f"{switch} is set and {where} is not in the Hugging Face cache ({hf_constants.HF_HUB_CACHE}). "
            f"Unset {switch} to download it, or fill the cache beforehand while online "
            f"(e.g. hf download {repo_id} {filename})."
        )
    # Without the Hub's X-Error-Code header (e.g. some mirrors), a missing file is a bare 404
    # that the client only reports as the cause of this cache miss.
    if isinstance(cause, http_error) and http_status(cause) == 404:
        return DownloadError(
            f"Cannot download {where}: not found (HTTP 404). Check the repo id and the file name."
        )
    detail = status_text(cause) if isinstance(cause, http_error) else str(cause or err)
    return DownloadError(
        f"Cannot download {where} and it is not cached: {detail}. Check your network connection "
        "and HF_ENDPOINT."
    )
