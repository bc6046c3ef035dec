"""The gallery every query is searched in, and its index for each model.

A gallery is a folder of images (labels from ImageFolder sub-folders), a prebuilt index file
(``zoo index build``), or by default the sample images bundled with zoo. Each model needs its
own index of the same images: a prebuilt index serves its own model, and any other model's
index is built on first use and cached under ``$ZOO_HOME/gallery-indexes`` (rebuilt
incrementally when images are added).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import zoo
import zoo.index
from zoo.hub import cache_dir


class GallerySource:
    """The gallery's images and labels, whatever form the user gave them in."""

    def __init__(self, spec: str | os.PathLike | None = None):
        self.prebuilt: zoo.index.GalleryIndex | None = None
        if spec is None:
            self.files = zoo.sample_images()
            self.root = self.files[0].parent
            self.labels: list[str | None] = [None] * len(self.files)
            self.description = f"the {len(self.files)} sample images bundled with zoo"
            return
        path = Path(spec).expanduser()
        if path.is_dir():
            self.files, self.labels = zoo.index.scan_folder(path)
            self.root = Path(os.path.abspath(path))
            self.description = str(path)
        elif path.is_file():
            self.prebuilt = zoo.index.load(path)
            self.files, self.labels, self.root = (
                self.prebuilt.files,
                self.prebuilt.labels,
                self.prebuilt.root,
            )
            self.description = f"{path} (index of {self.prebuilt.model})"
        else:
            raise zoo.ZooError(f"gallery {path}: no such folder or index file")

    @property
    def classes(self) -> list[str]:
        return sorted({label for label in self.labels if label is not None})

    def summary(self) -> str:
        """One line for the page header."""
        classes = f", {len(self.classes)} classes" if self.classes else ", unlabelled"
        return f"{len(self.files)} images{classes}: {self.description}"

    def index_for(
        self,
        encoder: zoo.Encoder,
        identity: zoo.index.ModelIdentity,
        *,
        backend: str = "auto",
        progress: bool = True,
    ) -> zoo.index.GalleryIndex:
        """This gallery's index for ``encoder``: the prebuilt one if it is the same model,
        else the cached one, built (or brought up to date) first."""
        if self.prebuilt is not None and self.prebuilt.identity.same_features_as(identity):
            return self.prebuilt
        return zoo.index.build(
            encoder,
            self.files,
            root=self.root,
            labels=self.labels,
            out=self._cache_path(identity),
            identity=identity,
            backend=backend,
            progress=progress,
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
