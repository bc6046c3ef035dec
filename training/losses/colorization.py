"""Colorization's class-rebalanced multinomial cross-entropy (Zhang, Isola & Efros 2016),
https://arxiv.org/abs/1603.08511."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class ColorizationLoss(nn.Module):
    """Eq. 2 of the paper: per pixel, the cross-entropy between the soft-encoded true colour
    ``Z`` and the predicted distribution over the Q ab bins, weighted by ``v(Z) = w[argmax_q Z_q]``
    (the rebalancing weight of the pixel's nearest bin); averaged over pixels:

        L = -1/HW sum_{h,w} v(Z_hw) sum_q Z_hwq log softmax(logits)_hwq

    Args:
        weights: (Q,) class-rebalancing weights (:func:`zoo.training.pretext.color.rebalance_weights`);
            all ones = no rebalancing.

    Shapes: ``logits`` and ``target`` (N, Q, H, W); returns a scalar.
    """

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights.float().clone())

    @full_precision
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape or logits.shape[1] != len(self.weights):
            raise ValueError(
                f"expected logits and target (N, {len(self.weights)}, H, W), got {tuple(logits.shape)}"
                f" and {tuple(target.shape)}"
            )
        ce = -(target * F.log_softmax(logits, dim=1)).sum(1)  # (N, H, W)
        v = self.weights.float()[target.argmax(1)]
        return (v * ce).mean()
