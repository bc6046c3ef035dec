"""VICReg's variance-invariance-covariance loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.losses.checks import global_batch
from zoo.training.precision import full_precision


class VICRegLoss(nn.Module):
    """VICReg (Bardes, Ponce & LeCun 2022, eq. 1-6):

        "l(Z, Z') = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]"

    with invariance ``s`` the mean squared distance between the two views' embeddings,
    variance ``v(Z) = 1/d sum_j max(0, gamma - sqrt(Var(z_j) + eps))`` (gamma = 1) and
    covariance ``c(Z) = 1/d sum_{i != j} C(Z)_ij^2``. As in the authors' main_vicreg.py, the
    variance term is averaged over the two views, ``mu [v(Z) + v(Z')] / 2``, and the covariance
    term is summed. Before this changed, ours summed the variance term too (as solo-learn does),
    so the recipes that trained with mu = 25 then set mu = 50 now, to reproduce those runs.

    Args:
        sim_weight: lambda (25). var_weight: mu (25). cov_weight: nu (1). eps: 1e-4.
        gather_distributed: variance and covariance over the global batch (gathered with
            gradients; see :class:`BarlowTwinsLoss` for why gradients then match).

    Shapes: ``forward(z0, z1)`` with both (N, D), N > 1; returns a scalar.
    """

    def __init__(
        self,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if min(sim_weight, var_weight, cov_weight) < 0 or eps <= 0:
            raise ValueError("VICReg weights must be >= 0 and eps > 0")
        self.sim_weight, self.var_weight, self.cov_weight, self.eps = sim_weight, var_weight, cov_weight, eps
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(self, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        z0, z1 = global_batch(z0, z1, gather=self.gather_distributed, loss="VICReg")
        z0, z1 = z0.float(), z1.float()
        invariance = F.mse_loss(z0, z1)
        variance = (self._variance(z0) + self._variance(z1)) / 2  # main_vicreg.py halves it
        covariance = self._covariance(z0) + self._covariance(z1)
        return self.sim_weight * invariance + self.var_weight * variance + self.cov_weight * covariance

    def _variance(self, z: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(z.var(0) + self.eps)
        return F.relu(1.0 - std).mean()

    @staticmethod
    def _covariance(z: torch.Tensor) -> torch.Tensor:
        n, d = z.shape
        z = z - z.mean(0)
        cov = z.T @ z / (n - 1)
        return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d
