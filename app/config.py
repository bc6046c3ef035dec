"""What the demo serves and the limits that keep one server responsive for everyone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AppConfig:
    """Settings of one demo server (``zoo serve`` flags map onto these).

    Attributes:
        models: encoders offered besides the registry's (names, zoo folders, files); the
            first is selected at start (default: the gallery index's model, else zoo's default).
        gallery: a folder of images (ImageFolder sub-folders give labels), a gallery index
            file from ``zoo index build``, or ``None`` for the gallery bundled with zoo
            (``zoo/data/gallery``: labelled public-domain photos).
        backend: how images are embedded (``Encoder.embed``'s ``backend``).
        max_query_images: images per Retrieve or Compare request.
        max_cluster_images: uploaded images per Cluster request.
        max_gallery_sample: gallery images a Cluster request may take.
        max_k: largest number of neighbours a request may ask for.
        max_compare_models: models one Compare request may name (each not yet loaded is
            downloaded, loaded and indexed, then kept in memory).
        max_file_size: largest upload accepted (Gradio's size syntax, e.g. "20mb").
        concurrency: requests embedding at once; the others wait in the queue.
        queue_size: requests that may wait; beyond it new ones are turned away at once.
    """

    models: tuple[str, ...] = ()
    gallery: Path | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    backend: str = "auto"
    max_query_images: int = 8
    max_cluster_images: int = 200
    max_gallery_sample: int = 500
    max_k: int = 50
    max_compare_models: int = 8
    max_file_size: str = "20mb"
    concurrency: int = 2
    queue_size: int = 64
