"""BYOL's regression loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class BYOLLoss(nn.Module):
    """BYOL (Grill et al. 2020, eq. 2): "we define the following mean squared error between
    the normalized predictions and target projections,

        L = || q_bar - z'_bar ||^2 = 2 - 2 <q, z'> / (||q|| ||z'||)"

    averaged over the batch. The target is detached here (stop-gradient).

    Shapes: ``forward(prediction, target)`` with both (N, D); returns a scalar in [0, 4].
    """

    @full_precision
    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
        cos = F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1)
        return (2 - 2 * cos).mean()
