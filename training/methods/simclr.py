"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020), https://arxiv.org/abs/2002.05709."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import SimCLRProjectionHead
from zoo.training.losses import NTXentLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class SimCLRConfig(MethodConfig):
    temperature: float = 0.5
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 128
    proj_layers: int = 2
    #: BN in the projector (SimCLR v2, solo-learn, lightly); v1 had none.
    proj_batch_norm: bool = True
    #: negatives from every rank, with gradients (SimCLR's "global" negatives).
    gather_distributed: bool = True


@register_method
class SimCLR(Method):
    """Two views of each image are pulled together and pushed away from all other views of
    the batch: ``NT-Xent(g(f(x1)), g(f(x2)))``."""

    name = "simclr"
    Config = SimCLRConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: SimCLRConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.projection = SimCLRProjectionHead(
            embed_dim, config.proj_hidden_dim, config.proj_out_dim, config.proj_layers, config.proj_batch_norm
        )
        self.loss = NTXentLoss(config.temperature, gather_distributed=config.gather_distributed)

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"SimCLR takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        return {"loss": self.loss(self.projection(h0), self.projection(h1))}
