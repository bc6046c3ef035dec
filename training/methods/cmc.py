"""CMC: contrastive multiview coding (Tian, Krishnan & Isola 2020), https://arxiv.org/abs/1906.05849.

Two views of an image are its colour channels in CIELAB: L (luminance) and ab (colour). One
encoder per view (:class:`zoo.models.lab_split.LabSplitEncoder`, the registered architecture
``cmc_resnet18_cifar_quarter``), a 128-d linear embedding
each; each view's embedding must pick the other view's stored embedding of the same image
among noise entries of that view's memory bank (both ways, :class:`CMCLoss`; T 0.07,
bank momentum 0.5), by NCE or, as the recipe does, the softmax cross-entropy over the sampled
entries (``estimator``; the authors' ``--softmax``). The encoder zoo exports is the
concatenation of both halves' features, as the paper evaluates.

What the CIFAR recipe changes from the paper: two quarter-width CIFAR ResNet-18s (the paper:
halves of AlexNet / ResNet-50 width), 4,096 noise samples (paper: 16,384), cosine SGD, the
softmax estimator and banks filled with the initial embeddings (``bank_init``); views
are zoo's batched crop + flip + colour jitter of the RGB image before the Lab split (the
paper: crop + flip, with colour jitter in later versions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.losses.cmc import CMCLoss
from zoo.training.methods._memory_bank import MemoryBankConfig, MemoryBankMethod
from zoo.training.methods.base import DataInfo, MethodConfig, register_method

from zoo.models.lab_split import LabSplitEncoder


@dataclass(frozen=True)
class CMCConfig(MemoryBankConfig):
    num_negatives: int = 16384


@register_method
class CMC(MemoryBankMethod):
    """L vs ab of the same image, contrasted against memory banks (one view, split in Lab)."""

    name = "cmc"
    Config = CMCConfig

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
        self.l_embed = nn.Linear(half, config.out_dim)
        self.ab_embed = nn.Linear(half, config.out_dim)

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1, colour="lab")

    def setup_data(self, info: DataInfo) -> None:
        self.l_memory = self.new_bank(info)
        self.ab_memory = self.new_bank(info, offset=1)
        self.loss = CMCLoss(info.num_samples, self.config.temperature, self.config.estimator)

    def epoch_encoder(self) -> nn.Module:
        return _BothEmbeddings(self)

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> None:
        l_entries, ab_entries = features.split(self.config.out_dim, dim=1)
        self.l_memory.fill(l_entries)
        self.ab_memory.fill(ab_entries)

    def embed_halves(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised Lab views -> the L and ab embeddings (each (N, out_dim), unit norm, fp32)."""
        h_l, h_ab = self.backbone.halves(lab)
        z_l = nn.functional.normalize(self.l_embed(h_l).float(), dim=1)
        return z_l, nn.functional.normalize(self.ab_embed(h_ab).float(), dim=1)

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        z_l, z_ab = self.embed_halves(views[0])
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


class _BothEmbeddings(nn.Module):
    """The epoch pass's encoder: normalised RGB (what the pass embeds, as the kNN monitor) ->
    Lab -> both halves' embeddings side by side, (N, 2 x out_dim), one pass filling both banks."""

    def __init__(self, method: CMC) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # the Lab conversion in fp32
            lab = self.method.backbone.to_lab(x)
        return torch.cat(self.method.embed_halves(lab), dim=1)
