"""MoCo v1/v2 (facebookresearch/moco): ``{epoch, arch, state_dict, optimizer}``.

The state dict holds the query encoder ``module.encoder_q.<torchvision keys>`` with its
projection head ``module.encoder_q.fc`` (v1: one Linear 2048->128; v2: ``fc.0``, ``fc.2``),
the momentum encoder ``module.encoder_k.*`` and the queue ``module.queue``,
``module.queue_ptr`` (moco/builder.py). main_lincls.py keeps ``encoder_q`` without ``fc``.
Checkpoints trained on one GPU carry no ``module.`` prefix (facebookresearch/moco#84).
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
    return "module." if any(k.startswith("module.encoder_q.") for k in state_dict) else ""


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    p = _prefix(state_dict)
    return f"{p}encoder_q.conv1.weight" in state_dict and has_layout(
        state_dict, (f"{p}encoder_q",), (f"{p}encoder_k", f"{p}queue", f"{p}queue_ptr")
    )


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("moco", arch, ARCHS)
    p = _prefix(state_dict)
    heads = (f"{p}encoder_q.fc", f"{p}encoder_k", f"{p}queue", f"{p}queue_ptr")
    mapped, leftovers = strip_prefix(state_dict, f"{p}encoder_q.", heads)
    return check_complete(mapped, leftovers, "moco", arch)


CONVERTER = register_converter(
    Converter(
        name="moco",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="MoCo v1/v2 .pth.tar (module.encoder_q / encoder_k / queue)",
        method="moco",
    )
)
