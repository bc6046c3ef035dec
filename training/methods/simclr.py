"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020), https://arxiv.org/abs/2002.05709, with
SimCLR v2's options (Chen, Kornblith, Swersky, Norouzi & Hinton 2020,
https://arxiv.org/abs/2006.10029): a 3-layer projector (``proj_layers: 3``) and a MoCo-style
memory of momentum-encoder keys as extra negatives (``queue_size``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import SimCLRProjectionHead
from zoo.training.losses import NTXentLoss
from zoo.training.losses.ntxent_memory import NTXentMemoryLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method
from zoo.training.momentum import momentum_copy, update_momentum
from zoo.training.queue import FeatureQueue


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
    #: SimCLR v2's MoCo-style memory: K past keys of a momentum copy of the encoder and
    #: projector join every anchor's negatives (0 = off, SimCLR v1). v2 also deepens the
    #: projector: ``proj_layers: 3``.
    queue_size: int = 0
    #: EMA momentum of the memory network (MoCo's 0.999).
    memory_momentum: float = 0.999


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
        if config.queue_size:
            # SimCLR v2's memory (additive: v1 runs build none of this).
            self.key_backbone = momentum_copy(backbone)
            self.key_projection = momentum_copy(self.projection)
            self.queue = FeatureQueue(config.queue_size, config.proj_out_dim)
            self.memory_loss = NTXentMemoryLoss(config.temperature)

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"SimCLR takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        if not self.config.queue_size:
            return {"loss": self.loss(self.projection(h0), self.projection(h1))}
        loss = self.memory_loss(self.projection(h0), self.projection(h1), self.queue())
        with torch.no_grad():
            for keys in forward_crops(self.key_backbone, views):
                self.queue.enqueue(nn.functional.normalize(self.key_projection(keys).float(), dim=1))
        return {"loss": loss}

    def after_optimizer_step(self) -> None:
        if self.config.queue_size:
            update_momentum(self.backbone, self.key_backbone, self.config.memory_momentum)
            update_momentum(self.projection, self.key_projection, self.config.memory_momentum)
