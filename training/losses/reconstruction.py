"""Pixel reconstruction losses: the context encoder's masked L2 (Pathak et al. 2016,
https://arxiv.org/abs/1604.07379) and super-resolution's L2."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.precision import full_precision


class MaskedL2Loss(nn.Module):
    """Mean squared error over the pixels where ``mask`` is True (the removed region; all
    pixels when ``mask`` is None), averaged over pixels and channels.

    The context encoder's reconstruction term, ``|| M ⊙ (x - F((1 - M) ⊙ x)) ||²``,
    normalised by the number of masked values so it does not depend on the mask's size.

    Shapes: ``pred`` and ``target`` (N, C, H, W), ``mask`` (N, 1, H, W) bool or None.
    """

    @full_precision
    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        sq = (pred - target) ** 2
        if mask is None:
            return sq.mean()
        m = mask.to(sq.dtype).expand_as(sq)
        return (sq * m).sum() / m.sum().clamp_min(1.0)
