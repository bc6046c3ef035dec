"""From whatever the user holds to the encoder's input batch.

Accepted inputs (one, or a sequence of them):

* a file path (``str`` or ``os.PathLike``) or a PIL image;
* a ``torch.Tensor`` in torchvision's layout, ``(3, H, W)`` / ``(1, H, W)`` / ``(N, 3, H, W)``;
* a ``numpy.ndarray`` in PIL's layout, ``(H, W, 3)`` / ``(H, W)`` / ``(N, H, W, 3)``.

Integer arrays are 0-255; float arrays must already be scaled to [0, 1]. Every input goes
through the same tensor pipeline (resize the shorter side, centre crop, scale, normalise),
so a path, its PIL image and its pixel array give the same features.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from zoo.errors import ImageError
from zoo.registry import Preprocess

ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

# Pillow only *warns* between 89 and 179 megapixels; zoo refuses anything above this bound
# outright so that a small file declaring a huge size cannot exhaust memory.
MAX_PIXELS = 64_000_000

#: Largest image the resize step may produce (about 200 MB as float32 RGB). It scales the
#: shorter side to ``resize_size`` and the longer one with it, so an image of few pixels but an
#: extreme aspect ratio would become huge: 1 x 60000 pixels at 256 px is 256 x 15,360,000, 47 GB.
#: Every photo fits (16:9 at the largest resize_size, 2048 px, is 7.5 million pixels).
MAX_RESIZED_PIXELS = 1 << 24

#: Bumped whenever :func:`preprocess` changes the pixels it produces, so caches of features
#: (gallery indexes) can tell features of the old pipeline from the new. 2: pixels are scaled
#: to float before resizing (uint8 and float inputs embed alike).
PIPELINE_VERSION = 2

_INTERPOLATION = {
    "bilinear": TF.InterpolationMode.BILINEAR,
    "bicubic": TF.InterpolationMode.BICUBIC,
    "nearest": TF.InterpolationMode.NEAREST,
}


def open_image(path: str | os.PathLike) -> Image.Image:
    """Read an image file as RGB with its EXIF orientation applied.

    Raises :class:`ImageError` naming the file for a missing, non-image, truncated or
    oversized file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_size(img, str(path))
                img.load()  # decode now: truncated files fail here, not later in a batch
                return to_rgb(img)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: cannot decode image ({e})") from None


def _check_size(img: Image.Image, what: str) -> None:
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"{what}: image of {w}x{h} pixels exceeds the limit of {MAX_PIXELS:,} pixels"
            " (possible decompression bomb); downscale it first"
        )
    if w == 0 or h == 0:
        raise ImageError(f"{what}: empty image ({w}x{h})")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: EXIF rotation applied, 16-bit and float images
    rescaled rather than clipped, transparency composited onto white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow's convert("RGB") clips 16-bit values at 255, turning most photos white.
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB")


def to_tensor(image: ImageInput) -> torch.Tensor:
    """One image as a (3, H, W) tensor: uint8, or float32 in [0, 1] for float inputs."""
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        _check_size(image, "PIL image")
        return TF.pil_to_tensor(to_rgb(image))
    if isinstance(image, np.ndarray):
        # A read-only array (np.asarray of a PIL image) is copied: torch warns on those.
        array = np.ascontiguousarray(image) if image.flags.writeable else np.array(image)
        return _from_array(torch.from_numpy(array), channels_last=True)
    if isinstance(image, torch.Tensor):
        return _from_array(image.detach().cpu(), channels_last=False)
    raise ImageError(
        f"cannot embed an object of type {type(image).__name__}: pass file paths, PIL images,"
        " torch tensors (C, H, W) or numpy arrays (H, W, C)"
    )


def _from_array(t: torch.Tensor, *, channels_last: bool) -> torch.Tensor:
    layout = "(H, W, C)" if channels_last else "(C, H, W)"
    if t.ndim == 2:
        t = t.unsqueeze(-1 if channels_last else 0)
    if t.ndim != 3:
        raise ImageError(f"an image array must be 2-D or 3-D {layout}, got shape {tuple(t.shape)}")
    if channels_last:
        t = t.permute(2, 0, 1)
    if t.shape[0] not in (1, 3, 4):
        raise ImageError(
            f"an image array needs 1, 3 or 4 channels in layout {layout}, got shape {tuple(t.shape)}"
        )
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise ImageError(f"empty image array of shape {tuple(t.shape)}")
    # The same bound as for files: converting to float and resizing multiply the memory.
    if t.shape[1] * t.shape[2] > MAX_PIXELS:
        raise ImageError(
            f"image array of shape {tuple(t.shape)} has {t.shape[1] * t.shape[2]:,} pixels, over the"
            f" limit of {MAX_PIXELS:,}; downscale it first"
        )
    t = _pixel_values(t)
    if t.shape[0] == 4:
        t = _composite_on_white(t)
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t.contiguous()


def _pixel_values(t: torch.Tensor) -> torch.Tensor:
    """uint8 pixels, or float32 in [0, 1]; anything else refused with what to do."""
    if t.dtype == torch.uint8:
        return t
    if t.is_floating_point():
        t = t.float()
        if not torch.isfinite(t).all():
            raise ImageError("float image contains NaN or infinity")
        lo, hi = t.min().item(), t.max().item()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ImageError(
                f"float images must be scaled to [0, 1], got values in [{lo:.3g}, {hi:.3g}];"
                " pass uint8 pixels or divide by 255"
            )
        return t.clamp(0, 1)
    if t.dtype in (torch.int16, torch.int32, torch.int64, torch.uint16):
        if t.min() < 0 or t.max() > 255:
            raise ImageError("integer images must hold 0-255 pixel values; convert 16-bit images to uint8")
        return t.to(torch.uint8)
    raise ImageError(f"unsupported image dtype {t.dtype}")


def _composite_on_white(rgba: torch.Tensor) -> torch.Tensor:
    """(4, H, W) -> (3, H, W) over a white background, as :func:`to_rgb` does for files, so
    a transparent image embeds alike as a path, a PIL image or its pixels."""
    if rgba.dtype == torch.uint8:
        # Pillow's own compositing, for the same rounding as the file path.
        image = Image.fromarray(rgba.permute(1, 2, 0).numpy(), "RGBA")
        return TF.pil_to_tensor(to_rgb(image))
    alpha = rgba[3:4]
    return rgba[:3] * alpha + (1.0 - alpha)


def preprocess(image: torch.Tensor, cfg: Preprocess, *, what: str = "input") -> torch.Tensor:
    """Scale to [0, 1], resize the shorter side, centre crop and normalise: (3, S, S) float32.

    Pixels are scaled *before* resizing: torchvision resizes uint8 images in fixed point and
    rounds the result back to uint8, which moves features by up to ~0.1 (one grey level per
    pixel), so the same image given as uint8 and as float [0, 1] would not embed alike.

    Raises:
        ImageError: starting with ``what`` (a file's path), when the image is so elongated that
            resizing it would exceed :data:`MAX_RESIZED_PIXELS`.
    """
    _check_resized_size(image, cfg.resize_size, what)
    if image.dtype == torch.uint8:
        image = image.float().div_(255.0)
    image = TF.resize(
        image, [cfg.resize_size], interpolation=_INTERPOLATION[cfg.interpolation], antialias=True
    ).clamp_(0.0, 1.0)  # bicubic overshoots; pixels stay pixels, as when resizing 8-bit images
    image = TF.center_crop(image, [cfg.input_size, cfg.input_size])
    return TF.normalize(image, list(cfg.mean), list(cfg.std))


def _check_resized_size(image: torch.Tensor, size: int, what: str) -> None:
    h, w = image.shape[-2:]
    short, long = min(h, w), max(h, w)
    # As torchvision computes it for resize([size]): the longer side is truncated, not rounded.
    new_long = int(size * long / short) if short else 0
    if size * new_long > MAX_RESIZED_PIXELS:
        ratio = MAX_RESIZED_PIXELS // (size * size)
        new_w, new_h = (size, new_long) if w == short else (new_long, size)
        raise ImageError(
            f"{what}: image of {w}x{h} pixels is too elongated to embed: resizing its shorter side to"
            f" {size} px makes it {new_w}x{new_h} ({size * new_long:,} pixels, over the limit of"
            f" {MAX_RESIZED_PIXELS:,}); crop it to an aspect ratio of at most {ratio}:1 first"
        )


def prepare(image: ImageInput, cfg: Preprocess) -> torch.Tensor:
    """One input read (:func:`to_tensor`) and preprocessed; an error names a file by its path."""
    what = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "input"
    return preprocess(to_tensor(image), cfg, what=what)


def split_inputs(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """Turn one input or a batch into a list of single images."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, torch.Tensor):
        return list(images.unbind(0)) if images.ndim == 4 else [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, Iterable):
        return list(images)
    raise ImageError(f"cannot embed an object of type {type(images).__name__}")


def batches(images: Sequence[ImageInput], cfg: Preprocess, batch_size: int) -> Iterator[torch.Tensor]:
    """Preprocessed (B, 3, S, S) float32 batches, in input order."""
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        yield torch.stack([prepare(im, cfg) for im in chunk])


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file below ``folder`` (recursively), sorted for a stable order."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"{root}: not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageError(f"{root}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files
