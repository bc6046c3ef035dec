"""VICReg (Bardes, Ponce & LeCun 2022), https://arxiv.org/abs/2105.04906."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import VICRegProjectionHead
from zoo.training.losses import VICRegLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class VICRegConfig(MethodConfig):
    proj_hidden_dim: int = 8192
    proj_out_dim: int = 8192
    sim_weight: float = 25.0
    var_weight: float = 25.0
    cov_weight: float = 1.0
    gather_distributed: bool = True


@register_method
class VICReg(Method):
    """Invariance between the views' embeddings, with each embedding dimension's variance
    kept above a threshold and the dimensions decorrelated (no negatives, no momentum).

    Unlike the authors' main_vicreg.py, which runs each view through the backbone on its own
    (BN statistics per view), the two views go through the backbone as one batch here.
    """

    name = "vicreg"
    Config = VICRegConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: VICRegConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        self.projection = VICRegProjectionHead(embed_dim, c.proj_hidden_dim, c.proj_out_dim)
        self.loss = VICRegLoss(
            c.sim_weight, c.var_weight, c.cov_weight, gather_distributed=c.gather_distributed
        )

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"VICReg takes 2 views, got {len(views)}")
        z0, z1 = (self.projection(h) for h in forward_crops(self.backbone, views))
        return {"loss": self.loss(z0, z1)}
