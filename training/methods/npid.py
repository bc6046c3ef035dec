"""NPID / InstDisc: non-parametric instance discrimination (Wu, Xiong, Yu & Lin 2018),
https://arxiv.org/abs/1805.01978.

Every training image is its own class. A 128-d L2-normalised embedding of each image is
stored in a memory bank; the current embedding of image i must pick the bank's entry i
against m noise entries drawn uniformly from the bank (NCE, :class:`NCELoss`), and the
entry is then updated with momentum 0.5. One augmented view per image per step.

What the CIFAR recipe changes from the paper: the quarter-width CIFAR ResNet-18 instead of
ResNet-18/50 at 224 px, a cosine learning-rate schedule instead of steps, and a shorter
schedule, tau = 0.1 (the authors' CIFAR script, ``cifar.py``; 0.07 is their ImageNet value),
and the m noise entries drawn once per step for the whole batch rather than per sample
(``shared_negatives``; the per-sample gather of 256 x 4096 entries took most of a CPU step);
the bank started from the initial network's embeddings instead of random vectors
(``bank_init``); the loss (NCE, m = 4096), the bank momentum and the 128-d linear embedding
are the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.heads import Normalized
from zoo.training.losses.nce import memory_loss
from zoo.training.memory_bank import MemoryBank
from zoo.training.methods._memory_bank import MemoryBankConfig, MemoryBankMethod
from zoo.training.methods.base import DataInfo, MethodConfig, register_method


@dataclass(frozen=True)
class NPIDConfig(MemoryBankConfig):
    #: lambda of the proximal regulariser (sec. 3.4), ``lambda ||v_i^(t) - v_i^(t-1)||^2``
    #: added to the loss to smooth training; 0 = off (the paper's main results).
    proximal: float = 0.0


@register_method
class NPID(MemoryBankMethod):
    """Instance discrimination against a memory bank with NCE (one view per image)."""

    name = "npid"
    Config = NPIDConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: NPIDConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.proximal < 0:
            raise ValueError(f"npid: proximal must be >= 0, got {config.proximal}")
        self.projection = nn.Linear(embed_dim, config.out_dim)

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1)

    def setup_data(self, info: DataInfo) -> None:
        self.memory = self.new_bank(info)
        c = self.config
        self.loss = memory_loss(c.estimator, info.num_samples, c.temperature, c.normaliser_momentum)

    def epoch_encoder(self) -> nn.Module:
        return Normalized(self.backbone, self.projection)

    def banks(self) -> tuple[MemoryBank, ...]:
        return (self.memory,)

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        if not hasattr(self, "memory"):
            raise RuntimeError("npid: setup_data() must run before training (the trainer calls it)")
        features = nn.functional.normalize(self.projection(self.backbone(views[0])).float(), dim=1)
        positives = self.memory(indices)
        c = self.config
        noise = self.memory.noise(len(indices), c.num_negatives, shared=c.shared_negatives)
        negatives = self.memory(noise)
        nce = self.loss(features, positives, negatives)
        out = {self.config.estimator: nce.detach()}
        loss = nce
        if self.config.proximal:
            proximal = (features - positives).pow(2).sum(1).mean()
            loss = loss + self.config.proximal * proximal
            out["proximal"] = proximal.detach()
        self.memory.update(indices, features)
        return {"loss": loss, **out}
