"""SwAV's swapped-prediction loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision
from zoo.training.sinkhorn import sinkhorn_knopp


class SwAVLoss(nn.Module):
    """SwAV (Caron et al. 2020, eq. 1-2): "we predict the code of a view from the
    representation of another view",

        "L(z_t, z_s) = l(z_t, q_s) + l(z_s, q_t),  l(z_t, q_s) = - sum_k q_s^(k) log p_t^(k),
         p_t^(k) = exp(z_t^T c_k / tau) / sum_k' exp(z_t^T c_k' / tau)"

    The codes ``q`` of the high-resolution (global) crops come from Sinkhorn-Knopp on their
    prototype scores (no gradient); every other crop, local ones included, predicts them.

    Args:
        temperature: tau (0.1). sinkhorn_epsilon: 0.05. sinkhorn_iterations: 3.

    Shapes: ``forward(high_res, low_res, queue_scores=None)`` with ``high_res`` a list of
    the global crops' prototype scores (N, K), ``low_res`` a list of the local crops'
    (M, K), and optionally per global crop the scores of queued past embeddings (Q, K),
    which join the Sinkhorn batch (SwAV's queue for small batches). Returns a scalar.
    """

    def __init__(
        self, temperature: float = 0.1, sinkhorn_epsilon: float = 0.05, sinkhorn_iterations: int = 3
    ) -> None:
        super().__init__()
        if temperature <= 0 or sinkhorn_epsilon <= 0 or sinkhorn_iterations < 1:
            raise ValueError("temperature and sinkhorn_epsilon must be > 0, sinkhorn_iterations >= 1")
        self.temperature = temperature
        self.sinkhorn_epsilon = sinkhorn_epsilon
        self.sinkhorn_iterations = sinkhorn_iterations

    def codes(self, scores: torch.Tensor, queue_scores: torch.Tensor | None = None) -> torch.Tensor:
        """Sinkhorn codes (N, K) of ``scores``, computed together with the queue's."""
        batch = scores.detach()
        if queue_scores is not None:
            batch = torch.cat([batch, queue_scores.detach()])
        q = sinkhorn_knopp(batch, epsilon=self.sinkhorn_epsilon, iterations=self.sinkhorn_iterations)
        return q[: len(scores)]

    def subloss(self, scores: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """-sum_k q^(k) log p^(k), averaged over the batch."""
        return -(codes * F.log_softmax(scores.float() / self.temperature, dim=1)).sum(1).mean()

    @full_precision
    def forward(
        self,
        high_res: list[torch.Tensor],
        low_res: list[torch.Tensor],
        queue_scores: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if len(high_res) < 2:
            raise ValueError("SwAV needs at least 2 high-resolution crops")
        views = high_res + low_res
        total = 0.0
        for i, scores in enumerate(high_res):
            q = self.codes(scores.float(), None if queue_scores is None else queue_scores[i])
            others = [self.subloss(v, q) for j, v in enumerate(views) if j != i]
            total = total + sum(others) / len(others)
        return total / len(high_res)
