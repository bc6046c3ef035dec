"""BYOL (Grill et al. 2020), https://arxiv.org/abs/2006.07733."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import BYOLPredictionHead, BYOLProjectionHead
from zoo.training.losses import BYOLLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class BYOLConfig(MethodConfig):
    proj_hidden_dim: int = 4096
    proj_out_dim: int = 256
    pred_hidden_dim: int = 4096
    #: tau_base (0.996 at batch 4096; small-batch recipes use 0.99) rising to 1.
    base_momentum: float = 0.996
    final_momentum: float = 1.0


@register_method
class BYOL(Method):
    """An online network (backbone, projector, predictor) predicts the projection of the
    other view by a target network, the online one's exponential moving average. The loss
    is symmetrised: ``L(q(z1), z2') + L(q(z2), z1')`` (the paper's L + L~).

    Unlike the authors' code, which runs each view through the networks on its own (BN
    statistics per view), the two views go through each backbone as one batch here.
    """

    name = "byol"
    momentum_backbone_name = "target_backbone"
    Config = BYOLConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: BYOLConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.projection = BYOLProjectionHead(embed_dim, config.proj_hidden_dim, config.proj_out_dim)
        self.prediction = BYOLPredictionHead(config.proj_out_dim, config.pred_hidden_dim, config.proj_out_dim)
        self.keep_momentum_copies({"projection": "target_projection"})
        self.loss = BYOLLoss()

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"BYOL takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        p0, p1 = self.prediction(self.projection(h0)), self.prediction(self.projection(h1))
        with torch.no_grad():
            t0, t1 = (self.target_projection(h) for h in forward_crops(self.target_backbone, views))
        loss = self.loss(p0, t1) + self.loss(p1, t0)
        return {"loss": loss}

    def logged(self) -> dict[str, float]:
        return {"momentum": self.momentum}
