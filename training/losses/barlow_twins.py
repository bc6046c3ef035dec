"""Barlow Twins' redundancy-reduction loss."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.losses.checks import global_batch
from zoo.training.precision import full_precision


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins (Zbontar et al. 2021, eq. 1-2):

        "L_BT = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2 ...
         C_ij = sum_b z^A_{b,i} z^B_{b,j} / (sqrt(sum_b (z^A_{b,i})^2) sqrt(sum_b (z^B_{b,j})^2))"

    with each embedding dimension standardised over the batch first, so C is the
    cross-correlation matrix.

    Args:
        lambda_: weight of the off-diagonal (redundancy) term; paper 5e-3, code 0.0051.
        gather_distributed: compute C over the global batch. Every rank then computes the
            same loss from all ranks' embeddings (gathered with gradients); the gather's
            backward sums the world-size identical contributions and DDP averages them, so
            gradients equal one process on the global batch.

    Shapes: ``forward(z0, z1)`` with both (N, D), N > 1; returns a scalar.
    """

    def __init__(self, lambda_: float = 0.0051, gather_distributed: bool = False) -> None:
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"lambda_ must be >= 0, got {lambda_}")
        self.lambda_ = lambda_
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(self, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        z0, z1 = global_batch(z0, z1, gather=self.gather_distributed, loss="Barlow Twins")
        c = _standardize(z0.float()).T @ _standardize(z1.float()) / len(z0)
        diag = torch.diagonal(c)
        on_diag = (diag - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - diag.pow(2).sum()
        return on_diag + self.lambda_ * off_diag


def _standardize(z: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit (biased) standard deviation per dimension over the batch, as the
    reference code's ``BatchNorm1d(affine=False)``."""
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)
