"""Running the demo: ``zoo serve`` and tests call :func:`launch`."""

from __future__ import annotations

import logging
import os

# Gradio reports usage and checks for new versions over the network unless told not to;
# the demo must work, and stay, offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from zoo.app.config import AppConfig
from zoo.app.ui import create_app


def launch(config: AppConfig, *, block: bool = True, quiet: bool = False) -> tuple[gr.Blocks, str]:
    """Start the server on ``config.host:config.port`` with the queue and upload limits.

    With ``block=False`` it returns at once, serving from a background thread: call
    ``demo.close()`` to stop it. Returns the app and its local URL.
    """
    _log_to_stderr()
    demo = create_app(config)
    # Bounded queue: at most queue_size requests wait; beyond that Gradio answers "queue is
    # full" at once instead of letting waits grow without limit.
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency)
    _, url, _ = demo.launch(
        server_name=config.host,
        server_port=config.port,
        max_file_size=config.max_file_size,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=False,
    )
    return demo, url


def _log_to_stderr() -> None:
    """The server's log: one line per failed request (zoo.app.errors), on stderr, unless the
    embedding program configured the ``zoo.app`` logger itself."""
    log = logging.getLogger("zoo.app")
    if log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
