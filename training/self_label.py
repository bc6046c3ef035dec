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

import math

import torch


@torch.no_grad()
def equipartition_labels(
    logits: torch.Tensor, *, lam: float = 25.0, tolerance: float = 0.1, max_iterations: int = 1000
) -> torch.Tensor:
    """Hard labels (N,) for the predictions ``logits`` (N, K) under the equipartition
    constraint. ``lam``: the inverse regularisation (P raised to ``lam``; their code: 25).
    Iterates as their ``optimize_L_sk``: r = 1/K / (P^lam c), c = 1/N / (r P^lam), until
    ``sum |c_old / c - 1| < tolerance``, in log space: with lam = 25 a cluster whose
    probability is ~e^-30 below every image's top one underflows to 0 in P^lam, and the
    linear iteration's NaNs then sent every image to cluster 0."""
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"expected logits (N, K >= 2), got {tuple(logits.shape)}")
    if lam <= 0:
        raise ValueError(f"lam must be positive, got {lam}")
    n, k = logits.shape
    log_p = (torch.log_softmax(logits.double(), dim=1) * lam).T  # log P^lam, (K, N)
    log_r = torch.full((k,), -math.log(k), dtype=torch.float64, device=logits.device)
    log_c = torch.full((n,), -math.log(n), dtype=torch.float64, device=logits.device)
    for _ in range(max_iterations):
        log_r = -math.log(k) - torch.logsumexp(log_p + log_c, dim=1)
        log_c_new = -math.log(n) - torch.logsumexp(log_p + log_r.unsqueeze(1), dim=0)
        err = torch.sum(torch.abs(torch.exp(log_c - log_c_new) - 1))
        log_c = log_c_new
        if err < tolerance:
            break
    return (log_p + log_c + log_r.unsqueeze(1)).argmax(0)
