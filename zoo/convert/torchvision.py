"""torchvision's own ResNet layout: ``conv1``, ``bn1``, ``layer1.0.conv1`` ... and the ``fc`` classifier.

Several releases are backbones saved in exactly this layout (with ``fc`` removed):
DINO's ``dino_resnet50_pretrain.pth``, Barlow Twins' and VICReg's ``resnet50.pth``,
mmselfsup's ``extract_backbone_weights.py`` output, and timm's ResNets, whose names are
torchvision's. ``--from auto`` calls all of them ``torchvision``; their own format names
(``dino``, ``barlowtwins`` ...) read them too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.convert import (
    Converter,
    StateDict,
    archs_of,
    check_complete,
    has_layout,
    register_converter,
    require_arch,
    strip_prefix,
)

#: The top-level modules of a torchvision ResNet.
RESNET_MODULES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")
ARCHS = archs_of("resnet")
_HEADS = ("fc",)  # the ImageNet classifier


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, ("conv1", "layer1"), RESNET_MODULES)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("torchvision", arch, ARCHS)
    mapped, leftovers = strip_prefix(state_dict, "", _HEADS)
    return check_complete(mapped, leftovers, "torchvision", arch)


CONVERTER = register_converter(
    Converter(
        name="torchvision",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="torchvision ResNet state dict (conv1, layer1.0 ..., fc); also timm ResNets",
    )
)
