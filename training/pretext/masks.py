"""Masks: MAE's random patch masks and the context encoder's centre and random blocks."""

from __future__ import annotations

import torch
from zoo.training.pretext import PretextSizeError


def check_patch_grid(image_size: int, patch_size: int, mask_ratio: float) -> int:
    """The number of patches of an ``image_size`` px image cut into ``patch_size`` px patches,
    checking the grid is exact and leaves at least one patch visible and one masked."""
    if patch_size < 1 or image_size % patch_size:
        raise PretextSizeError(
            f"a {image_size} px image is not a whole grid of {patch_size} px patches; choose an image size"
            " that is a multiple of the patch size"
        )
    num = (image_size // patch_size) ** 2
    keep = int(num * (1 - mask_ratio))
    if not 0 < mask_ratio < 1 or keep < 1 or keep >= num:
        raise PretextSizeError(
            f"masking {mask_ratio:.0%} of the {num} patches ({image_size} px images, {patch_size} px patches)"
            f" leaves {keep} visible; the ratio must leave at least 1 visible and 1 masked"
        )
    return num


def random_patch_mask(
    n: int, num_patches: int, mask_ratio: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking: ``(keep (N, K) int64, mask (N, L) bool)``. Exactly
    ``K = int(L (1 - mask_ratio))`` patches are kept (``keep``, in ascending order) and the
    other ``L - K`` are masked (``mask`` True), chosen uniformly at random per image."""
    keep_n = int(num_patches * (1 - mask_ratio))
    noise = torch.rand(n, num_patches, generator=generator)
    keep = noise.argsort(dim=1)[:, :keep_n].sort(dim=1).values
    mask = torch.ones(n, num_patches, dtype=torch.bool)
    mask[torch.arange(n)[:, None], keep] = False
    return keep, mask


def check_block_mask(image_size: int, block: int, fraction: float, mode: str) -> None:
    if mode not in ("center", "random"):
        raise ValueError(f"mask mode must be 'center' or 'random', got {mode!r}")
    if not 0 < fraction < 1:
        raise PretextSizeError(f"the masked fraction must be in (0, 1), got {fraction}")
    if mode == "random" and (block < 1 or image_size % block or image_size // block < 2):
        raise PretextSizeError(
            f"random blocks of {block} px need an image size that is a multiple of {block} with at least"
            f" 2 blocks per side, got {image_size} px"
        )
    side = round(image_size * fraction**0.5)
    if mode == "center" and not 1 <= side < image_size:
        raise PretextSizeError(
            f"a centre square covering {fraction:.0%} of a {image_size} px image has side {side} px;"
            f" it must be between 1 and {image_size - 1} px"
        )


def block_mask(
    n: int,
    image_size: int,
    generator: torch.Generator,
    *,
    mode: str = "center",
    fraction: float = 0.25,
    block: int = 8,
) -> torch.Tensor:
    """Context-encoder masks (N, 1, S, S), True where pixels are removed.

    ``center``: the centred square of side ``round(S sqrt(fraction))`` (the paper's central
    region: 1/4 of the image); ``random``: the image cut into ``block`` px cells and
    ``round(fraction x cells)`` of them removed at random per image (the paper's random
    blocks; here non-overlapping, so the removed fraction is exact)."""
    check_block_mask(image_size, block, fraction, mode)
    if mode == "center":
        side = round(image_size * fraction**0.5)
        start = (image_size - side) // 2
        mask = torch.zeros(n, 1, image_size, image_size, dtype=torch.bool)
        mask[:, :, start : start + side, start : start + side] = True
        return mask
    cells = image_size // block
    count = round(fraction * cells * cells)
    order = torch.rand(n, cells * cells, generator=generator).argsort(dim=1)
    grid = torch.zeros(n, cells * cells, dtype=torch.bool)
    grid[torch.arange(n)[:, None], order[:, :count]] = True
    grid = grid.view(n, 1, cells, cells)
    return grid.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)
