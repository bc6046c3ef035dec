"""SupCon: supervised contrastive learning (Khosla et al. 2020), https://arxiv.org/abs/2004.11362.

A **supervised upper bound**, not a self-supervised method: it trains with the class labels
of the training split. zoo keeps it beside the self-supervised methods, under the same
backbone, views and evaluation, to show how far they are from what labels give; it is
registered with ``supervised = True`` and its encoders are labelled supervised.

Two views of each image; every other view of the same class is a positive (:class:`SupConLoss`).
What the CIFAR recipe changes from the paper: the quarter-width CIFAR ResNet-18 and a
512-d projection hidden layer (paper: ResNet-50, 2048 -> 128), batch 256 (paper: 1024+),
SGD with cosine decay (paper: LARS), temperature 0.1 as the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import SimCLRProjectionHead
from zoo.training.losses.supcon import SupConLoss
from zoo.training.methods.base import Method, MethodConfig, Needs, forward_crops, register_method


@dataclass(frozen=True)
class SupConConfig(MethodConfig):
    temperature: float = 0.1
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 128
    #: Under torch.distributed, every rank's views (and labels) as candidates and positives.
    gather_distributed: bool = True


@register_method
class SupCon(Method):
    """Supervised contrastive loss over two views with the class labels (supervised)."""

    name = "supcon"
    Config = SupConConfig
    needs = Needs(labels=True)
    supervised = True

    def __init__(self, backbone: nn.Module, embed_dim: int, config: SupConConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.projection = SimCLRProjectionHead(
            embed_dim, config.proj_hidden_dim, config.proj_out_dim, 2, True
        )
        self.loss = SupConLoss(config.temperature, gather_distributed=config.gather_distributed)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"SupCon takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        return {"loss": self.loss(self.projection(h0), self.projection(h1), labels)}
