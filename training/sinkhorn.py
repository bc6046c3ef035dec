"""Sinkhorn-Knopp: balanced soft assignments of samples to prototypes (SwAV, DINO-style)."""

from __future__ import annotations

import torch
from zoo.training.distributed import all_reduce_max, all_reduce_sum, world_size


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, *, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes ``Q`` (B, K) for prototype scores (B, K), as in SwAV (Caron et al. 2020, eq. 3).

    "Q* = Diag(u) exp(C^T Z / epsilon) Diag(v), where u and v are renormalization vectors
    ... computed using a small number of matrix multiplications using the iterative
    Sinkhorn-Knopp algorithm." The result is the transport plan whose every row (sample)
    sums to 1 and every column (prototype) sums to B / K: each prototype is used equally
    often within the batch, which is what prevents collapse. Under DDP the batch is the
    global one (column sums are all-reduced). ``iterations`` alternations are done, ending
    with the row normalisation, so row sums are exact and column sums converge.
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    # Subtracting the max keeps exp() finite; it cancels in the normalisations, provided every
    # rank subtracts the same one (the global max): the sums below mix the ranks' values.
    scores = scores.float()
    q = torch.exp((scores - all_reduce_max(scores.max())) / epsilon).T  # (K, B)
    batch = q.shape[1] * world_size()
    prototypes = q.shape[0]
    total = all_reduce_sum(q.sum())
    q /= total
    for _ in range(iterations):
        rows = all_reduce_sum(q.sum(dim=1, keepdim=True))
        q /= rows * prototypes  # each prototype: total mass 1/K
        q /= q.sum(dim=0, keepdim=True) * batch  # each sample: total mass 1/B
    return (q * batch).T  # (B, K), rows sum to 1
