"""Cross-entropy over pretext labels (rotation, jigsaw permutation, patch position)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class PretextClassificationLoss(nn.Module):
    """Mean cross-entropy of ``logits`` (N, K) against integer pretext ``labels`` (N,), in fp32.

    ``accuracy(logits, labels)`` gives the task accuracy in % (what the cards report as
    rotation / jigsaw / patch-location accuracy).
    """

    @full_precision
    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits (N, K) and labels (N,), got {tuple(logits.shape)}, {tuple(labels.shape)}"
            )
        return F.cross_entropy(logits, labels)

    @staticmethod
    @torch.no_grad()
    def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) == labels).float().mean() * 100
