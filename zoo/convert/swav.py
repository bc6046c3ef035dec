"""SwAV, DeepCluster-v2 and SeLa-v2 (facebookresearch/swav): a flat state dict.

Keys are ``module.<torchvision keys>`` plus the projection head
``module.projection_head.{0,1,3}`` and the prototypes: ``module.prototypes.weight``
(SwAV) or ``module.prototypes.prototypes{0,1,2}.weight`` (``MultiPrototypes``,
DeepCluster-v2 and SeLa-v2; src/resnet50.py). hubconf.py iterates the file as is;
eval_linear.py also accepts ``{"state_dict": ...}``. SwAV's ``ConstantPad2d(1)`` followed
by a ``padding=2`` conv is torchvision's ``padding=3`` conv, so keys map one to one.
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
from zoo.convert.torchvision import ARCHS, RESNET_MODULES


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    return "module." if any(k.startswith("module.") for k in state_dict) else ""


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    p = _prefix(state_dict)
    backbone = tuple(p + m for m in RESNET_MODULES)
    return has_layout(state_dict, (f"{p}conv1", f"{p}projection_head", f"{p}prototypes"), backbone)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("swav", arch, ARCHS)
    p = _prefix(state_dict)
    mapped, leftovers = strip_prefix(state_dict, p, (f"{p}projection_head", f"{p}prototypes"))
    return check_complete(mapped, leftovers, "swav", arch)


CONVERTER = register_converter(
    Converter(
        name="swav",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="SwAV / DeepCluster-v2 / SeLa-v2 .pth.tar (module.*, projection_head, prototypes)",
        method="swav",
    )
)
