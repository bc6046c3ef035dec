"""Relative patch location (Doersch, Gupta & Efros 2015): a centre patch and one of its 8
neighbours; the label is the neighbour's position (0..7, row by row, centre skipped).

The paper's defences against trivial shortcuts, each a switch here: a gap between patches
(no continuing edges or textures), a random jitter of each patch (no aligned lines), and
colour dropping (2 of 3 channels replaced by small noise per patch, against chromatic
aberration, which otherwise tells a patch's position relative to the lens centre).
"""

from __future__ import annotations

import torch
from zoo.training.pretext import PretextSizeError

#: (row, column) of the 8 neighbours in the 3x3 grid, in label order.
NEIGHBOURS = [(r, c) for r in range(3) for c in range(3) if (r, c) != (1, 1)]


def needed_size(patch: int, gap: int, jitter: int) -> int:
    """The image side a 3x3 grid of ``patch`` px patches, ``gap`` px apart, each moved by up
    to ``jitter`` px, needs."""
    return 3 * patch + 2 * gap + 2 * jitter


def check_patch_size(image_size: int, patch: int, gap: int, jitter: int) -> None:
    if patch < 1 or gap < 0 or jitter < 0:
        raise PretextSizeError(
            f"relative patch: patch must be >= 1, gap and jitter >= 0 (got {patch}, {gap}, {jitter})"
        )
    need = needed_size(patch, gap, jitter)
    if image_size < need:
        raise PretextSizeError(
            f"relative patch: 3x3 patches of {patch} px with {gap} px gaps and {jitter} px jitter need images"
            f" of at least {need} px (3 x {patch} + 2 x {gap} + 2 x {jitter}), got {image_size} px"
        )


def patch_pairs(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    patch: int,
    gap: int = 0,
    jitter: int = 0,
    color_drop: bool = False,
    noise_std: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(centre (N, C, p, p), neighbour (N, C, p, p), labels (N,))`` from the square batch
    ``x`` (N, C, S, S), float (normalised: ``color_drop`` replaces the dropped channels by
    noise of std ``noise_std`` around the dataset mean, i.e. 0, as the paper does with 1/100
    of the channel's std)."""
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"relative patch needs square images, got {h}x{w}")
    check_patch_size(h, patch, gap, jitter)
    start = (h - needed_size(patch, gap, jitter)) // 2 + jitter
    step = patch + gap
    labels = torch.randint(0, 8, (n,), generator=generator)
    pos = torch.tensor(NEIGHBOURS)[labels]  # (N, 2)
    out = []
    for cell in (torch.ones(n, 2, dtype=torch.long), pos):
        shift = torch.randint(-jitter, jitter + 1, (n, 2), generator=generator)
        corner = start + cell * step + shift  # (N, 2): top, left
        r = torch.arange(patch)
        rows = (corner[:, 0, None] + r)[:, :, None]
        cols = (corner[:, 1, None] + r)[:, None, :]
        p = x.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols].permute(0, 3, 1, 2)
        if color_drop:
            keep = torch.randint(0, c, (n,), generator=generator)
            dropped = torch.arange(c)[None, :] != keep[:, None]  # (N, C)
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype) * noise_std
            p = torch.where(dropped[:, :, None, None], noise, p)
        out.append(p.contiguous())
    return out[0], out[1], labels
