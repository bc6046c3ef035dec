"""Colorization targets (Zhang, Isola & Efros 2016): CIE Lab, quantised ab, soft encoding,
the ab prior of a training set and the class-rebalancing weights.

The network sees the lightness L and predicts a distribution over Q quantised ab colours:
the ab plane cut into a grid of ``grid`` (10) units, keeping the bins that sRGB colours can
reach (the paper has 313 "in-gamut" bins, which it took from ImageNet; here they come
from a dense sampling of the sRGB cube, 64 levels per channel: 261 bins). Targets are
soft-encoded over the 5 nearest bins (Gaussian, sigma 5); each pixel's loss is weighted by
``w(q*)`` of its nearest bin, where ``w ∝ ((1 - lambda) p~ + lambda / Q)^-1`` with ``p~``
the training set's ab distribution smoothed by a Gaussian (sigma 5), normalised so
``sum_q p~_q w_q = 1`` (eq. 4): without it the predictions collapse to the desaturated
colours that dominate natural images.
"""

from __future__ import annotations

import functools

import torch

from zoo.models.lab_split import SRGB_TO_XYZ, rgb_to_lab

# The RGB -> Lab conversion is zoo.models.lab_split's, shared with CMC's views and encoder.


@functools.lru_cache(maxsize=4)
def ab_bins(grid: int = 10, levels: int = 64) -> torch.Tensor:
    """Centres (Q, 2) of the ``grid``-unit ab bins reached by sRGB colours (``levels`` per
    channel of the sRGB cube are converted; a bin is kept when a colour falls into it)."""
    v = torch.linspace(0, 1, levels)
    cube = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(3, -1, 1)
    ab = rgb_to_lab(cube)[1:].reshape(2, -1).T
    cells = torch.unique(torch.round(ab / grid).long(), dim=0)
    return (cells * grid).float()


def _sq_dist(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    # ab (..., 2) against bins (Q, 2) -> (..., Q), as |x|^2 - 2 x.c + |c|^2 (no (..., Q, 2) temporary)
    d = (ab * ab).sum(-1, keepdim=True) - 2 * ab @ bins.T.to(ab.dtype) + (bins * bins).sum(-1).to(ab.dtype)
    return d.clamp_min(0)


def nearest_bin(ab: torch.Tensor, bins: torch.Tensor, *, chunk: int = 65536) -> torch.Tensor:
    """Index of the nearest bin of each ab value; ``ab`` (N, 2, H, W) -> (N, H, W) int64
    (``chunk`` pixels at a time, so a batch of photos does not hold a (pixels, Q) matrix)."""
    flat = ab.movedim(1, -1).reshape(-1, 2)
    out = torch.cat([_sq_dist(part, bins).argmin(-1) for part in flat.split(chunk)])
    return out.reshape(ab.shape[0], *ab.shape[2:])


def quantize(ab: torch.Tensor, bins: torch.Tensor, grid: int = 10) -> torch.Tensor:
    """:func:`nearest_bin` for bins on a ``grid``-unit lattice, by table look-up: a pixel's
    lattice cell is its nearest lattice point, so when that cell is a bin it is the nearest
    bin (exact); cells outside the gamut map to the bin nearest to their centre (what sRGB
    rounding reaches there is a sliver). ~50x faster: the epoch pass's ab histogram."""
    cells = torch.round(bins / grid).long()
    r = int(cells.abs().max()) + 2
    axis = torch.arange(-r, r + 1, dtype=bins.dtype, device=bins.device) * grid
    centres = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    table = _sq_dist(centres, bins).argmin(-1).reshape(2 * r + 1, 2 * r + 1).to(ab.device)
    idx = torch.round(ab.float() / grid).long().clamp_(-r, r) + r  # (N, 2, H, W)
    return table[idx[:, 0], idx[:, 1]]


def soft_encode(
    ab: torch.Tensor, bins: torch.Tensor, *, neighbours: int = 5, sigma: float = 5.0
) -> torch.Tensor:
    """The paper's soft targets: each pixel's ``neighbours`` nearest bins weighted by a
    Gaussian of the distance (sigma 5), normalised; ``ab`` (N, 2, H, W) -> (N, Q, H, W)."""
    d2 = _sq_dist(ab.float().movedim(1, -1), bins)  # (N, H, W, Q)
    near, idx = d2.topk(neighbours, dim=-1, largest=False)
    weights = torch.softmax(-near / (2 * sigma**2), dim=-1)
    target = torch.zeros_like(d2).scatter_(-1, idx, weights)
    return target.movedim(-1, 1)


def ab_histogram(
    images: torch.Tensor, bins: torch.Tensor, *, grid: int = 10, batch_size: int = 2048
) -> torch.Tensor:
    """Counts (Q,) of the pixels of uint8 RGB ``images`` (N, 3, H, W) nearest to each bin."""
    counts = torch.zeros(len(bins), dtype=torch.float64)
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size]).float() / 255
        q = quantize(rgb_to_lab(x)[:, 1:], bins, grid)
        counts += torch.bincount(q.flatten(), minlength=len(bins)).double()
    return counts


def rebalance_weights(
    counts: torch.Tensor, bins: torch.Tensor, *, lam: float = 0.5, sigma: float = 5.0
) -> torch.Tensor:
    """Class-rebalancing weights (Q,) from ab ``counts`` (eq. 4): ``p`` = counts normalised,
    smoothed by a Gaussian of ``sigma`` ab units over the bin centres (``sigma=0``: none),
    ``w ∝ ((1 - lam) p~ + lam / Q)^-1``, scaled so ``sum_q p~_q w_q = 1``."""
    if not 0 <= lam <= 1:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    counts = counts.to(bins.device, torch.float64)  # the epoch pass's counts come from the CPU
    p = counts / counts.sum().clamp_min(1e-12)
    if sigma > 0:
        kernel = torch.exp(-_sq_dist(bins.double(), bins.double()) / (2 * sigma**2))
        p = kernel @ p
        p = p / p.sum()
    w = 1.0 / ((1 - lam) * p + lam / len(p))
    w = w / (p * w).sum()
    return w.float()


def lightness_gray(rgb: torch.Tensor) -> torch.Tensor:
    """The grey image with the same CIE lightness L as ``rgb`` (sRGB in [0, 1], (N, 3, H, W)):
    all three channels set to the sRGB value whose luminance is the pixel's Y. This is how a
    colour encoder is shown "only L": rgb_to_lab of the result has the input's L and a = b = 0."""
    rgb = rgb.float().clamp(0, 1)
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    y = torch.einsum("j,njhw->nhw", linear.new_tensor(SRGB_TO_XYZ[1]), linear).clamp(0, 1)[:, None]
    v = torch.where(y > 0.0031308, 1.055 * y.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * y)
    return v.expand(-1, 3, -1, -1).contiguous()
