"""What the pretext-task methods share: one image per sample, and their view declaration."""

from __future__ import annotations

import torch
from torch import nn


def single_view(views: list[torch.Tensor], name: str) -> torch.Tensor:
    """The image a pretext task is built from: the first view (the others, if the trainer
    drew any, are not used)."""
    if not views:
        raise ValueError(f"{name} takes at least 1 view, got none")
    return views[0]


def one_view_spec():
    """``ViewSpec(count=1)`` where the trainer supports view declarations: pretext tasks make
    their inputs from one view of each image, so drawing a second would be wasted work."""
    try:
        from zoo.training.augment import ViewSpec
    except ImportError:  # a trainer without view declarations draws the recipe's views
        return None
    return ViewSpec(count=1)


class ClassifierHead(nn.Sequential):
    """Concatenated per-part features -> pretext classes: Linear, BN, ReLU, Linear (the
    fc7/fc8 of the jigsaw and patch-location networks), or one Linear with ``hidden=0``."""

    def __init__(self, in_dim: int, hidden: int, classes: int) -> None:
        if hidden:
            super().__init__(
                nn.Linear(in_dim, hidden, bias=False),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Linear(hidden, classes),
            )
        else:
            super().__init__(nn.Linear(in_dim, classes))


class ConvDecoder(nn.Module):
    """A ResNet feature map (N, C, S / stride, S / stride) -> (N, out, S, S) for the pixel
    pretext tasks (inpainting, super-resolution): ``log2(stride)`` stages of 2x nearest
    upsampling + 3x3 conv + BN + ReLU, halving the width (not below ``min_width``), then a
    3x3 conv to ``out`` channels (the context encoder's up-convolutional decoder)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, min_width: int = 16) -> None:
        super().__init__()
        stages = stride.bit_length() - 1
        if stride != 1 << stages:
            raise ValueError(f"the feature map's stride must be a power of 2, got {stride}")
        layers: list[nn.Module] = []
        width = in_ch
        for _ in range(stages):
            nxt = max(min_width, width // 2)
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width, nxt, 3, padding=1, bias=False),
                nn.BatchNorm2d(nxt),
                nn.ReLU(inplace=True),
            ]
            width = nxt
        layers.append(nn.Conv2d(width, out_ch, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
