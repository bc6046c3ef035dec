"""SimSiam's negative cosine similarity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class SimSiamLoss(nn.Module):
    """SimSiam (Chen & He 2021, eq. 1 and 3): "D(p1, z2) = - p1/||p1|| . z2/||z2|| ... The
    stop-gradient operation: D(p1, stopgrad(z2))". This module is D with the stop-gradient;
    the symmetric loss is ``(D(p1, z2) + D(p2, z1)) / 2``.

    Shapes: ``forward(prediction, target)`` with both (N, D); returns a scalar in [-1, 1].
    """

    @full_precision
    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
        return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1).mean()
