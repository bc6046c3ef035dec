"""CMC: contrastive multiview coding (Tian, Krishnan & Isola 2020), https://arxiv.org/abs/1906.05849.

Two views of an image are its colour channels in CIELAB: L (luminance) and ab (colour). One
encoder per view (:class:`zoo.models.lab_split.LabSplitEncoder`, the registered architecture
``cmc_resnet18_cifar_quarter``), a 128-d linear embedding
each; each view's embedding must pick the other view's stored embedding of the same image
among noise entries of that view's memory bank (both ways, :class:`CMCLoss`; T 0.07,
bank momentum 0.5), by NCE (their default) or the softmax cross-entropy over the sampled
entries (``estimator``; the authors' ``--softmax``). The encoder zoo exports is the
concatenation of both halves' features, as the paper evaluates.

What the CIFAR recipe changes from the paper: two quarter-width CIFAR ResNet-18s (the paper:
halves of AlexNet / ResNet-50 width), 4,096 noise samples (paper: 16,384), cosine SGD, the
softmax estimator and banks filled with the initial embeddings (``bank_init``) as options,
and, in the recipe, MoCo's queue and momentum key encoders instead of banks (``memory: queue``,
batch-normalised embeddings; why: training/README, "CMC (session 7)"); views
are zoo's batched crop + flip + colour jitter of the RGB image before the Lab split (the
paper: crop + flip, with colour jitter in later versions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.distributed import batch_shuffle, batch_unshuffle
from zoo.training.losses import InfoNCELoss
from zoo.training.losses.cmc import CMCLoss
from zoo.training.memory_bank import MemoryBank
from zoo.training.methods._memory_bank import MemoryBankConfig, MemoryBankMethod
from zoo.training.methods.base import DataInfo, MethodConfig, register_method
from zoo.training.queue import FeatureQueue

from zoo.models.lab_split import LabSplitEncoder

#: Where the negatives come from (``method.memory``).
MEMORIES = ("bank", "queue")


@dataclass(frozen=True)
class CMCConfig(MemoryBankConfig):
    num_negatives: int = 16384
    #: "bank": memory banks of every image, refreshed once an epoch (the paper, the
    #: ``num_negatives``/``memory_momentum``/``bank_init``/``estimator``/``normaliser_momentum``
    #: keys); "queue": MoCo's form (He et al. 2020), a momentum copy of both encoders gives the
    #: keys and a queue per view holds the last ``queue_size`` of them, InfoNCE at ``temperature``.
    memory: str = "bank"
    queue_size: int = 16384
    #: The key encoders' momentum, rising from ``base_momentum`` to ``final_momentum`` (cosine).
    base_momentum: float = 0.99
    final_momentum: float = 1.0
    #: BatchNorm on each embedding before it is normalised. Two random encoders give every
    #: image nearly the same embedding, so a queue of their keys holds one direction and the
    #: queue form settled at uniform logits (loss 2 ln(K + 1) from step 60 on, monitor 23.9
    #: after an epoch); centring each embedding on the batch keeps the keys apart.
    embed_batch_norm: bool = False


@register_method
class CMC(MemoryBankMethod):
    """L vs ab of the same image, contrasted against memory banks or queues of keys (one
    view, split in Lab)."""

    name = "cmc"
    momentum_backbone_name = "key_backbone"
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
        if config.memory not in MEMORIES:
            raise ValueError(f"cmc: memory must be one of {MEMORIES}, got {config.memory!r}")
        self.l_embed = _embedding(half, config.out_dim, config.embed_batch_norm)
        self.ab_embed = _embedding(half, config.out_dim, config.embed_batch_norm)
        if config.memory == "queue":
            if config.queue_size < 1 or not 0 <= config.base_momentum <= config.final_momentum <= 1:
                raise ValueError("cmc: queue_size must be >= 1 and 0 <= base_momentum <= final_momentum <= 1")
            if config.normaliser_momentum:
                # The queue form's InfoNCE has no Z: a tuning run would otherwise measure nothing.
                raise ValueError("cmc: normaliser_momentum applies to memory: bank (NCE) only, not to queue")
            self.keep_momentum_copies({"l_embed": "key_l_embed", "ab_embed": "key_ab_embed"})
            self.shuffles_keys = True
            self.l_queue = FeatureQueue(config.queue_size, config.out_dim)
            self.ab_queue = FeatureQueue(config.queue_size, config.out_dim)
            self.queue_loss = InfoNCELoss(config.temperature)

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1, colour="lab")

    def setup_data(self, info: DataInfo) -> None:
        if self.config.memory == "queue":
            return
        self.l_memory = self.new_bank(info)
        self.ab_memory = self.new_bank(info, offset=1)
        c = self.config
        self.loss = CMCLoss(info.num_samples, c.temperature, c.estimator, c.normaliser_momentum)

    def epoch_pass_due(self, epoch: int) -> bool:
        return self.config.memory == "bank" and super().epoch_pass_due(epoch)

    def epoch_encoder(self) -> nn.Module:
        return _BothEmbeddings(self)

    def banks(self) -> tuple[MemoryBank, ...]:
        return self.l_memory, self.ab_memory

    def embed_halves(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised Lab views -> the L and ab embeddings (each (N, out_dim), unit norm, fp32)."""
        h_l, h_ab = self.backbone.halves(lab)
        z_l = nn.functional.normalize(self.l_embed(h_l).float(), dim=1)
        return z_l, nn.functional.normalize(self.ab_embed(h_ab).float(), dim=1)

    @torch.no_grad()
    def _keys(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The momentum encoders' L and ab keys (unit norm, fp32); shuffling BN under DDP."""
        shuffled, perm = batch_shuffle(lab)
        h_l, h_ab = self.key_backbone.halves(shuffled)
        k_l = nn.functional.normalize(self.key_l_embed(h_l).float(), dim=1)
        k_ab = nn.functional.normalize(self.key_ab_embed(h_ab).float(), dim=1)
        return batch_unshuffle(k_l, perm), batch_unshuffle(k_ab, perm)

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.config.memory == "queue":
            # Each view's query picks the other view's key of the same image among that view's
            # queue. The queues are read before anything is enqueued (as MoCo v2 does).
            l_negatives, ab_negatives = self.l_queue(), self.ab_queue()
            z_l, z_ab = self.embed_halves(views[0])
            k_l, k_ab = self._keys(views[0])
            loss = self.queue_loss(z_l, k_ab, ab_negatives) + self.queue_loss(z_ab, k_l, l_negatives)
            # Enqueued after the optimiser step, outside the compiled step: torch.compile of a
            # step that both reads two queues into the loss and writes them failed its backward
            # ("modified by an inplace operation").
            self._new_keys = (k_l.detach(), k_ab.detach())
            return {"loss": loss}
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

    def after_optimizer_step(self) -> None:
        if self.config.memory == "queue":
            k_l, k_ab = self._new_keys
            self.l_queue.enqueue(k_l)
            self.ab_queue.enqueue(k_ab)
        super().after_optimizer_step()  # the key encoders (queue form)


def _embedding(in_dim: int, out_dim: int, batch_norm: bool) -> nn.Module:
    """The paper's linear embedding, optionally batch-normalised (``embed_batch_norm``)."""
    if not batch_norm:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), nn.BatchNorm1d(out_dim))


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
