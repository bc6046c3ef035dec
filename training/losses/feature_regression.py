"""Feature-regression distillation: the plain baseline next to CRD."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.losses.checks import check_pair
from zoo.training.precision import full_precision


class FeatureRegressionLoss(nn.Module):
    """The squared distance between the L2-normalised regressed student features and the
    L2-normalised teacher features, ``|| r(h_s)/||r(h_s)|| - h_t/||h_t|| ||^2``, averaged over
    the batch: the feature-regression baseline CRD is compared with (FitNets' hint loss,
    Romero et al. 2015, here on the final embedding). The teacher is detached.

    Shapes: ``forward(student (N, D), teacher (N, D))``; returns a scalar in [0, 4].
    """

    @full_precision
    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        check_pair(student, teacher)
        s, t = F.normalize(student, dim=1), F.normalize(teacher.detach(), dim=1)
        return (s - t).pow(2).sum(1).mean()
