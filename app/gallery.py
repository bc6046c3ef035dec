"""The gallery every query is searched in, and its index for each model.

A gallery is a folder of images (labels from ImageFolder sub-folders, shown by the names of
:mod:`zoo.app.labels`), a prebuilt index file (``zoo index build``), or by default the small
labelled gallery bundled with zoo (``zoo/data/gallery``). Each model needs its
own index of the same images: a prebuilt index serves its own model, and any other model's
index is built on first use and cached under ``$ZOO_HOME/gallery-indexes`` (rebuilt
incrementally when images are added).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from zoo.app import labels

import zoo
import zoo.index
from zoo.hub import cache_dir

#: The default gallery: a few classes of CC0 / public-domain photos (PROVENANCE.md there).
BUNDLED = Path(zoo.__file__).parent / "data" / "gallery"


class GallerySource:
    """The gallery's images and labels, whatever form the user gave them in."""

    def __init__(self, spec: str | os.PathLike | None = None):
        self.prebuilt: zoo.index.GalleryIndex | None = None
        self.labels: list[str | None]
        # The header names the gallery, never its path: visitors need not see the server's folders.
        path = BUNDLED if spec is None else Path(spec).expanduser()
        if path.is_dir():
            self.files, self.labels = zoo.index.scan_folder(path)
            self.root = Path(os.path.abspath(path))
            self.description = "the gallery bundled with zoo" if spec is None else f"gallery {path.name!r}"
        elif path.is_file():
            self.prebuilt = zoo.index.load(path)
            self.files, self.labels, self.root = (
                self.prebuilt.files,
                self.prebuilt.labels,
                self.prebuilt.root,
            )
            self.description = f"gallery {path.stem!r} (index of {self.prebuilt.model})"
        else:
            raise zoo.ZooError(f"gallery {path}: no such folder or index file")
        self.names = labels.class_names(self.root, self.labels)

    @property
    def classes(self) -> list[str]:
        """The folder labels, sorted."""
        return sorted({label for label in self.labels if label is not None})

    def name(self, label: str | None) -> str | None:
        """The name shown for the folder label ``label``."""
        return None if label is None else self.names.get(label, label)

    def summary(self) -> str:
        """One line for the page header."""
        if self.classes:
            shown = ", ".join(sorted(str(self.name(c)) for c in self.classes)[:12])
            more = f" and {len(self.classes) - 12} more" if len(self.classes) > 12 else ""
            classes = f" of {len(self.classes)} classes ({shown}{more})"
        else:
            classes = ", unlabelled"
        return f"{self.description}: {len(self.files)} images{classes}"

    def index_for(
        self,
        encoder: zoo.Encoder,
        identity: zoo.index.ModelIdentity,
        *,
        backend: str = "auto",
        report: Callable[..., Any] | None = None,
    ) -> zoo.index.GalleryIndex:
        """This gallery's index for ``encoder``: the prebuilt one if it is the same model,
        else the cached one, built (or brought up to date) first; ``report(fraction, desc=...)``
        hears how far the build is."""
        if self.prebuilt is not None and self.prebuilt.identity.same_features_as(identity):
            return self.prebuilt
        return zoo.index.build(
            encoder if report is None else _Reporting(encoder, len(self.files), report),  # type: ignore[arg-type]
            self.files,
            root=self.root,
            labels=self.labels,
            out=self._cache_path(identity),
            identity=identity,
            backend=backend,
            progress=True,  # in the server's log
        )

    def _cache_path(self, identity: zoo.index.ModelIdentity) -> Path | None:
        """Where this gallery's index for ``identity`` is cached; ``None`` if the cache is
        read-only (the index is then kept in memory only)."""
        folder = cache_dir() / "gallery-indexes"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        if not os.access(folder, os.W_OK):
            return None
        key = hashlib.blake2b(digest_size=8)
        for part in (str(self.root), identity.fingerprint, identity.preprocess_hash):
            key.update(part.encode())
        return folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', identity.name)}-{key.hexdigest()}.npz"


class _Reporting:
    """An encoder that embeds in small steps and reports each to ``report``: the index build
    embeds hundreds of images per call, so a small gallery would otherwise jump from 0 to done."""

    def __init__(self, encoder: zoo.Encoder, total: int, report: Callable[..., Any]):
        self._encoder, self._total, self._report, self._done = encoder, max(total, 1), report, 0
        # About 50 steps: a smooth bar, and batches still large enough on a big gallery.
        self._step = max(16, min(256, total // 50))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def embed(self, images: list, **kwargs: Any) -> np.ndarray:
        parts = []
        for start in range(0, len(images), self._step):
            self._report(
                min(self._done / self._total, 1.0),
                desc=f"indexing the gallery for {self._encoder.name}: {self._done}/{self._total} images",
            )
            batch = images[start : start + self._step]
            parts.append(self._encoder.embed(batch, **kwargs))
            self._done += len(batch)
        self._report(min(self._done / self._total, 1.0), desc=f"indexed {self._done} images")
        return np.concatenate(parts) if parts else np.zeros((0, self._encoder.embed_dim), np.float32)
