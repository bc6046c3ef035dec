"""MoCo v3 (facebookresearch/moco-v3): ``{epoch, arch, state_dict, optimizer, scaler}``.

The state dict holds ``module.base_encoder.*`` (a torchvision ResNet-50 whose ``fc`` is the
projector: Linear, BN, ReLU, Linear, BN without affine; or a timm ViT whose ``head`` is
that projector), ``module.momentum_encoder.*`` and ``module.predictor.*`` (moco/builder.py).
main_lincls.py keeps ``base_encoder`` without ``fc``/``head``.

MoCo v3's ViT-Small has 12 attention heads where timm's has 6 (vits.py); the shapes are
the same, so only the architecture ``vit_small_patch16_224_mocov3`` gives its features.
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
from zoo.convert.torchvision import ARCHS as RESNETS

ARCHS = (*RESNETS, "vit_small_patch16_224_mocov3", "vit_base_patch16_224")


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    return "module." if any(k.startswith("module.base_encoder.") for k in state_dict) else ""


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    p = _prefix(state_dict)
    return has_layout(state_dict, (f"{p}base_encoder",), (f"{p}momentum_encoder", f"{p}predictor"))


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch(
        "moco-v3", arch, ARCHS, "MoCo v3's ViT-S has 12 attention heads: use vit_small_patch16_224_mocov3"
    )
    p = _prefix(state_dict)
    heads = (f"{p}base_encoder.fc", f"{p}base_encoder.head", f"{p}momentum_encoder", f"{p}predictor")
    mapped, leftovers = strip_prefix(state_dict, f"{p}base_encoder.", heads)
    return check_complete(mapped, leftovers, "moco-v3", arch)


CONVERTER = register_converter(
    Converter(
        name="moco-v3",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="MoCo v3 .pth.tar (module.base_encoder / momentum_encoder / predictor), ResNet or ViT",
        method="moco-v3",
    )
)
