"""ResNet backbones from torchvision, with the classifier removed.

The state-dict keys are torchvision's own (``conv1.weight``, ``layer1.0.conv1.weight`` ...)
minus ``fc.*``, so ``torchvision.models.resnet50()`` loads a zoo ResNet with
``strict=False`` reporting only ``fc`` missing, and upstream converters target one layout.
"""

from __future__ import annotations

import torchvision
from torch import nn

from zoo.registry import register_arch


def _headless(model: torchvision.models.ResNet) -> torchvision.models.ResNet:
    # Identity keeps torchvision's forward (pool + flatten) and drops fc from the state dict.
    model.fc = nn.Identity()
    return model


def _cifar_stem(model: torchvision.models.ResNet) -> torchvision.models.ResNet:
    """Swap the ImageNet stem (7x7 stride-2 conv + max-pool) for the CIFAR one.

    On 32 px images the ImageNet stem shrinks the map to 8x8 before the first block; every
    CIFAR recipe (SimCLR appendix B.9, solo-learn, lightly) uses a 3x3 stride-1 conv and no
    max-pool instead. The conv keeps the name ``conv1`` so checkpoints map 1:1.
    """
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register_arch("resnet18", embed_dim=512, source="torchvision")
def resnet18(**kwargs) -> nn.Module:
    return _headless(torchvision.models.resnet18(weights=None, **kwargs))


@register_arch("resnet50", embed_dim=2048, source="torchvision")
def resnet50(**kwargs) -> nn.Module:
    return _headless(torchvision.models.resnet50(weights=None, **kwargs))


@register_arch("resnet18_cifar", embed_dim=512, source="torchvision", default_input_size=32)
def resnet18_cifar(**kwargs) -> nn.Module:
    return _cifar_stem(resnet18(**kwargs))


@register_arch("resnet50_cifar", embed_dim=2048, source="torchvision", default_input_size=32)
def resnet50_cifar(**kwargs) -> nn.Module:
    return _cifar_stem(resnet50(**kwargs))
