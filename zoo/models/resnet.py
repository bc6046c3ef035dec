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
    model.conv1 = nn.Conv2d(3, model.bn1.num_features, kernel_size=3, stride=1, padding=1, bias=False)
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


class _NarrowResNet(torchvision.models.ResNet):
    """torchvision's ResNet with every stage ``width / 64`` times as wide.

    torchvision fixes the stage widths at 64-128-256-512 (``width_per_group`` only widens
    Bottleneck's inner conv), so the stem and stages are rebuilt here with torchvision's own
    ``_make_layer``: the module tree and state-dict keys stay torchvision's, only shapes
    shrink. Narrow CIFAR ResNet-18s are what fits a CPU training budget (measured in the
    training issue with bf16 + channels_last: 130 views/s at full width, 395 at half, 1,132
    at quarter width).
    """

    def __init__(self, layers: list[int], width: int, **kwargs) -> None:
        super().__init__(torchvision.models.resnet.BasicBlock, layers, **kwargs)
        block = torchvision.models.resnet.BasicBlock
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(width)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        for m in self.modules():  # the same initialisation torchvision gives its layers
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@register_arch("resnet18_cifar_half", embed_dim=256, source="torchvision", default_input_size=32)
def resnet18_cifar_half(**kwargs) -> nn.Module:
    """CIFAR ResNet-18 at half width (32-64-128-256 channels, 2.8 M parameters)."""
    return _cifar_stem(_headless(_NarrowResNet([2, 2, 2, 2], width=32, **kwargs)))


@register_arch("resnet18_cifar_quarter", embed_dim=128, source="torchvision", default_input_size=32)
def resnet18_cifar_quarter(**kwargs) -> nn.Module:
    """CIFAR ResNet-18 at quarter width (16-32-64-128 channels, 0.7 M parameters)."""
    return _cifar_stem(_headless(_NarrowResNet([2, 2, 2, 2], width=16, **kwargs)))


@register_arch("resnet18_half", embed_dim=256, source="torchvision", default_input_size=112)
def resnet18_half(**kwargs) -> nn.Module:
    """ResNet-18 at half width with the ImageNet stem (2.8 M parameters), for photos at
    96-128 px: at 112 px it costs a quarter of ResNet-18's FLOPs at the same size, less than
    ResNet-18 at 64 px, and keeps the resolution that small objects need."""
    return _headless(_NarrowResNet([2, 2, 2, 2], width=32, **kwargs))


@register_arch("resnet18_cifar_lightly", embed_dim=512, source="torchvision", default_input_size=32)
def resnet18_cifar_lightly(**kwargs) -> nn.Module:
    """lightly's CIFAR-10 benchmark backbone: ``nn.Sequential(*ResNetGenerator("resnet-18")
    .children()[:-1], nn.AdaptiveAvgPool2d(1))`` (lightly/models/resnet.py, cifar10_benchmark.py).

    Its layers are zoo's CIFAR ResNet-18's (a 3x3 stride-1 stem, no max-pool, BasicBlocks
    whose ``shortcut`` is torchvision's ``downsample``), but ResNetGenerator applies the stem
    ReLU in ``forward`` (``F.relu``), so the Sequential of its children has none: the same
    weights through ``resnet18_cifar`` would compute other features.
    """
    model = resnet18_cifar(**kwargs)
    model.relu = nn.Identity()  # the stem's ReLU only: each BasicBlock has its own
    return model
