"""A real HTTP server on 127.0.0.1 for tests that must not mock the network.

:func:`serve` starts a :class:`http.server.ThreadingHTTPServer` on a free port in a daemon thread
and serves an in-memory ``{path: bytes}`` mapping. It understands what download code needs to be
tested against: ``Range`` requests (206 / 416), a "truncate after N bytes" mode that announces the
full ``Content-Length`` and then drops the connection, canned responses (404 with Hub error
headers, redirects, 500...), extra per-path headers, and it counts the requests it receives.
Optionally it leaves out ``Content-Length`` (a body that ends when the connection closes) and
sends validators (``ETag``, ``Last-Modified``) that it checks against ``If-Range``.

The server's attributes may be changed while it runs (e.g. switch truncation off between two
calls); every request reads them afresh.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

__all__ = ["FileServer", "RequestRecord", "free_port", "hub_headers", "serve"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FileServer:
    """State and behaviour of a running test server (see :func:`serve`).

    Attributes:
        files: ``{path: body}`` served with 200 (or 206 for a satisfiable ``Range``).
        headers: extra response headers per path (e.g. the Hub's ``X-Repo-Commit``).
        responses: canned ``{path: (status, headers)}`` answers with an empty body; they win over
            ``files`` (use them for redirects, Hub-style 404s, 500s...).
        truncate_after: when set, bodies are cut after that many bytes, while ``Content-Length``
            still announces the full size, and the connection is closed: a dropped transfer.
        honor_range: when false, ``Range`` is ignored and the full body is sent with 200, like
            some proxies and CDNs do.
        delay: seconds to wait before answering (slow servers, timeouts, lock contention).
        send_length: when false, bodies carry no ``Content-Length``: they end when the server
            closes the connection, so a truncated one looks complete to a naive client.
        validators: ``"etag"`` (a strong ``ETag`` of the current body), ``"last-modified"`` (a
            ``Last-Modified`` date that changes with the body), ``"both"`` or None. A request's
            ``If-Range`` that does not match the current body's validator gets the whole body
            with 200, as RFC 9110 says.
        honor_if_range: when false, ``If-Range`` is ignored (a server that would splice two
            versions of a file); validators are still sent.
        requests: number of requests per path (all methods).
        log: every request in arrival order.
    """

    files: dict[str, bytes]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    responses: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    truncate_after: int | None = None
    honor_range: bool = True
    delay: float = 0.0
    send_length: bool = True
    validators: str | None = None
    honor_if_range: bool = True
    requests: Counter[str] = field(default_factory=Counter)
    log: list[RequestRecord] = field(default_factory=list)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def count(self, path: str, method: str | None = None) -> int:
        """Requests received for ``path``, optionally only those with ``method``."""
        with self._lock:
            if method is None:
                return self.requests[path]
            return sum(1 for r in self.log if r.path == path and r.method == method)

    def records(self, path: str | None = None) -> list[RequestRecord]:
        """A copy of the request log, optionally only for ``path``."""
        with self._lock:
            return [r for r in self.log if path is None or r.path == path]

    def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._httpd, self._thread = serve_in_thread(_Handler, self)
        self.port = self._httpd.server_address[1]

    def stop(self) -> None:
        """Stop serving and free the port: later connections are refused. Idempotent."""
        stop_serving(self._httpd, self._thread)
        self._httpd = None
        self._thread = None

    def _record(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        with self._lock:
            self.requests[path] += 1
            self.log.append(RequestRecord(method, path, dict(headers)))


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up early (timeouts, aborted downloads) are expected here, not errors."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so stopping the server never waits on a keep-alive.
    protocol_version = "HTTP/1.0"
    state: FileServer  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest output clean."""

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, *, send_body: bool) -> None:
        state = self.state
        path = self.path.split("?", 1)[0]
        state._record(self.command, path, self.headers)
        if state.delay:
            time.sleep(state.delay)

        if path in state.responses:
            status, headers = state.responses[path]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return

        body = state.files.get(path)
        if body is None:
            self.send_error(404, "Not Found")
            return

        status, start, end = 200, 0, len(body)
        range_header = self.headers.get("Range")
        validators = _validators(body, state.validators)
        if_range = self.headers.get("If-Range")
        if range_header and if_range is not None and state.honor_if_range:
            # RFC 9110 13.1.5: a range only applies to the representation the client already has.
            if if_range not in (validators.get("ETag"), validators.get("Last-Modified")):
                range_header = None
        if range_header and state.honor_range:
            match = _RANGE.match(range_header.strip())
            if match is None or not any(match.groups()):
                self._unsatisfiable(len(body))
                return
            first, last = match.groups()
            if first:
                start = int(first)
                end = min(int(last) + 1, len(body)) if last else len(body)
            else:  # suffix range "bytes=-N": the last N bytes
                start = max(len(body) - int(last), 0)
            if start >= len(body) or start >= end:
                self._unsatisfiable(len(body))
                return
            status = 206

        chunk = body[start:end]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if state.send_length:
            self.send_header("Content-Length", str(len(chunk)))
        for name, value in validators.items():
            self.send_header(name, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
        for name, value in state.headers.get(path, {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not send_body:
            return
        if state.truncate_after is not None:
            # Announce everything, send less, hang up: what a dropped connection looks like.
            self.wfile.write(chunk[: state.truncate_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)
        if not state.send_length:
            self.close_connection = True

    def _unsatisfiable(self, size: int) -> None:
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _validators(body: bytes, kind: str | None) -> dict[str, str]:
    """The ``ETag`` / ``Last-Modified`` headers of ``body``; both change whenever it changes."""
    digest = hashlib.sha256(body).hexdigest()
    out = {}
    if kind in ("etag", "both"):
        out["ETag"] = f'"{digest[:16]}"'
    if kind in ("last-modified", "both"):
        # A date derived from the content: deterministic, and different for another body.
        out["Last-Modified"] = email.utils.formatdate(1_000_000_000 + int(digest[:7], 16), usegmt=True)
    return out


@contextmanager
def serve(
    files: Mapping[str, bytes] | None = None,
    *,
    headers: Mapping[str, Mapping[str, str]] | None = None,
    responses: Mapping[str, tuple[int, Mapping[str, str]]] | None = None,
    truncate_after: int | None = None,
    honor_range: bool = True,
    delay: float = 0.0,
    send_length: bool = True,
    validators: str | None = None,
) -> Iterator[FileServer]:
    """Serve ``files`` on ``http://127.0.0.1:<free port>`` for the duration of the block.

    Unknown paths answer 404. The server is stopped on exit (already stopping it inside the
    block, to simulate an outage, is fine).
    """
    server = FileServer(
        files=dict(files or {}),
        headers={k: dict(v) for k, v in (headers or {}).items()},
        responses={k: (s, dict(h)) for k, (s, h) in (responses or {}).items()},
        truncate_after=truncate_after,
        honor_range=honor_range,
        delay=delay,
        send_length=send_length,
        validators=validators,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hub_headers(body: bytes, *, commit: str) -> dict[str, str]:
    """Headers the Hugging Face Hub sends on ``HEAD/GET /{repo}/resolve/{rev}/{file}``.

    ``huggingface_hub`` requires ``X-Repo-Commit`` (the resolved commit, used as the snapshot
    folder name) and an ``ETag`` (used as the blob name); the size comes from ``Content-Length``.
    """
    return {
        "X-Repo-Commit": commit,
        "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
    }


def point_hf_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, hf_home: Path) -> None:
    """Make HF_ENDPOINT / HF_HOME take effect in this process.

    huggingface_hub reads them once, into ``huggingface_hub.constants``, when it is first
    imported; setting the variables later changes nothing, so the derived constants are patched
    as well (the subprocess test below checks the plain environment-variable route).
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def serve_in_thread(handler: type, state: object) -> tuple[_QuietServer, threading.Thread]:
    """Serve ``handler`` (bound to ``state`` as its ``state`` attribute) on a free port of
    127.0.0.1 in a daemon thread; the test servers of this folder all start this way."""
    bound = type(f"_Bound{handler.__name__}", (handler,), {"state": state})
    httpd = _QuietServer(("127.0.0.1", 0), bound)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return httpd, thread


def stop_serving(httpd: _QuietServer | None, thread: threading.Thread | None) -> None:
    """Stop a server of :func:`serve_in_thread` and free its port (nothing to do if None)."""
    if httpd is None:
        return
    httpd.shutdown()
    httpd.server_close()
    if thread is not None:
        thread.join(timeout=5)


def in_threads(fn: Callable[[], Path], n: int) -> tuple[list[Path], list[BaseException]]:
    """Run ``fn`` in ``n`` threads at once: (its results, the exceptions it raised), for tests of
    concurrent downloads into one cache."""
    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(fn())
        except BaseException as err:  # surfaced by the caller's assertion
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors
