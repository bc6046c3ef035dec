"""Barlow Twins (facebookresearch/barlowtwins): ``resnet50.pth`` and ``checkpoint.pth``.

``resnet50.pth`` is ``model.module.backbone.state_dict()``: a torchvision ResNet-50 with
``fc = Identity``, so torchvision's keys without ``fc``. The full ``checkpoint.pth`` is
``{epoch, model, optimizer}`` whose ``model`` holds ``module.backbone.*``, the projector
``module.projector.{0,1,3,4,6}`` and the loss's affine-free ``module.bn`` (main.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.convert import (
    Converter,
    StateDict,
    check_complete,
    has_layout,
    register_converter,
    require_arch,
    strip_prefix,
)
from zoo.convert.torchvision import ARCHS

_FULL = ("module.backbone", "module.projector", "module.bn")


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, _FULL)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("barlowtwins", arch, ARCHS)
    if any(k.startswith("module.backbone.") for k in state_dict):
        mapped, leftovers = strip_prefix(state_dict, "module.backbone.", _FULL[1:])
    else:
        mapped, leftovers = strip_prefix(state_dict, "")
    return check_complete(mapped, leftovers, "barlowtwins", arch)


CONVERTER = register_converter(
    Converter(
        name="barlowtwins",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="Barlow Twins resnet50.pth or checkpoint.pth (module.backbone / projector / bn)",
        method="barlowtwins",
    )
)
