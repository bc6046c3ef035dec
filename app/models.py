"""The encoders a demo server offers: one loaded encoder and one gallery index per model.

Requests run in parallel threads, so loading a model or building its gallery index happens
under that model's lock: the first request does the work, the others wait for it and then
share the result.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from zoo.app.errors import user_error
from zoo.app.gallery import GallerySource

import zoo
import zoo.index
from zoo import hub
from zoo.cards import render_card
from zoo.folder import WEIGHTS_NAME

#: ``report(fraction done, what is being done)``: a progress bar in the page (``gr.Progress``).
Report = Callable[..., Any]

DOWNLOADS = "downloads on first use"
#: The measurement that orders the photo encoders in the Compare tab: kNN top-1, k=20, Imagenette val.
PHOTO_SCORE = ("imagenette-val", "knn-k20")


@dataclass(frozen=True)
class LoadedModel:
    encoder: zoo.Encoder
    identity: zoo.index.ModelIdentity


class ModelPool:
    """Registered encoders plus the extra ones a server was started with (zoo folders, files).

    Only these can be selected: a request cannot make the server load an arbitrary path or URL.
    """

    def __init__(self, gallery: GallerySource, extra: tuple[str, ...] = (), *, backend: str = "auto"):
        self.gallery = gallery
        self.backend = backend
        self.names = list(dict.fromkeys([*extra, *zoo.list_models()]))
        self._loaded: dict[str, LoadedModel] = {}
        self._indexes: dict[str, zoo.index.GalleryIndex] = {}
        self._locks = {name: threading.Lock() for name in self.names}

    def installed_photo_encoders(self) -> list[str]:
        """Registered encoders whose weights install with zoo (no download on first use) and
        that see photos at 64 px or more (not the 32 px CIFAR-10 ones), best first: by their
        measured kNN top-1 (k=20) on Imagenette val, so the Compare tab lists the encoder worth
        trying right after the default."""
        scored = []
        for name in self.names:
            try:
                entry = zoo.model_info(name)
            except zoo.UnknownModelError:  # a folder or file the server was started with
                continue
            if entry.weights.file and entry.preprocess.input_size >= 64:
                knn = [m.value for m in entry.measured if (m.dataset, m.protocol) == PHOTO_SCORE]
                scored.append((-max(knn, default=0.0), name))
        return [name for _, name in sorted(scored)]

    def runnable_now(self, name: str) -> bool:
        """Whether ``name`` runs without a download: loaded, a folder or file the server was
        started with, weights installed with zoo, or already in the cache."""
        if name in self._loaded:
            return True
        try:
            w = zoo.model_info(name).weights
        except zoo.UnknownModelError:  # a folder or file the server was started with
            return True
        if w.file:
            return True
        from zoo.loading import _converted_dir

        if (_converted_dir(zoo.model_info(name)) / WEIGHTS_NAME).is_file():
            return True
        if w.hf_hub_id:
            try:
                from huggingface_hub import try_to_load_from_cache
            except ImportError:
                return False
            return isinstance(try_to_load_from_cache(w.hf_hub_id, WEIGHTS_NAME), str)
        return w.url is not None and _in_download_cache(w.url, w.sha256)

    def choices(self, names: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """``(label, name)`` pairs for a model picker: those that run now first (in the given
        order), then the others, labelled as downloading on first use."""
        names = self.names if names is None else names
        ready = [n for n in names if self.runnable_now(n)]
        later = [n for n in names if n not in ready]
        return [(n, n) for n in ready] + [(f"{n} ({DOWNLOADS})", n) for n in later]

    def check(self, name: Any) -> str:
        if not isinstance(name, str) or name not in self._locks:
            raise user_error(f"Model {name!r} is not served here: pick one from the Model list.")
        return name

    def model(self, name: str) -> LoadedModel:
        """The loaded encoder of ``name`` (loaded on first use, then kept)."""
        with self._locks[self.check(name)]:
            if name not in self._loaded:
                encoder = zoo.load(name)
                self._loaded[name] = LoadedModel(encoder, zoo.index.ModelIdentity.of(encoder))
            return self._loaded[name]

    def index(self, name: str, *, report: Report | None = None) -> zoo.index.GalleryIndex:
        """The gallery index of ``name`` (built or read from the cache on first use, with
        progress sent to ``report``)."""
        if name in self._indexes:
            return self._indexes[name]
        if report is not None and name not in self._loaded:
            report(0.0, desc=f"loading {name}")
        loaded = self.model(name)
        with self._locks[name]:
            if name not in self._indexes:
                self._indexes[name] = self.gallery.index_for(
                    loaded.encoder, loaded.identity, backend=self.backend, report=report
                )
            return self._indexes[name]

    def embed(self, name: str, images: list[Image.Image]) -> np.ndarray:
        """L2-normalised features of ``images`` (PIL images or paths) by model ``name``."""
        return self.model(name).encoder.embed(images, normalize=True, backend=self.backend)

    def card(self, name: str) -> str:
        """The model card as Markdown, without its YAML front matter (metadata for the Hub)."""
        try:
            entry = zoo.model_info(self.check(name))
        except zoo.UnknownModelError:  # a zoo folder or file: its record travels with it
            entry = self.model(name).encoder.entry
        if entry is None:
            return f"`{name}` carries no registry record, so it has no model card."
        return re.sub(r"\A---\n.*?\n---\n", "", render_card(entry), count=1, flags=re.DOTALL)


def _in_download_cache(url: str, sha256: str) -> bool:
    """Whether :func:`zoo.hub.download_url` has ``url`` in its cache (same key as its own)."""
    try:
        expected = hub._normalize_sha256(sha256 or None)
        target = hub._cache_target(url, urllib.parse.urlsplit(url), expected, None, None)
    except Exception:  # only a label: a model we cannot place is one that may download
        return False
    return Path(target).is_file()
