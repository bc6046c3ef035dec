"""CRD: contrastive representation distillation (Tian, Krishnan & Isola 2020),
https://arxiv.org/abs/1910.10699.

A frozen teacher encoder (any zoo name or folder, ``method.teacher``) is distilled into the
student backbone without labels: linear embeddings of both (128-d, L2-normalised) are stored
in two memory banks (momentum 0.5), and :class:`CRDLoss` makes the student's embedding of an
image pick the teacher's stored embedding of the same image among 16,384 noise ones, and
vice versa. Only the student backbone (and the two embeddings) train.

What the CIFAR recipe changes from the paper: no supervised cross-entropy or KD term (the paper
distils a labelled classifier; zoo distils an unlabelled encoder, so CRD alone), the teacher is
zoo's best CIFAR-10 encoder by kNN (``moco-v2-r18h-cifar10``, the half-width 200-epoch
flagship, which reads each 32 px view at its own 48 px, mirror-averaged; the shipped student
learned from the quarter-width ``moco-v2-r18q-cifar10``) and the student a quarter-width
ResNet-10 from scratch (``resnet10_cifar_quarter``: the paper's pairs shrink depth, e.g.
ResNet-32x4 -> ResNet-8x4), 4,096 negatives, cosine SGD, the softmax
(InfoNCE) form of the objective (``estimator: softmax``, CMC's ``--softmax``; RepDistiller has
only NCE: at this budget NCE's student read 27.3 on the kNN monitor after one epoch, softmax's
50.2), negatives drawn uniformly from the bank (RepDistiller's default draws them from other
classes only, which needs labels; here one may be of the same class, or the image itself), and both
banks start from the initial embeddings (one pass over the training split before the first
epoch, ``bank_init: features``, as zoo's NPID) instead of random unit vectors: from random
banks every image's first positive is noise, and the student read 28.4 kNN after one epoch,
below its random init.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.distill import FrozenTeacher
from zoo.training.heads import Normalized
from zoo.training.losses.crd import CRDLoss
from zoo.training.memory_bank import MemoryBank
from zoo.training.methods._memory_bank import MemoryBankConfig, MemoryBankMethod
from zoo.training.methods.base import DataInfo, MethodConfig, MethodInputError, Needs, register_method


@dataclass(frozen=True)
class CRDConfig(MemoryBankConfig):
    #: The teacher: a zoo name (``zoo list``) or an exported folder.
    teacher: str = ""
    #: "N = 16384" negatives.
    num_negatives: int = 16384


@register_method
class CRD(MemoryBankMethod):
    """Contrastive distillation of a frozen teacher into the backbone (one view)."""

    name = "crd"
    Config = CRDConfig
    needs = Needs(indices=True, teacher=True, epoch_pass=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: CRDConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.student_embed = nn.Linear(embed_dim, config.out_dim)

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1)

    def set_teacher(self, teacher: nn.Module, embed_dim: int) -> None:
        self.teacher = FrozenTeacher(teacher)
        self.teacher_embed = nn.Linear(embed_dim, self.config.out_dim)

    def setup_data(self, info: DataInfo) -> None:
        if not hasattr(self, "teacher"):
            raise MethodInputError("crd: no teacher was given (set method.teacher)")
        self.student_memory = self.new_bank(info)
        self.teacher_memory = self.new_bank(info, offset=1)
        c = self.config
        self.loss = CRDLoss(info.num_samples, c.temperature, c.estimator, c.normaliser_momentum)

    def epoch_encoder(self) -> nn.Module:
        return _BothEmbeddings(
            Normalized(self.backbone, self.student_embed), Normalized(self.teacher, self.teacher_embed)
        )

    def banks(self) -> tuple[MemoryBank, ...]:
        return self.student_memory, self.teacher_memory

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        x = views[0]
        s = nn.functional.normalize(self.student_embed(self.backbone(x)).float(), dim=1)
        t = nn.functional.normalize(self.teacher_embed(self.teacher(x)).float(), dim=1)
        c = self.config
        noise = self.student_memory.noise(len(indices), c.num_negatives, shared=c.shared_negatives)
        loss = self.loss(
            s,
            t,
            (self.student_memory(indices), self.student_memory(noise)),
            (self.teacher_memory(indices), self.teacher_memory(noise)),
        )
        self.student_memory.update(indices, s)
        self.teacher_memory.update(indices, t)
        return {"loss": loss}


class _BothEmbeddings(nn.Module):
    """The epoch pass's encoder: the student's and the teacher's normalised embeddings side by
    side, (N, 2 x out_dim), one pass filling both banks."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.student(x), self.teacher(x)], dim=1)
