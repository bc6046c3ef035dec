"""The encoders a demo server offers: one loaded encoder and one gallery index per model.

Requests run in parallel threads, so loading a model or building its gallery index happens
under that model's lock: the first request does the work, the others wait for it and then
share the result.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image
from zoo.app.gallery import GallerySource

import zoo
import zoo.index
from zoo.cards import render_card


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
        that see photos at 64 px or more (not the 32 px CIFAR-10 ones)."""
        names = []
        for name in self.names:
            try:
                entry = zoo.model_info(name)
            except zoo.UnknownModelError:  # a folder or file the server was started with
                continue
            if entry.weights.file and entry.preprocess.input_size >= 64:
                names.append(name)
        return names

    def check(self, name: str) -> str:
        if name not in self._locks:
            raise zoo.ZooError(f"model {name!r} is not served here; choose one of: {', '.join(self.names)}")
        return name

    def model(self, name: str) -> LoadedModel:
        """The loaded encoder of ``name`` (loaded on first use, then kept)."""
        with self._locks[self.check(name)]:
            if name not in self._loaded:
                encoder = zoo.load(name)
                self._loaded[name] = LoadedModel(encoder, zoo.index.ModelIdentity.of(encoder))
            return self._loaded[name]

    def index(self, name: str, *, progress: bool = True) -> zoo.index.GalleryIndex:
        """The gallery index of ``name`` (built or read from the cache on first use)."""
        loaded = self.model(name)
        with self._locks[name]:
            if name not in self._indexes:
                self._indexes[name] = self.gallery.index_for(
                    loaded.encoder, loaded.identity, backend=self.backend, progress=progress
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
