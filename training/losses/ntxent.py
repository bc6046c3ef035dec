"""NT-Xent, SimCLR's contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.distributed import gather_with_grad, rank
from zoo.training.losses.checks import check_pair
from zoo.training.precision import full_precision


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy (Chen et al. 2020, eq. 1):

        "l(i, j) = -log exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)
        ... The final loss is computed across all positive pairs, both (i, j) and (j, i)."

    Each of the 2N views has its other view as positive and the 2N - 2 other views as
    negatives; ``sim`` is cosine similarity. With ``gather_distributed=True`` the negatives
    are the views of every rank, gathered *with* gradients, so the loss and its gradients
    equal those of one process over the global batch.

    A ``memory`` (K, D) adds K negatives to every anchor, no gradient through them: SimCLR v2
    (Chen, Kornblith, Swersky, Norouzi & Hinton 2020, sec. 2) "incorporate[s] the memory
    mechanism from MoCo, which designates a memory network (with a moving average of weights
    for stabilization) whose output will be buffered as negative examples":

        l(i, j) = -log exp(s_ij / tau) / (sum_{k != i} exp(s_ik / tau) + sum_m exp(s_im / tau))

    With an empty memory it is NT-Xent exactly. The memory is the same on every rank (a
    :class:`~zoo.training.queue.FeatureQueue` enqueues every rank's keys).

    Args:
        temperature: tau (SimCLR: 0.1 at batch 4096 on ImageNet; 0.5 on CIFAR).
        gather_distributed: use every rank's views as negatives.

    Shapes: ``forward(z0, z1, memory=None)`` with z0, z1 (N, D), the two views' projections,
    row i of each from the same image, and memory (K, D); returns a scalar.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 1e-8:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(self, z0: torch.Tensor, z1: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        check_pair(z0, z1)
        if memory is not None and (memory.ndim != 2 or memory.shape[1] != z0.shape[1]):
            raise ValueError(f"expected a memory (K, {z0.shape[1]}), got {tuple(memory.shape)}")
        n = len(z0)
        z0, z1 = F.normalize(z0.float(), dim=1), F.normalize(z1.float(), dim=1)
        if self.gather_distributed:
            all0, all1 = gather_with_grad(z0), gather_with_grad(z1)
            offset = rank() * n
        else:
            all0, all1, offset = z0, z1, 0
        total = len(all0)
        # Rows: this rank's 2n anchors; columns: every rank's 2 * total views.
        anchors = torch.cat([z0, z1])
        candidates = torch.cat([all0, all1])
        logits = anchors @ candidates.T / self.temperature
        local = torch.arange(n, device=z0.device) + offset
        # An anchor is never its own negative.
        self_idx = torch.cat([local, local + total])
        logits[torch.arange(2 * n, device=z0.device), self_idx] = float("-inf")
        positives = torch.cat([local + total, local])
        if memory is not None:
            extra = anchors @ F.normalize(memory.detach().float(), dim=1).T / self.temperature
            logits = torch.cat([logits, extra], 1)
        return F.cross_entropy(logits, positives)
