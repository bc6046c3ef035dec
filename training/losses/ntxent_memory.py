"""NT-Xent with a memory of extra negatives (SimCLR v2's MoCo-style memory)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class NTXentMemoryLoss(nn.Module):
    """SimCLR v2 (Chen, Kornblith, Swersky, Norouzi & Hinton 2020, sec. 2): "we also
    incorporate the memory mechanism from MoCo, which designates a memory network (with a
    moving average of weights for stabilization) whose output will be buffered as negative
    examples". NT-Xent (:class:`NTXentLoss`'s 2N anchors, each with its other view as the
    positive and the other 2N - 2 views as negatives) with the memory's K embeddings as
    further negatives of every anchor:

        l(i, j) = -log exp(s_ij / tau) / (sum_{k != i} exp(s_ik / tau) + sum_m exp(s_im / tau))

    With an empty memory it is NT-Xent exactly. Single-process (the memory already holds
    every rank's keys).

    Shapes: ``forward(z0 (N, D), z1 (N, D), memory (K, D))``; all L2-normalised here.
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    @full_precision
    def forward(self, z0: torch.Tensor, z1: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        if z0.shape != z1.shape or z0.ndim != 2 or memory.ndim != 2 or memory.shape[1] != z0.shape[1]:
            raise ValueError(
                f"expected z0, z1 (N, D) and memory (K, D), got {tuple(z0.shape)}, {tuple(z1.shape)},"
                f" {tuple(memory.shape)}"
            )
        n = len(z0)
        z = F.normalize(torch.cat([z0, z1]), dim=1)
        batch = z @ z.T / self.temperature
        batch = batch.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        extra = z @ F.normalize(memory.detach(), dim=1).T / self.temperature
        logits = torch.cat([batch, extra], 1)
        positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
        return F.cross_entropy(logits, positives)
