"""Small CIFAR students for distillation (CRD, feature regression).

The shipped students learned from the quarter-width CIFAR ResNet-18 (0.7 M parameters);
since session 31 the recipes name the half-width one (2.8 M). The student must be smaller.
``resnet10_cifar_quarter`` keeps the quarter-width teacher's stage widths (16-32-64-128, so a
128-d embedding) and one BasicBlock per stage instead of two: a shallower network of the same
family and width, as CRD's own same-family pairs mostly are (ResNet-32x4 -> ResNet-8x4,
ResNet-110 -> ResNet-20, WRN-40-2 -> WRN-16-2); against the half-width teacher it is narrower
too. Shrinking the width instead (an eighth-width ResNet-18, 8 channels in
the first stage) would leave convolutions too thin to run efficiently on a CPU.
"""

from __future__ import annotations

from torch import nn

from zoo.models.resnet import _cifar_stem, _headless, _NarrowResNet
from zoo.registry import register_arch


@register_arch("resnet10_cifar_quarter", embed_dim=128, source="torchvision", default_input_size=32)
def resnet10_cifar_quarter(**kwargs) -> nn.Module:
    """CIFAR ResNet-10 at quarter width (one BasicBlock per stage of 16-32-64-128 channels,
    0.3 M parameters): the distillation student of the quarter-width ResNet-18."""
    return _cifar_stem(_headless(_NarrowResNet([1, 1, 1, 1], width=16, **kwargs)))
