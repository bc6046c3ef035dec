"""The Gradio demo (installed as ``zoo.app``): kNN retrieval, clustering and model comparison
on uploaded images, over a persistent gallery index (:mod:`zoo.index`).

    zoo serve [--model NAME] [--gallery DIR_OR_INDEX] [--host 127.0.0.1] [--port 7860]

Modules: :mod:`~zoo.app.config` (settings and limits), :mod:`~zoo.app.gallery` (the gallery
and its index per model), :mod:`~zoo.app.models` (loaded encoders), :mod:`~zoo.app.uploads`
(decoding uploads, readable errors), :mod:`~zoo.app.errors` (what a visitor sees of a failure,
what the log records), :mod:`~zoo.app.labels` (class names shown for gallery folders),
:mod:`~zoo.app.retrieve` and :mod:`~zoo.app.cluster`
(the tabs' logic), :mod:`~zoo.app.thumbs`, :mod:`~zoo.app.ui` (the page and its API
endpoints), :mod:`~zoo.app.server` (:func:`launch`). Needs ``pip install 'zoo-ssl[app]'``.
"""

from zoo.app.config import AppConfig
from zoo.app.server import launch
from zoo.app.ui import create_app

__all__ = ["AppConfig", "create_app", "launch"]
