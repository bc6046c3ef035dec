"""Uploaded files -> images, with a message a person can act on for every bad one.

Decoding is zoo's own (:func:`zoo.images.open_image`): EXIF rotation applied, 16-bit and
CMYK converted, transparency composited on white, truncated files, non-images and
decompression bombs refused with :class:`zoo.ImageError`. An unreadable file among good ones
is skipped with a warning; a request with no readable image, none at all, or too many is
refused with an error. Either way the server goes on serving.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

import zoo
from zoo.images import open_image

#: Uploads are kept with their shorter side at most this long: a request may hold 200 images,
#: and a 64-megapixel photo decodes to ~190 MB. Every encoder here resizes the shorter side to
#: 256 px or less (antialiased), so a 1024 px copy gives it nearly the same input.
KEEP_SHORT_SIDE = 1024


def bounded(image: Image.Image, short_side: int = KEEP_SHORT_SIDE) -> Image.Image:
    """``image``, downscaled (bicubic, antialiased) so its shorter side is at most ``short_side``."""
    w, h = image.size
    if min(w, h) <= short_side:
        return image
    scale = short_side / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


@dataclass(frozen=True)
class Upload:
    name: str  # the file name the user uploaded
    image: Image.Image  # RGB, upright


@dataclass(frozen=True)
class Uploads:
    images: list[Upload]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"name": ..., "reason": ...}


def upload_paths(files: object) -> list[Path]:
    """The paths Gradio hands over for a ``gr.File`` value (one path, a list, or nothing)."""
    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        return [Path(files)]
    return [Path(f) for f in files]  # type: ignore[union-attr]


def read_uploads(files: object, *, limit: int) -> Uploads:
    """Decode the uploaded ``files``; raises ``gr.Error`` when nothing usable was sent."""
    paths = upload_paths(files)
    if not paths:
        raise gr.Error("No image received: upload one or more images (JPEG, PNG, WebP, ...) first.")
    if len(paths) > limit:
        raise gr.Error(f"Too many files: {len(paths)} uploaded, at most {limit} per request.")
    images, skipped = [], []
    for path in paths:
        try:
            images.append(Upload(path.name, bounded(open_image(path))))
        except zoo.ImageError as e:
            # zoo names the file by its server-side temporary path; the user knows its name.
            skipped.append({"name": path.name, "reason": str(e).replace(str(path), path.name)})
    if not images:
        reasons = "; ".join(s["reason"] for s in skipped)
        raise gr.Error(f"None of the uploaded files is a readable image: {reasons}")
    for s in skipped:
        gr.Warning(f"Skipped {s['reason']}")
    return Uploads(images, skipped)
