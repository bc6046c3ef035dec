"""Spatial feature maps of a torchvision ResNet backbone, block by block.

A zoo backbone's ``forward`` returns pooled features (what ships and what kNN / linear
probes see). Dense pretext tasks (colorization, inpainting, super-resolution) need the last
feature map instead, and RotNet's finding is about *which block* features are best; both
come from running the ResNet's stages one by one, with the same modules (so the same
weights) as ``forward``.
"""

from __future__ import annotations

import torch
from torch import nn

#: Block 0 is the stem (conv1 + bn + relu + maxpool); blocks 1-4 are layer1..layer4.
BLOCKS = ("stem", "layer1", "layer2", "layer3", "layer4")


def is_resnet(backbone: nn.Module) -> bool:
    return all(hasattr(backbone, n) for n in ("conv1", "bn1", "relu", "maxpool", *BLOCKS[1:]))


def feature_maps(backbone: nn.Module, x: torch.Tensor, upto: int = 4) -> list[torch.Tensor]:
    """Output maps of blocks 0..``upto`` of a torchvision ResNet for input ``x``."""
    if not is_resnet(backbone):
        raise TypeError(
            f"{type(backbone).__name__} is not a torchvision ResNet (conv1, bn1, layer1..layer4); dense"
            " pretext tasks need its feature maps"
        )
    h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    maps = [h]
    for name in BLOCKS[1 : upto + 1]:
        h = getattr(backbone, name)(h)
        maps.append(h)
    return maps


def last_map(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return feature_maps(backbone, x)[-1]


@torch.no_grad()
def map_shape(backbone: nn.Module, size: int = 64) -> tuple[int, int]:
    """``(channels, stride)`` of the last feature map, measured on a ``size`` px input in eval
    mode (so BatchNorm statistics are not touched)."""
    was = backbone.training
    backbone.eval()
    try:
        out = last_map(backbone, torch.zeros(1, 3, size, size))
    finally:
        backbone.train(was)
    return out.shape[1], size // out.shape[-1]


@torch.no_grad()
def block_features(backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Globally average-pooled features (N, C_b) of every block 0..4: the candidates of
    RotNet's per-block linear probe."""
    return [m.mean(dim=(-2, -1)) for m in feature_maps(backbone, x)]
