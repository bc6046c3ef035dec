"""What an error raised by the ``huggingface_hub`` client says, for the messages of loading
(:mod:`zoo.hub`) and of publishing (:mod:`zoo.push`).

Read by duck typing and by the defining package, never by importing the client's HTTP stack:
the client changed HTTP backends across major versions, and zoo works without the client.
"""

from __future__ import annotations

__all__ = ["http_status", "is_transport_error", "status_text"]

# The HTTP stacks huggingface_hub has used (requests, httpx, httpx2) and what they build on.
_TRANSPORT_PACKAGES = frozenset({"requests", "urllib3", "httpx", "httpx2", "httpcore", "httpcore2"})


def http_status(err: BaseException) -> int | None:
    """The HTTP status code of the response behind ``err``, if it carries one."""
    return getattr(getattr(err, "response", None), "status_code", None)


def status_text(err: BaseException) -> str:
    """``HTTP 403 (first line of the message)``, or the first line alone without a status."""
    text = str(err).strip()
    first_line = text.splitlines()[0] if text else type(err).__name__
    code = http_status(err)
    return f"HTTP {code} ({first_line})" if code is not None else first_line


def is_transport_error(err: BaseException) -> bool:
    """Whether ``err`` is a connection-level failure (refused, reset, timed out) of any backend."""
    return any(cls.__module__.split(".")[0] in _TRANSPORT_PACKAGES for cls in type(err).__mro__)
