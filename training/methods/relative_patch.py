"""Relative patch location, context prediction (Doersch, Gupta & Efros 2015),
https://arxiv.org/abs/1505.05192.

A patch is cut from the centre of a 3x3 grid and another from one of its 8 neighbours; the
network sees both (the same backbone, shared weights, each patch on its own, as the paper's
pair of AlexNets) and classifies where the second sits relative to the first. Knowing that a
wheel is below a car door, or an eye beside another, needs object-level features.

The paper's defences against shortcuts are recipe keys, so their effect can be measured
(task accuracy with and without them: they make the task harder and the features better):

* ``gap``: pixels between neighbouring patches (paper: 48 px for 96 px patches), so edges
  and textures do not simply continue from one patch into the other;
* ``jitter``: each patch moved by up to this many pixels (paper: 7), so lines do not align;
* ``color_drop``: 2 of the 3 colour channels of each patch replaced by small noise, against
  chromatic aberration (which tells a patch's position relative to the lens centre).

What zoo's recipes change from the paper: AlexNet on 96 px patches of ImageNet becomes zoo's
CIFAR ResNet on 8 px patches of 32 px views (``relative_patch_r18q_cifar10``, gap 2, jitter 1:
little context per patch) or a ResNet-18 on 24 px patches of 96 px Imagenette views
(``relative_patch_r18_imagenette``, gap 6, jitter 3: the paper's proportions); the two patch
features (the backbone's pooled output; the paper: fc6 each) are concatenated into a
Linear-BN-ReLU-Linear head (fc7, fc8).

The position accuracy of each step is logged as ``patch_acc`` (%) in metrics.csv.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from zoo.training.losses import PretextClassificationLoss
from zoo.training.methods._pretext import ClassifierHead, memory_format_of, one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext.patches import NEIGHBOURS, check_patch_size, patch_pairs


@dataclass(frozen=True)
class RelativePatchConfig(MethodConfig):
    patch_size: int = 96
    gap: int = 48
    jitter: int = 7
    color_drop: bool = True
    head_hidden_dim: int = 1024


@register_method
class RelativePatch(Method):
    name = "relative_patch"
    Config = RelativePatchConfig
    task_metrics: ClassVar[dict[str, str]] = {"patch_acc": "8-way relative position accuracy (%)"}

    def __init__(self, backbone: nn.Module, embed_dim: int, config: RelativePatchConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.patch_size < 1 or config.gap < 0 or config.jitter < 0:
            raise ValueError(
                f"patch_size must be >= 1, gap and jitter >= 0; got {config.patch_size}, {config.gap},"
                f" {config.jitter}"
            )
        self.head = ClassifierHead(2 * embed_dim, config.head_hidden_dim, len(NEIGHBOURS))
        self.loss = PretextClassificationLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "RelativePatch")
        c = self.config
        centre, other, labels = patch_pairs(
            x.float().cpu(), None, patch=c.patch_size, gap=c.gap, jitter=c.jitter, color_drop=c.color_drop
        )
        pair = torch.cat([centre, other]).to(device=x.device, dtype=x.dtype)
        feats = self.backbone(pair.contiguous(memory_format=memory_format_of(x)))
        f_centre, f_other = feats.chunk(2)
        logits = self.head(torch.cat([f_centre, f_other], dim=1))
        labels = labels.to(logits.device)
        return {"loss": self.loss(logits, labels), "patch_acc": self.loss.accuracy(logits, labels)}


def _check_size(config: RelativePatchConfig, size: int) -> None:
    check_patch_size(size, config.patch_size, config.gap, config.jitter)
