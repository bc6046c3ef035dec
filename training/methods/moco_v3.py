"""MoCo v3 (Chen, Xie & He 2021), https://arxiv.org/abs/2104.02057."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import MoCoV3PredictionHead, MoCoV3ProjectionHead
from zoo.training.losses import InfoNCELoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class MoCoV3Config(MethodConfig):
    #: tau: 1.0 for ResNet-50 in the paper, 0.2 for ViTs.
    temperature: float = 1.0
    proj_hidden_dim: int = 4096
    proj_out_dim: int = 256
    pred_hidden_dim: int = 4096
    base_momentum: float = 0.99
    final_momentum: float = 1.0
    gather_distributed: bool = True


@register_method
class MoCoV3(Method):
    """No queue: the keys of the (global) batch are the negatives, and the query goes
    through a predictor, "ctr(q1, k2) + ctr(q2, k1)" with the loss scaled by 2 tau
    (Algorithm 1). The momentum encoder follows a cosine schedule to 1."""

    name = "moco_v3"
    momentum_backbone_name = "key_backbone"
    Config = MoCoV3Config

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MoCoV3Config) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        self.projection = MoCoV3ProjectionHead(embed_dim, c.proj_hidden_dim, c.proj_out_dim)
        self.prediction = MoCoV3PredictionHead(c.proj_out_dim, c.pred_hidden_dim, c.proj_out_dim)
        self.keep_momentum_copies({"projection": "key_projection"})
        self.loss = InfoNCELoss(
            c.temperature, scale_by_temperature=True, gather_distributed=c.gather_distributed
        )

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"MoCo v3 takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        q0, q1 = self.prediction(self.projection(h0)), self.prediction(self.projection(h1))
        with torch.no_grad():
            k0, k1 = (self.key_projection(h) for h in forward_crops(self.key_backbone, views))
        return {"loss": self.loss(q0, k1) + self.loss(q1, k0)}
