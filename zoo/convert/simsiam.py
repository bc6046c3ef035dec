"""SimSiam (facebookresearch/simsiam): ``{epoch, arch, state_dict, optimizer}``.

The state dict holds ``module.encoder.*``, a torchvision ResNet-50 whose ``fc`` is the
3-layer projector (``fc.0, 1, 3, 4, 6, 7``), and the predictor ``module.predictor.{0,1,3}``
(simsiam/builder.py). main_lincls.py keeps ``module.encoder`` without ``fc``.
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


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    return "module." if any(k.startswith("module.encoder.") for k in state_dict) else ""


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    p = _prefix(state_dict)
    return f"{p}encoder.conv1.weight" in state_dict and has_layout(
        state_dict, (f"{p}encoder", f"{p}predictor")
    )


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("simsiam", arch, ARCHS)
    p = _prefix(state_dict)
    mapped, leftovers = strip_prefix(state_dict, f"{p}encoder.", (f"{p}encoder.fc", f"{p}predictor"))
    return check_complete(mapped, leftovers, "simsiam", arch)


CONVERTER = register_converter(
    Converter(
        name="simsiam",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="SimSiam .pth.tar (module.encoder with projector fc, module.predictor)",
        method="simsiam",
    )
)
