"""CMC: contrastive multiview coding (Tian, Krishnan & Isola 2020), https://arxiv.org/abs/1906.05849.

Two views of an image are its colour channels in CIELAB: L (luminance) and ab (colour). One
encoder per view (:class:`zoo.models.lab_split.LabSplitEncoder`, the registered architecture
``cmc_resnet18_cifar_quarter``), a 128-d linear embedding
each; each view's embedding must pick the other view's stored embedding of the same image
among noise entries of that view's memory bank (NCE both ways, :class:`CMCLoss`; T 0.07,
bank momentum 0.5). The encoder zoo exports is the concatenation of both halves' features,
as the paper evaluates.

What the CIFAR recipe changes from the paper: two quarter-width CIFAR ResNet-18s (the paper:
halves of AlexNet / ResNet-50 width), 4,096 noise samples (paper: 16,384), cosine SGD; views
are zoo's batched crop + flip + colour jitter of the RGB image before the Lab split (the
paper: crop + flip, with colour jitter in later versions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.losses.cmc import CMCLoss
from zoo.training.memory_bank import MemoryBank
from zoo.training.methods.base import DataInfo, Method, MethodConfig, Needs, register_method

from zoo.models.lab_split import LabSplitEncoder


@dataclass(frozen=True)
class CMCConfig(MethodConfig):
    out_dim: int = 128
    num_negatives: int = 16384
    #: Draw the noise entries once per step for the whole batch instead of per sample (the
    #: same NCE estimator; the per-sample gather of N x m entries dominates a CPU step).
    shared_negatives: bool = True
    temperature: float = 0.07
    memory_momentum: float = 0.5


@register_method
class CMC(Method):
    """L vs ab of the same image, contrasted against memory banks (one view, split in Lab)."""

    name = "cmc"
    Config = CMCConfig
    needs = Needs(indices=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: CMCConfig) -> None:
        # The exported backbone is the two-encoder module. Recipes name its registered arch
        # (``cmc_resnet18_cifar_quarter``: built split, ``embed_dim`` is both halves); a plain
        # base arch (recipes before it was registered, their checkpoints) is split here, with
        # the same state-dict keys, and exports as the registered split arch.
        if isinstance(backbone, LabSplitEncoder):
            if embed_dim % 2:
                raise ValueError(f"a Lab-split encoder's features are two halves; got embed_dim {embed_dim}")
            half = embed_dim // 2
        else:
            backbone, half = LabSplitEncoder(backbone), embed_dim
        super().__init__(backbone, 2 * half, config)
        if config.num_negatives < 1 or not 0 <= config.memory_momentum < 1:
            raise ValueError("num_negatives must be >= 1 and memory_momentum in [0, 1)")
        self.l_embed = nn.Linear(half, config.out_dim)
        self.ab_embed = nn.Linear(half, config.out_dim)

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1, colour="lab")

    def setup_data(self, info: DataInfo) -> None:
        c = self.config
        self.l_memory = MemoryBank(info.num_samples, c.out_dim, c.memory_momentum, seed=info.seed)
        self.ab_memory = MemoryBank(info.num_samples, c.out_dim, c.memory_momentum, seed=info.seed + 1)
        self.loss = CMCLoss(info.num_samples, c.temperature)

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        h_l, h_ab = self.backbone.halves(views[0])
        z_l = nn.functional.normalize(self.l_embed(h_l).float(), dim=1)
        z_ab = nn.functional.normalize(self.ab_embed(h_ab).float(), dim=1)
        c = self.config
        noise = self.l_memory.noise(len(indices), c.num_negatives, shared=c.shared_negatives)
        loss = self.loss(
            z_l,
            z_ab,
            (self.l_memory(indices), self.l_memory(noise)),
            (self.ab_memory(indices), self.ab_memory(noise)),
        )
        self.l_memory.update(indices, z_l)
        self.ab_memory.update(indices, z_ab)
        return {"loss": loss}
