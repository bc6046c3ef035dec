"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny 2021), https://arxiv.org/abs/2103.03230."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from zoo.training.heads import BarlowTwinsProjectionHead
from zoo.training.losses import BarlowTwinsLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class BarlowTwinsConfig(MethodConfig):
    proj_hidden_dim: int = 8192
    proj_out_dim: int = 8192
    lambda_: float = 0.0051
    # Multiplies the loss (solo-learn's ``scale_loss``: 0.1 for CIFAR). Under LARS only the
    # biases and norm layers, which skip the layer-wise adaptation, feel it: at lr 0.3 the
    # raw gradient of a loss in the hundreds (about 400 on CIFAR-10) moves them too far.
    scale_loss: float = 1.0
    #: Biases' and norm layers' learning rate as a multiple of the weights' (the authors'
    #: main.py: --learning-rate-biases 0.0048 / --learning-rate-weights 0.2 = 0.024).
    bias_lr_scale: float = 1.0
    gather_distributed: bool = True

    def __post_init__(self) -> None:
        if self.scale_loss <= 0:
            raise ValueError(f"method.scale_loss must be > 0, got {self.scale_loss}")
        if self.bias_lr_scale <= 0:
            raise ValueError(f"method.bias_lr_scale must be > 0, got {self.bias_lr_scale}")


@register_method
class BarlowTwins(Method):
    """The cross-correlation of the two views' embeddings is pushed to the identity:
    invariance on the diagonal, redundancy reduction off it.

    Unlike the authors' code, which runs each view through the backbone on its own (BN
    statistics per view), the two views go through the backbone as one batch here.
    """

    name = "barlow_twins"
    Config = BarlowTwinsConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: BarlowTwinsConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.projection = BarlowTwinsProjectionHead(embed_dim, config.proj_hidden_dim, config.proj_out_dim)
        self.loss = BarlowTwinsLoss(config.lambda_, gather_distributed=config.gather_distributed)

    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups()
        if self.config.bias_lr_scale != 1.0:
            for g in groups:
                if g["exclude_decay"]:
                    g["lr_scale"] = self.config.bias_lr_scale
        return groups

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"Barlow Twins takes 2 views, got {len(views)}")
        z0, z1 = (self.projection(h) for h in forward_crops(self.backbone, views))
        return {"loss": self.config.scale_loss * self.loss(z0, z1)}
