"""SimSiam (Chen & He 2021), https://arxiv.org/abs/2011.10566."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from zoo.training.heads import SimSiamPredictionHead, SimSiamProjectionHead
from zoo.training.losses import SimSiamLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method, split_params


@dataclass(frozen=True)
class SimSiamConfig(MethodConfig):
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 2048
    pred_hidden_dim: int = 512
    #: "the lr for the predictor is fixed" (sec. 4.1): not decayed by the schedule.
    fixed_predictor_lr: bool = True


@register_method
class SimSiam(Method):
    """No negatives and no momentum encoder: a predictor and a stop-gradient,
    ``L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2``.

    Differences from the authors' main_simsiam.py: their SGD decays every parameter, where
    ours (:meth:`Method.param_groups`) excludes biases and norm layers from weight decay; and
    they run each view through the encoder on its own (BN statistics per view), where the
    two views go through the backbone as one batch here.
    """

    name = "simsiam"
    Config = SimSiamConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: SimSiamConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.projection = SimSiamProjectionHead(embed_dim, config.proj_hidden_dim, config.proj_out_dim)
        self.prediction = SimSiamPredictionHead(
            config.proj_out_dim, config.pred_hidden_dim, config.proj_out_dim
        )
        self.loss = SimSiamLoss()

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"SimSiam takes 2 views, got {len(views)}")
        z0, z1 = (self.projection(h) for h in forward_crops(self.backbone, views))
        p0, p1 = self.prediction(z0), self.prediction(z1)
        loss = (self.loss(p0, z1) + self.loss(p1, z0)) / 2
        # The std of normalised outputs: ~1/sqrt(d) when healthy, 0 at collapse (sec. 4.1).
        std = nn.functional.normalize(z0.detach().float(), dim=1).std(0).mean()
        return {"loss": loss, "z_std": std}

    def param_groups(self) -> list[dict[str, Any]]:
        return split_params([self.backbone, self.projection], "encoder") + split_params(
            [self.prediction], "predictor", fixed_lr=self.config.fixed_predictor_lr
        )
