"""Jigsaw puzzles (Noroozi & Favaro 2016): 3x3 tiles, shuffled by a permutation from a fixed
set, and the index of that permutation as the label.

The permutation set matters: permutations that differ in few positions make the task
ambiguous, so the paper picks them greedily for large Hamming distance. Its algorithm 1 (and
the authors' ``select_permutations``) adds the permutation whose *mean* distance to those
already chosen is largest; :func:`permutation_set` instead adds one whose *minimum* distance
is the largest possible (max-min; ties broken at random from a seed), over all 9!
permutations of the 3x3 grid: it targets the minimum distance between any two directly.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
from zoo.training.pretext import PretextSizeError


@functools.lru_cache(maxsize=4)
def _all_permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)


@functools.lru_cache(maxsize=8)
def permutation_set(size: int, cells: int = 9, seed: int = 0) -> torch.Tensor:
    """``size`` permutations of ``cells`` positions, int64 (size, cells), chosen greedily for
    maximal minimum Hamming distance: the first at random, then each one a permutation whose
    minimum distance to the chosen ones is the largest over all ``cells!`` permutations.

    Deterministic for a given ``(size, cells, seed)`` (~2 s for 1000 of 9 cells)."""
    if cells < 2 or cells > 10:
        raise ValueError(f"cells must be in 2..10, got {cells}")
    perms = _all_permutations(cells)
    if not 1 <= size <= len(perms):
        raise ValueError(f"a set of {cells}-cell permutations holds 1..{len(perms)}, got size {size}")
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(perms)))]
    min_dist = (perms != perms[chosen[0]]).sum(1)
    for _ in range(size - 1):
        best = np.flatnonzero(min_dist == min_dist.max())
        j = int(best[rng.integers(len(best))])
        chosen.append(j)
        np.minimum(min_dist, (perms != perms[j]).sum(1), out=min_dist)
    return torch.from_numpy(perms[chosen].astype(np.int64))


def check_jigsaw_size(image_size: int, grid: int, tile: int) -> None:
    """Raise :class:`PretextSizeError` unless a ``grid`` x ``grid`` puzzle of ``tile`` px
    tiles fits an ``image_size`` px image."""
    if grid < 2 or tile < 1:
        raise PretextSizeError(f"jigsaw: grid must be >= 2 and tile >= 1, got grid {grid}, tile {tile}")
    if image_size < grid * tile:
        raise PretextSizeError(
            f"jigsaw: a {grid}x{grid} grid of {tile} px tiles needs images of at least {grid * tile} px,"
            f" got {image_size} px; lower method.tile_size or raise augment.size"
        )


def jigsaw_tiles(
    x: torch.Tensor,
    permutations: torch.Tensor,
    generator: torch.Generator,
    *,
    grid: int = 3,
    tile: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled puzzles of the square batch ``x`` (N, C, S, S).

    The central ``grid * (S // grid)`` px square is cut into ``grid`` x ``grid`` cells; from
    each cell a ``tile`` px tile is taken at a random offset (the paper's gaps and jitter
    between tiles, against matching edges). Each image draws a permutation index ``label``;
    position ``k`` of its puzzle holds tile ``permutations[label, k]`` (tiles numbered row by
    row). Returns ``(tiles (N, grid * grid, C, tile, tile), labels (N,))``.
    """
    n, _, h, w = x.shape
    if h != w:
        raise ValueError(f"jigsaw needs square images, got {h}x{w}")
    check_jigsaw_size(h, grid, tile)
    k = grid * grid
    if permutations.shape[1] != k:
        raise ValueError(f"permutations have {permutations.shape[1]} positions, the grid has {k}")
    cell = h // grid
    start = (h - grid * cell) // 2
    gy, gx = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    top = start + gy.flatten() * cell + torch.randint(0, cell - tile + 1, (n, k), generator=generator)
    left = start + gx.flatten() * cell + torch.randint(0, cell - tile + 1, (n, k), generator=generator)
    r = torch.arange(tile)
    rows = (top[:, :, None] + r)[:, :, :, None]  # (N, K, t, 1)
    cols = (left[:, :, None] + r)[:, :, None, :]  # (N, K, 1, t)
    batch = torch.arange(n)[:, None, None, None]
    tiles = x.permute(0, 2, 3, 1)[batch, rows, cols]  # (N, K, t, t, C)
    tiles = tiles.permute(0, 1, 4, 2, 3)
    labels = torch.randint(0, len(permutations), (n,), generator=generator)
    order = permutations[labels]  # (N, K): position -> tile
    shuffled = tiles[torch.arange(n)[:, None], order]
    return shuffled.contiguous(), labels


def normalize_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each tile to zero mean and unit variance over its pixels and channels together (the
    paper normalises tiles independently so their statistics cannot be matched). The authors'
    loader normalises each channel of a tile on its own, which also removes a tile's colour
    balance, a cue for matching neighbours that this version leaves in; it also adds per-channel
    intensity jitter and 30% grey images, which zoo's views do not (the shipped weights were
    trained so)."""
    dims = tuple(range(tiles.ndim - 3, tiles.ndim))
    mean = tiles.mean(dim=dims, keepdim=True)
    std = tiles.std(dim=dims, keepdim=True)
    return (tiles - mean) / (std + eps)
