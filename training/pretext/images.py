"""Between the views' normalised tensors and pixels, and low-resolution copies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.registry import IMAGENET_MEAN, IMAGENET_STD


def _stats(x: torch.Tensor, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1, 1, 1)
    return (
        torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape),
        torch.tensor(std, dtype=x.dtype, device=x.device).view(shape),
    )


def denormalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Normalised views (N, 3, H, W) -> RGB in [0, 1] (clamped)."""
    m, s = _stats(x, mean, std)
    return (x * s + m).clamp(0, 1)


def normalize(rgb: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """RGB in [0, 1] (N, 3, H, W) -> normalised as the views and every zoo encoder's input."""
    m, s = _stats(rgb, mean, std)
    return (rgb - m) / s


def gray(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Normalised views -> the same views in grey (ITU-R 601-2 luma in all three channels),
    normalised again: what a colour encoder sees of an image's lightness."""
    rgb = denormalize(x, mean, std)
    luma = (rgb * torch.tensor((0.2989, 0.587, 0.114), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )
    return normalize(luma.expand_as(rgb), mean, std)


def low_resolution(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The image at ``1 / factor`` resolution (area averaging, as a camera integrates) and
    brought back to its size by bicubic upsampling: the input of super-resolution."""
    if factor < 2 or x.shape[-1] % factor or x.shape[-2] % factor:
        from zoo.training.pretext import PretextSizeError

        raise PretextSizeError(
            f"super-resolution: a {x.shape[-2]}x{x.shape[-1]} image cannot be downsampled by {factor}"
            " (the factor must be >= 2 and divide the image size)"
        )
    small = F.avg_pool2d(x, factor)
    return F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False)
