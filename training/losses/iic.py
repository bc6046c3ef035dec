"""IIC's mutual-information objective between the cluster assignments of paired views."""

from __future__ import annotations

import sys

import torch
from torch import nn
from zoo.training.losses.checks import check_pair
from zoo.training.precision import full_precision

_EPS = sys.float_info.epsilon


class IICLoss(nn.Module):
    """Invariant Information Clustering (Ji, Henriques & Vedaldi 2019, eq. 1-3):

        "P = 1/n sum_i Phi(x_i) . Phi(x'_i)^T ... symmetrised by (P + P^T) / 2 ...
         I(z, z') = sum_c sum_c' P_cc' log P_cc' / (P_c P_c')"

    the mutual information of the joint distribution of the two views' cluster assignments
    (soft, from softmax outputs). The loss is ``-I``, in their code's form with ``lamb``
    weighting the marginals' entropies (1 = plain mutual information); probabilities under
    machine epsilon are clamped to it, as there.

    Shapes: ``forward(p0, p1)`` with both (N, C) probability rows (softmax outputs); returns
    a scalar, at least ``-log C``.
    """

    def __init__(self, lamb: float = 1.0) -> None:
        super().__init__()
        self.lamb = lamb

    @full_precision
    def forward(self, p0: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
        check_pair(p0, p1, "(N, C)")
        joint = p0.T @ p1 / len(p0)
        joint = (joint + joint.T) / 2
        joint = joint.clamp(min=_EPS)
        pi = joint.sum(1, keepdim=True)
        pj = joint.sum(0, keepdim=True)
        return -(joint * (joint.log() - self.lamb * pi.log() - self.lamb * pj.log())).sum()
