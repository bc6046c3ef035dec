"""RotNet (Gidaris, Singh & Komodakis 2018), https://arxiv.org/abs/1803.07728.

Unsupervised representation learning by predicting image rotations: every image of the batch
is shown at 0, 90, 180 and 270 degrees (all four in the same batch, the paper's best setting),
and a classifier on the backbone's pooled features predicts which. Recognising the rotation
requires knowing where the sky, the head or the wheels of an object are, so the features
learn object structure.

What zoo's recipe changes from the paper: the paper's CIFAR-10 backbone is a Network-In-Network
(3-5 conv blocks) with the rotation classifier on its last block, trained 100+ epochs with SGD
0.1; zoo trains its quarter-width CIFAR ResNet-18 with a linear (or MLP) head on the pooled
output, with random crops and flips and no colour jitter (the view preset's 20% grayscale
stays), on the shared CPU budget. The paper's finding that a *middle* block's features are
best for the downstream linear probe is measured by :mod:`zoo.training.pretext.probe` (per-block
pooled features of the trained backbone, each through ``zoo.evaluate.linear_probe``;
``python -m zoo.training.pretext.probe runs/<name>/export ../shared/data/cifar10``); the exported
encoder is the whole backbone.

The rotation accuracy of each step is logged as ``rotation_acc`` (%) in metrics.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from zoo.training.losses import PretextClassificationLoss
from zoo.training.methods._pretext import one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext.rotation import NUM_ROTATIONS, rotations


@dataclass(frozen=True)
class RotNetConfig(MethodConfig):
    #: 0: a linear rotation classifier on the pooled features; > 0: an MLP with this hidden
    #: width (BN + ReLU), closer to the paper's conv classifier block.
    head_hidden_dim: int = 0


@register_method
class RotNet(Method):
    """``CE(h(f(rot_k(x))), k)`` over the four rotations ``k`` of every image."""

    name = "rotnet"
    Config = RotNetConfig
    task_metrics: ClassVar[dict[str, str]] = {"rotation_acc": "4-way rotation accuracy (%)"}

    def __init__(self, backbone: nn.Module, embed_dim: int, config: RotNetConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.head_hidden_dim < 0:
            raise ValueError(f"head_hidden_dim must be >= 0, got {config.head_hidden_dim}")
        if config.head_hidden_dim:
            h = config.head_hidden_dim
            self.head = nn.Sequential(
                nn.Linear(embed_dim, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, NUM_ROTATIONS)
            )
        else:
            self.head = nn.Linear(embed_dim, NUM_ROTATIONS)
        self.loss = PretextClassificationLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec()

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "RotNet")
        images, labels = rotations(x)
        logits = self.head(self.backbone(images))
        labels = labels.to(logits.device)
        return {"loss": self.loss(logits, labels), "rotation_acc": self.loss.accuracy(logits, labels)}
