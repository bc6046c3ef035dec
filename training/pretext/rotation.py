"""RotNet's targets (Gidaris, Singh & Komodakis 2018): the four rotations of each image.

The paper found training on all four rotations of every image in the same batch better than
one random rotation per image (section 3.2.1: "we feed all four rotated copies ... in the
same mini-batch"), so :func:`rotations` returns ``4 N`` images.
"""

from __future__ import annotations

import torch

#: Rotation k turns the image by k * 90 degrees counter-clockwise.
NUM_ROTATIONS = 4


def rotate(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` (..., H, W) turned by ``k`` x 90 degrees counter-clockwise (exact, no resampling)."""
    return torch.rot90(x, k % NUM_ROTATIONS, dims=(-2, -1))


def rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (4N, C, S, S), labels (4N,))``: every image of the square batch ``x``
    (N, C, S, S) at 0, 90, 180 and 270 degrees; rows ``k N .. (k+1) N - 1`` are rotation k."""
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotations need square images (N, C, S, S), got {tuple(x.shape)}")
    images = torch.cat([rotate(x, k) for k in range(NUM_ROTATIONS)])
    labels = torch.arange(NUM_ROTATIONS).repeat_interleave(len(x))
    return images, labels
