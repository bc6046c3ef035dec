"""The supervised contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class SupConLoss(nn.Module):
    """SupCon (Khosla et al. 2020, eq. 2, the "L^sup_out" form the paper recommends):

        "L = sum_{i in I} -1/|P(i)| sum_{p in P(i)}
             log exp(z_i . z_p / tau) / sum_{a in A(i)} exp(z_i . z_a / tau)"

    over the 2N views of a batch (``I``), ``A(i)`` every view but i, ``P(i)`` the views in A(i)
    with i's label; averaged over anchors here. With every label distinct, P(i) is the other
    view of the same image and this is SimCLR's NT-Xent. Labels are human labels: a
    supervised upper bound, not self-supervised learning.

    Args:
        temperature: tau (0.1 in the paper).

    Shapes: ``forward(z0, z1, labels)`` with z0, z1 (N, D) the two views' projections (L2-
    normalised here) and labels (N,); returns a scalar.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    @full_precision
    def forward(self, z0: torch.Tensor, z1: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if z0.shape != z1.shape or z0.ndim != 2 or labels.shape != z0.shape[:1]:
            raise ValueError(
                f"expected z0, z1 (N, D) and labels (N,), got {tuple(z0.shape)}, {tuple(z1.shape)},"
                f" {tuple(labels.shape)}"
            )
        z = F.normalize(torch.cat([z0, z1]), dim=1)
        y = torch.cat([labels, labels])
        n = len(z)
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        logits = (z @ z.T / self.temperature).masked_fill(eye, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positives = (y.unsqueeze(0) == y.unsqueeze(1)) & ~eye  # always holds the other view
        mean_log_prob = log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)
        return -mean_log_prob.mean()
