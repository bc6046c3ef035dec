"""Errors as a visitor sees them and as the server's log records them.

Two kinds of failure reach an event:

* the visitor's (no image, a bad file, k out of range, an unknown model): raised with
  :func:`user_error`; the page shows the message, the log gets one line, no traceback;
* the server's (a model's weights cannot be downloaded, a gallery image went missing, a bug):
  the log gets the full message (paths and what the operator should do; a traceback only for
  an unexpected exception, which is a bug), the page only says what failed, with no server
  path and no advice meant for the operator.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

import zoo
from zoo.index import IndexMismatchError

log = logging.getLogger("zoo.app")

# What a visitor is told when the server fails, by the zoo error's type (first match).
_SERVER_FAILURES: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...] = (
    ((zoo.DownloadError, zoo.OfflineError), "the model's weights are not here and could not be downloaded"),
    ((zoo.ChecksumError, zoo.WeightsError), "the model's weights could not be loaded"),
    (IndexMismatchError, "the gallery's index does not belong to this model"),
    (zoo.ImageError, "an image of the gallery could not be read"),
    (zoo.CacheError, "the server's cache is not writable"),
)


def user_error(message: str) -> gr.Error:
    """An error the visitor caused and can fix: shown as is, logged as one line."""
    return gr.Error(message, print_exception=False)


def visitor_message(error: zoo.ZooError) -> str:
    """What the page says about a server-side zoo error: what failed, without its details."""
    what = next((text for kinds, text in _SERVER_FAILURES if isinstance(error, kinds)), None)
    what = what or "the request failed on the server"
    return f"Sorry, this did not work: {what}. Try another model, or try again later."


def handler(fn: Callable[..., Any], endpoint: str = "event") -> Callable[..., Any]:
    """Wrap ``fn`` for the event ``endpoint``, sorting its failures as the module docstring says.

    When ``fn`` takes a ``progress`` argument it gets Gradio's progress bar, shown in the page
    (:meth:`ModelPool.index` reports a gallery index being built on a model's first use).
    """
    takes_progress = "progress" in inspect.signature(fn).parameters

    # Not functools.wraps: Gradio reads the signature, and must see `progress` here.
    def event(*args: Any, progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008
        try:
            return fn(*args, progress=progress) if takes_progress else fn(*args)
        except gr.Error as e:
            log.info("%s: visitor error: %s", endpoint, _one_line(e.message))
            raise user_error(e.message) from None
        except zoo.ZooError as e:
            log.error("%s: failed: %s: %s", endpoint, type(e).__name__, _one_line(str(e)))
            raise user_error(visitor_message(e)) from None
        except Exception:
            log.exception("%s: unexpected error", endpoint)
            raise user_error(
                "Sorry, something went wrong on the server; it has been logged. Try again later."
            ) from None

    return event


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
