"""DINO (Caron, Touvron, Misra, Jégou, Mairal, Bojanowski & Joulin 2021),
https://arxiv.org/abs/2104.14294."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import DINOProjectionHead
from zoo.training.losses import DINOLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class DINOConfig(MethodConfig):
    proj_hidden_dim: int = 2048
    bottleneck_dim: int = 256
    out_dim: int = 65536
    batch_norm_head: bool = False
    #: MLP layers before the bottleneck (the paper's 3; lightly's CIFAR-10 benchmark uses 2).
    head_layers: int = 3
    student_temperature: float = 0.1
    #: The teacher temperature warms up linearly (0.04 -> 0.07 over 30 epochs for ViTs).
    warmup_teacher_temperature: float = 0.04
    teacher_temperature: float = 0.04
    warmup_teacher_temperature_epochs: int = 0
    center_momentum: float = 0.9
    base_momentum: float = 0.996
    final_momentum: float = 1.0
    freeze_last_layer_epochs: int = 1
    #: Run the head on each crop on its own (BN statistics per crop with ``batch_norm_head``):
    #: how zoo's DINO ran before it followed the authors' MultiCropWrapper, kept so the recipes
    #: that trained published weights still reproduce them.
    head_per_crop: bool = False


@register_method
class DINO(Method):
    """Self-distillation with no labels: a student matches a momentum teacher's centred,
    sharpened output distribution; the teacher sees only the global crops, the student all
    crops. Expects multi-crop views: the first two are the global crops.

    As the authors' ``MultiCropWrapper``, the head runs once over all crops concatenated
    (with ``batch_norm_head`` its BN statistics are those of every crop together, the
    teacher's of both global crops), and the teacher temperature goes linearly from
    ``warmup_teacher_temperature`` at epoch 0 to ``teacher_temperature`` at epoch W - 1
    (their ``np.linspace`` over W = ``warmup_teacher_temperature_epochs`` epochs). Weights
    published before this change were trained the old way: the head run on each crop on
    its own (BN statistics per crop; ``head_per_crop: true`` in their recipes) and the warm-up
    reaching its final value at epoch W (their recipes hold the temperature constant).
    """

    name = "dino"
    momentum_backbone_name = "teacher_backbone"
    Config = DINOConfig
    multicrop = True

    def __init__(self, backbone: nn.Module, embed_dim: int, config: DINOConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        self.head = DINOProjectionHead(
            embed_dim, c.proj_hidden_dim, c.bottleneck_dim, c.out_dim, c.batch_norm_head, c.head_layers
        )
        self.keep_momentum_copies({"head": "teacher_head"})
        self.loss = DINOLoss(c.out_dim, c.student_temperature, c.center_momentum)
        if min(c.warmup_teacher_temperature, c.teacher_temperature) <= 0:
            raise ValueError(
                "teacher temperatures must be positive, got warmup_teacher_temperature="
                f"{c.warmup_teacher_temperature}, teacher_temperature={c.teacher_temperature}"
            )
        # A buffer the compiled step reads as an input (Method.logged says why not a float).
        tau = torch.tensor(float(c.warmup_teacher_temperature))
        self.register_buffer("teacher_tau", tau, persistent=False)

    @property
    def teacher_temperature(self) -> float:
        return float(self.teacher_tau)

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) < 2:
            raise ValueError(f"DINO takes 2 global (+ local) views, got {len(views)}")
        heads = _head_per_crop if self.config.head_per_crop else _head_over_all_crops
        student = heads(self.head, forward_crops(self.backbone, views))
        with torch.no_grad():
            teacher = heads(self.teacher_head, forward_crops(self.teacher_backbone, views[:2]))
        return {"loss": self.loss(student, teacher, self.teacher_tau)}

    def logged(self) -> dict[str, float]:
        return {"teacher_temperature": self.teacher_temperature}

    def schedule(self, step: int, total_steps: int, epoch: int) -> None:
        super().schedule(step, total_steps, epoch)
        c = self.config
        warmup = c.warmup_teacher_temperature_epochs
        if epoch < warmup:
            # np.linspace(start, end, W)[epoch]: the final value at epoch W - 1 (W = 1: start).
            frac = epoch / (warmup - 1) if warmup > 1 else 0.0
            self.teacher_tau.fill_(
                c.warmup_teacher_temperature + frac * (c.teacher_temperature - c.warmup_teacher_temperature)
            )
        else:
            self.teacher_tau.fill_(c.teacher_temperature)

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.config.freeze_last_layer_epochs:
            self.head.cancel_last_layer_gradients()


def _head_per_crop(head: nn.Module, feats: list[torch.Tensor]) -> list[torch.Tensor]:
    return [head(h) for h in feats]


def _head_over_all_crops(head: nn.Module, feats: list[torch.Tensor]) -> list[torch.Tensor]:
    """One head pass over every crop's features concatenated (one set of BN statistics, as
    their MultiCropWrapper), split back into one output per crop."""
    return list(head(torch.cat(feats)).split([len(h) for h in feats]))
