"""MoCo v2 (Chen, Fan, Girshick & He 2020), https://arxiv.org/abs/2003.04297, on MoCo
(He et al. 2020), https://arxiv.org/abs/1911.05722."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.batch_norm import split_batch_norm
from zoo.training.distributed import batch_shuffle, batch_unshuffle
from zoo.training.heads import MoCoV2ProjectionHead
from zoo.training.losses import InfoNCELoss
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.queue import FeatureQueue


@dataclass(frozen=True)
class MoCoV2Config(MethodConfig):
    temperature: float = 0.2
    queue_size: int = 65536
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 128
    #: MoCo's m = 0.999, constant; small-scale recipes start lower and rise to 1 (cosine).
    base_momentum: float = 0.999
    final_momentum: float = 0.999
    #: Both views serve as query and key (solo-learn, lightly); MoCo itself is one-sided.
    symmetric: bool = True
    #: Batch-norm groups per process (:class:`zoo.training.batch_norm.SplitBatchNorm2d`), with
    #: the key batch shuffled: MoCo's shuffling BN in one process, as its CIFAR-10 demo and
    #: lightly's CIFAR-10 benchmark run it with 8. 1: whole-batch BN, right under DDP, where
    #: each rank is a group (the paper: 8 GPUs of 32 images).
    bn_splits: int = 1


@register_method
class MoCoV2(Method):
    """A query encoder is trained to pick its key (the other view through the momentum
    encoder) among a queue of past keys: InfoNCE with the positive at index 0. The key encoder
    uses shuffling BN: keys are encoded in a shuffled batch, under DDP across ranks, in one
    process across the ``bn_splits`` groups."""

    name = "moco_v2"
    momentum_backbone_name = "key_backbone"
    shuffles_keys = True
    Config = MoCoV2Config

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MoCoV2Config) -> None:
        if config.bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {config.bn_splits}")
        super().__init__(split_batch_norm(backbone, config.bn_splits), embed_dim, config)
        self.projection = MoCoV2ProjectionHead(embed_dim, config.proj_hidden_dim, config.proj_out_dim)
        self.keep_momentum_copies({"projection": "key_projection"})
        self.queue = FeatureQueue(config.queue_size, config.proj_out_dim)
        self.loss = InfoNCELoss(config.temperature)

    @torch.no_grad()
    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        shuffled, perm = batch_shuffle(x)
        keys = self.key_projection(self.key_backbone(shuffled))
        return nn.functional.normalize(batch_unshuffle(keys, perm).float(), dim=1)

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"MoCo v2 takes 2 views, got {len(views)}")
        negatives = self.queue()
        q0 = self.projection(self.backbone(views[0]))
        k1 = self._keys(views[1])
        loss = self.loss(q0, k1, negatives)
        keys = [k1]
        if self.config.symmetric:
            q1 = self.projection(self.backbone(views[1]))
            k0 = self._keys(views[0])
            loss = (loss + self.loss(q1, k0, negatives)) / 2
            keys.append(k0)
        for k in keys:
            self.queue.enqueue(k)
        return {"loss": loss}
