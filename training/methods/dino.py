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


@register_method
class DINO(Method):
    """Self-distillation with no labels: a student matches a momentum teacher's centred,
    sharpened output distribution; the teacher sees only the global crops, the student all
    crops. Expects multi-crop views: the first two are the global crops."""

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
        self.teacher_temperature = c.warmup_teacher_temperature

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) < 2:
            raise ValueError(f"DINO takes 2 global (+ local) views, got {len(views)}")
        student = [self.head(h) for h in forward_crops(self.backbone, views)]
        with torch.no_grad():
            teacher = [self.teacher_head(h) for h in forward_crops(self.teacher_backbone, views[:2])]
        loss = self.loss(student, teacher, self.teacher_temperature)
        return {"loss": loss, "teacher_temperature": torch.tensor(self.teacher_temperature)}

    def schedule(self, step: int, total_steps: int, epoch: int) -> None:
        super().schedule(step, total_steps, epoch)
        c = self.config
        if epoch < c.warmup_teacher_temperature_epochs:
            frac = epoch / c.warmup_teacher_temperature_epochs
            self.teacher_temperature = c.warmup_teacher_temperature + frac * (
                c.teacher_temperature - c.warmup_teacher_temperature
            )
        else:
            self.teacher_temperature = c.teacher_temperature

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.config.freeze_last_layer_epochs:
            self.head.cancel_last_layer_gradients()
