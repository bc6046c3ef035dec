"""The supervised contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.distributed import gather_no_grad, gather_with_grad, rank
from zoo.training.precision import full_precision


class SupConLoss(nn.Module):
    """SupCon (Khosla et al. 2020, eq. 2, the "L^sup_out" form the paper recommends):

        "L = sum_{i in I} -1/|P(i)| sum_{p in P(i)}
             log exp(z_i . z_p / tau) / sum_{a in A(i)} exp(z_i . z_a / tau)"

    over the 2N views of a batch (``I``), ``A(i)`` every view but i, ``P(i)`` the views in A(i)
    with i's label; averaged over anchors here. With every label distinct, P(i) is the other
    view of the same image and this is SimCLR's NT-Xent. Labels are human labels: a
    supervised upper bound, not self-supervised learning.

    With ``gather_distributed=True`` (under torch.distributed) the candidates ``A(i)`` and
    positives are the views of every rank, gathered *with* gradients (labels without), and
    this rank's 2N views are the anchors, as :class:`NTXentLoss`: the loss and its gradients
    equal those of one process over the global batch. In one process it changes nothing.

    Upstream SupContrast (HobbitLong/SupContrast losses.py) multiplies the loss by
    ``temperature / base_temperature`` (base 0.07: x1.43 at tau = 0.1); we do not, so our
    loss is the paper's eq. 2 averaged over anchors (under SGD the factor acts as a larger
    learning rate).

    Args:
        temperature: tau (0.1 in the paper).
        gather_distributed: use every rank's views as candidates and positives.

    Shapes: ``forward(z0, z1, labels)`` with z0, z1 (N, D) the two views' projections (L2-
    normalised here) and labels (N,); returns a scalar.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(self, z0: torch.Tensor, z1: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if z0.shape != z1.shape or z0.ndim != 2 or labels.shape != z0.shape[:1]:
            raise ValueError(
                f"expected z0, z1 (N, D) and labels (N,), got {tuple(z0.shape)}, {tuple(z1.shape)},"
                f" {tuple(labels.shape)}"
            )
        n = len(z0)
        z0, z1 = F.normalize(z0, dim=1), F.normalize(z1, dim=1)
        if self.gather_distributed:
            all0, all1, all_labels = gather_with_grad(z0), gather_with_grad(z1), gather_no_grad(labels)
            offset = rank() * n
        else:
            all0, all1, all_labels, offset = z0, z1, labels, 0
        total = len(all0)
        # Rows: this rank's 2n anchors; columns: every rank's 2 * total views.
        anchors, candidates = torch.cat([z0, z1]), torch.cat([all0, all1])
        y_anchor, y_candidate = torch.cat([labels, labels]), torch.cat([all_labels, all_labels])
        local = torch.arange(n, device=z0.device) + offset
        rows = torch.arange(2 * n, device=z0.device)
        own = torch.zeros(2 * n, 2 * total, dtype=torch.bool, device=z0.device)
        own[rows, torch.cat([local, local + total])] = True  # an anchor is never its own candidate
        logits = (anchors @ candidates.T / self.temperature).masked_fill(own, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positives = (y_anchor.unsqueeze(1) == y_candidate.unsqueeze(0)) & ~own  # always holds the other view
        mean_log_prob = log_prob.masked_fill(~positives, 0).sum(1) / positives.sum(1)
        return -mean_log_prob.mean()
