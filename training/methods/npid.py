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
from zoo.training.losses.nce import NCELoss
from zoo.training.memory_bank import MemoryBank
from zoo.training.methods.base import DataInfo, Method, MethodConfig, MethodInputError, Needs, register_method


@dataclass(frozen=True)
class NPIDConfig(MethodConfig):
    #: "We set feature dimension d = 128" (a linear layer on the pooled features).
    out_dim: int = 128
    #: "m = 4096" noise samples per image.
    num_negatives: int = 4096
    temperature: float = 0.07
    #: "the memory bank ... momentum 0.5".
    memory_momentum: float = 0.5
    #: Draw the m noise entries once per step for the whole batch instead of m per sample
    #: (the same NCE estimator; 1/256 of the memory traffic, which dominates on CPU).
    shared_negatives: bool = True
    #: "random": the bank starts as random unit vectors (the paper), so in the first epoch
    #: every image is pulled towards a random target and features get worse than at random
    #: init (kNN 18.8% after one epoch against 30% at init, measured); "features": the
    #: bank starts as the initial network's embeddings of every image (one epoch pass).
    bank_init: str = "features"
    #: lambda of the proximal regulariser (sec. 3.4), ``lambda ||v_i^(t) - v_i^(t-1)||^2``
    #: added to the loss to smooth training; 0 = off (the paper's main results).
    proximal: float = 0.0


@register_method
class NPID(Method):
    """Instance discrimination against a memory bank with NCE (one view per image)."""

    name = "npid"
    Config = NPIDConfig
    needs = Needs(indices=True, epoch_pass=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: NPIDConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.num_negatives < 1 or not 0 <= config.memory_momentum < 1 or config.proximal < 0:
            raise ValueError("num_negatives must be >= 1, memory_momentum in [0, 1), proximal >= 0")
        if config.bank_init not in ("random", "features"):
            raise ValueError(f"bank_init must be 'random' or 'features', got {config.bank_init!r}")
        self.projection = nn.Linear(embed_dim, config.out_dim)

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1)

    def setup_data(self, info: DataInfo) -> None:
        if info.num_samples < 2:
            raise MethodInputError(f"npid needs at least 2 training images, got {info.num_samples}")
        c = self.config
        self.memory = MemoryBank(info.num_samples, c.out_dim, c.memory_momentum, seed=info.seed)
        self.loss = NCELoss(info.num_samples, c.temperature)

    def epoch_pass_due(self, epoch: int) -> bool:
        return epoch == 0 and self.config.bank_init == "features"

    def epoch_encoder(self) -> nn.Module:
        return Normalized(self.backbone, self.projection)

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> None:
        self.memory.fill(features)

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        if not hasattr(self, "memory"):
            raise RuntimeError("npid: setup_data() must run before training (the trainer calls it)")
        features = nn.functional.normalize(self.projection(self.backbone(views[0])).float(), dim=1)
        positives = self.memory(indices)
        c = self.config
        noise = self.memory.noise(len(indices), c.num_negatives, shared=c.shared_negatives)
        negatives = self.memory(noise)
        nce = self.loss(features, positives, negatives)
        out = {"nce": nce.detach()}
        loss = nce
        if self.config.proximal:
            proximal = (features - positives).pow(2).sum(1).mean()
            loss = loss + self.config.proximal * proximal
            out["proximal"] = proximal.detach()
        self.memory.update(indices, features)
        return {"loss": loss, **out}
