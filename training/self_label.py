"""Self-labelling with an equipartition constraint (SeLa, Asano, Rupprecht & Vedaldi 2020).

Over the whole training split, not a batch: labels Q maximise ``<Q, log P>`` subject to
every cluster receiving the same number of images, relaxed to an entropy-regularised
transport problem solved by Sinkhorn-Knopp (sec. 3.1, eq. 6-8): "Q = diag(alpha) P^lambda
diag(beta)" with alpha and beta scaled alternately until the column marginals converge, then
each image takes its most probable cluster under Q. Unlike :mod:`zoo.training.sinkhorn`
(SwAV's soft codes of one batch, all-reduced across ranks), this runs on every rank over the
same full set of predictions, so no collective is needed.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def equipartition_labels(
    logits: torch.Tensor, *, lam: float = 25.0, tolerance: float = 0.1, max_iterations: int = 1000
) -> torch.Tensor:
    """Hard labels (N,) for the predictions ``logits`` (N, K) under the equipartition
    constraint. ``lam``: the inverse regularisation (P raised to ``lam``; their code: 25).
    Iterates as their ``optimize_L_sk``: r = 1/K / (P^lam c), c = 1/N / (r P^lam), until
    ``sum |c_old / c - 1| < tolerance``."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"expected logits (N, K >= 2), got {tuple(logits.shape)}")
    if lam <= 0:
        raise ValueError(f"lam must be positive, got {lam}")
    n, k = logits.shape
    # P^lam in log space, shifted per row (the shift is absorbed by c).
    log_p = torch.log_softmax(logits.double(), dim=1) * lam
    p = torch.exp(log_p - log_p.max(1, keepdim=True).values).T  # (K, N)
    r = torch.full((k,), 1.0 / k, dtype=torch.float64)
    c = torch.full((n,), 1.0 / n, dtype=torch.float64)
    for _ in range(max_iterations):
        r = (1.0 / k) / (p @ c)
        c_new = (1.0 / n) / (r @ p)
        err = torch.nansum(torch.abs(c / c_new - 1))
        c = c_new
        if err < tolerance:
            break
    q = p * c.unsqueeze(0) * r.unsqueeze(1)  # (K, N)
    return q.argmax(0)
