"""Thumbnails and thumbnail strips for the result galleries, as files.

The app shows small copies rather than the gallery's files: they are decoded the way the
encoder sees them (upright, RGB), they load fast in the browser, and the server never has to
expose its gallery folder.

They are handed to Gradio as files, never as PIL images: Gradio saves a PIL output under a
name derived from its content *without* an atomic write, so two requests returning the same
thumbnail at once (the same gallery neighbour) could serve a half-written file. Here each
thumbnail is written once, atomically, under its content hash, and Gradio's own copy of a
file is atomic too.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import textwrap
import threading
import weakref
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from zoo.folder import atomic_write_bytes
from zoo.images import open_image

THUMB = 160  # pixels, longer side
STRIP_THUMB = 112
STRIP_MAX = 10  # thumbnails in one strip; the rest are counted on a last tile
_BACKGROUND = (255, 255, 255)


def thumbnail(image: Image.Image, size: int = THUMB) -> Image.Image:
    """A copy of ``image`` that fits a ``size`` square, aspect ratio kept."""
    copy = image.copy()
    copy.thumbnail((size, size))
    return copy


def rows_of_thumbnails(rows: list[tuple[str, list[Image.Image]]], *, size: int = STRIP_THUMB) -> Image.Image:
    """One image with a captioned row of square thumbnails per entry of ``rows``.

    A row shows at most ``STRIP_MAX`` thumbnails; a last tile says "+N" for the rest.
    """
    gap, caption_height = 4, 26
    tiles = [min(len(images), STRIP_MAX) + (len(images) > STRIP_MAX) for _, images in rows]
    width = max(1, max(tiles, default=1)) * (size + gap) - gap
    row_height = caption_height + size + 2 * gap
    canvas = Image.new("RGB", (width, len(rows) * row_height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, (caption, images) in enumerate(rows):
        top = r * row_height
        draw.text((0, top + 4), caption, fill=(30, 30, 30), font_size=16)
        y = top + caption_height
        for i, image in enumerate(images[:STRIP_MAX]):
            canvas.paste(ImageOps.fit(image, (size, size)), (i * (size + gap), y))
        if len(images) > STRIP_MAX:
            x = STRIP_MAX * (size + gap)
            draw.rectangle((x, y, x + size - 1, y + size - 1), fill=(235, 235, 235))
            label = f"+{len(images) - STRIP_MAX}"
            draw.text((x + size // 2, y + size // 2), label, fill=(60, 60, 60), anchor="mm", font_size=28)
    return canvas


def label_tile(text: str, size: int = THUMB) -> Image.Image:
    """A square tile with ``text`` written on it, wrapped (at hyphens too) to fit: the first
    tile of a Compare row names its model in full, where a caption would be cut short."""
    lines = textwrap.wrap(text, width=14, break_on_hyphens=True) or [""]
    tile = Image.new("RGB", (size, size), (243, 244, 246))
    draw = ImageDraw.Draw(tile)
    height = 22
    top = (size - height * len(lines)) // 2
    for i, line in enumerate(lines):
        draw.text(
            (size // 2, top + i * height + height // 2), line, fill=(20, 20, 20), anchor="mm", font_size=18
        )
    return tile


@lru_cache(maxsize=1024)
def gallery_image(path: Path) -> Image.Image:
    """A gallery image's thumbnail; gallery images come back again and again, so cached."""
    return thumbnail(open_image(path))


class ThumbnailStore:
    """WebP files named by their content in a private temporary folder, removed at exit.

    At most about ``max_files`` are kept: every ``max_files // 8`` new files, the least
    recently used beyond the limit are deleted (Gradio has copied them by then).
    """

    def __init__(self, max_files: int = 8192):
        self.folder = Path(tempfile.mkdtemp(prefix="zoo-app-thumbs-"))
        self.max_files = max_files
        self._gallery: dict[Path, Path] = {}
        self._writes = 0
        self._lock = threading.Lock()
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def put(self, image: Image.Image) -> str:
        """The path of a file holding ``image``."""
        buf = io.BytesIO()
        image.save(buf, "WEBP", quality=85)
        data = buf.getvalue()
        path = self.folder / f"{hashlib.blake2b(data, digest_size=16).hexdigest()}.webp"
        try:
            os.utime(path)  # already there: mark it recently used
        except FileNotFoundError:
            atomic_write_bytes(path, data)
            self._count_write()
        return str(path)

    def gallery_thumbnail(self, path: Path) -> str:
        """The thumbnail file of a gallery image."""
        thumb = self._gallery.get(path)
        if thumb is not None and thumb.exists():
            os.utime(thumb)
            return str(thumb)
        thumb = Path(self.put(gallery_image(path)))
        self._gallery[path] = thumb
        return str(thumb)

    def _count_write(self) -> None:
        with self._lock:
            self._writes += 1
            if self._writes % max(1, self.max_files // 8):
                return
            files = sorted(self.folder.glob("*.webp"), key=_mtime)
        for old in files[: max(0, len(files) - self.max_files)]:
            old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile by another request's clean-up
        return 0.0


_store: ThumbnailStore | None = None
_store_lock = threading.Lock()


def store() -> ThumbnailStore:
    """The process's thumbnail store (created on first use)."""
    global _store
    with _store_lock:
        if _store is None:
            _store = ThumbnailStore()
        return _store
