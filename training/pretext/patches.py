"""Relative patch location (Doersch, Gupta & Efros 2015): a centre patch and one of its 8
neighbours; the label is the neighbour's position (0..7, row by row, centre skipped).

Three of the paper's defences against trivial shortcuts, each a switch here: a gap between patches
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
    n = x.shape[0]
    labels = torch.randint(0, 8, (n,), generator=generator)
    cells = torch.stack([torch.ones(n, 2, dtype=torch.long), torch.tensor(NEIGHBOURS)[labels]], dim=1)
    cut = _cut(
        x, cells, generator, patch=patch, gap=gap, jitter=jitter, color_drop=color_drop, noise_std=noise_std
    )
    return cut[:, 0].contiguous(), cut[:, 1].contiguous(), labels


def patch_grid(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    patch: int,
    gap: int = 0,
    jitter: int = 0,
    color_drop: bool = False,
    noise_std: float = 0.01,
) -> torch.Tensor:
    """All 9 patches of the grid, ``(N, 9, C, p, p)`` row by row (the centre at index
    :data:`CENTRE`), each jittered and colour-dropped on its own as in :func:`patch_pairs`:
    the centre paired with every neighbour gives 8 labelled pairs per image for 9 encoded
    patches, where :func:`patch_pairs` gives one for 2."""
    n = x.shape[0]
    cells = torch.tensor([(r, c) for r in range(3) for c in range(3)]).expand(n, 9, 2)
    return _cut(
        x, cells, generator, patch=patch, gap=gap, jitter=jitter, color_drop=color_drop, noise_std=noise_std
    )


#: Index of the centre patch in :func:`patch_grid`; the others, in order, carry labels 0..7.
CENTRE = 4
NEIGHBOUR_INDEX = [i for i in range(9) if i != CENTRE]


def _cut(
    x: torch.Tensor,
    cells: torch.Tensor,
    generator: torch.Generator,
    *,
    patch: int,
    gap: int,
    jitter: int,
    color_drop: bool,
    noise_std: float,
) -> torch.Tensor:
    """The patches of grid cells ``cells`` (N, K, 2: row, column) of each image, (N, K, C, p, p)."""
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"relative patch needs square images, got {h}x{w}")
    check_patch_size(h, patch, gap, jitter)
    k = cells.shape[1]
    start = (h - needed_size(patch, gap, jitter)) // 2 + jitter
    shift = torch.randint(-jitter, jitter + 1, (n, k, 2), generator=generator)
    corner = start + cells * (patch + gap) + shift  # (N, K, 2): top, left
    r = torch.arange(patch)
    rows = (corner[..., 0, None] + r)[..., :, None]  # (N, K, p, 1)
    cols = (corner[..., 1, None] + r)[..., None, :]  # (N, K, 1, p)
    images = torch.arange(n)[:, None, None, None]
    p = x.permute(0, 2, 3, 1)[images, rows, cols].permute(0, 1, 4, 2, 3)  # (N, K, C, p, p)
    if color_drop:
        keep = torch.randint(0, c, (n, k), generator=generator)
        dropped = torch.arange(c) != keep[..., None]  # (N, K, C)
        noise = torch.randn(p.shape, generator=generator, dtype=p.dtype) * noise_std
        p = torch.where(dropped[..., None, None], noise, p)
    return p.contiguous()
