"""A fine-tuned classifier's prediction in the Retrieve tab, next to the kNN vote.

A server started with ``zoo serve --model OUT`` on a folder written by ``zoo finetune``
retrieves with the folder's fine-tuned encoder (its ``model.safetensors`` is a zoo folder's)
and, because the folder also holds a trained head and class names, can say what the head
predicts for each query. Folders without a head (and registered encoders) have no such
prediction: :func:`classify` returns ``None`` and the tab shows the kNN vote alone.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.app.labels import class_names
from zoo.app.uploads import Upload

from zoo.classifier import is_classifier_folder

#: Class probabilities shown per query.
TOP_K = 3

_lock = threading.Lock()
_predictors: dict[tuple[str, str], Any] = {}


def _backend(server_backend: str) -> str:
    """The predictor backend matching the server's embedding backend (no int8 head)."""
    if server_backend.startswith("onnx"):
        return "onnx"
    if server_backend.startswith("torch"):
        return "torch"
    return "auto"


def predictor(model: str, server_backend: str = "auto") -> Any | None:
    """The :class:`zoo.predict.Predictor` of ``model`` when it is a fine-tuned folder, else
    ``None``; loaded once per server and kept. ``model`` must already be one the server
    offers (the caller checks it), so no request makes the server read another path."""
    path = Path(model).expanduser()
    if not is_classifier_folder(path):
        return None
    key = (str(path.resolve()), _backend(server_backend))
    with _lock:
        if key not in _predictors:
            from zoo.predict import Predictor

            _predictors[key] = Predictor(path, backend=key[1])
        return _predictors[key]


def classify(
    model: str,
    uploads: list[Upload],
    server_backend: str = "auto",
    gallery_names: Mapping[str, str] | None = None,
) -> list[list[dict]] | None:
    """Each upload's top classes ``[{"label", "name", "probability"}, ...]`` by the folder's
    head, or ``None`` when ``model`` has no classifier head. ``label`` is the training folder's
    name; ``name`` what to show: from the fine-tuned folder's own names file, the ImageNet
    table for WordNet ids, else ``gallery_names`` (the gallery's), else the label."""
    clf = predictor(model, server_backend)
    if clf is None:
        return None
    names = {**(gallery_names or {}), **class_names(Path(model).expanduser(), clf.classes)}
    tops = clf.top_k([u.image for u in uploads], TOP_K)
    return [
        [{"label": c, "name": names.get(c, c), "probability": round(p, 4)} for c, p in top] for top in tops
    ]


def markdown_cell(text: object) -> str:
    """``text`` as one Markdown table cell: file and class names may hold ``|`` (which would
    split the row), backticks, asterisks, brackets or line breaks."""
    s = " ".join(str(text).split())
    for char in "\\`*|[]<>":
        s = s.replace(char, "\\" + char)
    return s


def cell(top: list[dict]) -> str:
    """A Markdown table cell: the head's class in bold with its probability, then the runners-up."""
    first, *rest = top
    more = ", ".join(f"{markdown_cell(t['name'])} {t['probability']:.0%}" for t in rest)
    return f"**{markdown_cell(first['name'])}** ({first['probability']:.0%})" + (f"; {more}" if more else "")
