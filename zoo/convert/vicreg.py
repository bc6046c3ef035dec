"""VICReg (facebookresearch/vicreg): ``resnet50.pth`` and ``resnet50_fullckpt.pth``.

``resnet50.pth`` is ``model.module.backbone.state_dict()`` of vicreg's resnet.py, whose
names are torchvision's (it has no ``fc``; its ``ConstantPad2d`` + ``padding=2`` stem is
torchvision's ``padding=3`` conv). The full checkpoint is main_vicreg.py's
``{epoch, model, optimizer}`` with ``model`` holding ``module.backbone.*`` and the
projector ``module.projector.*`` (layout inferred from main_vicreg.py: no released full
checkpoint was inspected).
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

_FULL = ("module.backbone", "module.projector")


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, _FULL)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("vicreg", arch, ARCHS)
    if any(k.startswith("module.backbone.") for k in state_dict):
        mapped, leftovers = strip_prefix(state_dict, "module.backbone.", _FULL[1:])
    else:
        mapped, leftovers = strip_prefix(state_dict, "")
    return check_complete(mapped, leftovers, "vicreg", arch)


CONVERTER = register_converter(
    Converter(
        name="vicreg",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="VICReg resnet50.pth or full checkpoint (module.backbone / projector)",
        method="vicreg",
    )
)
