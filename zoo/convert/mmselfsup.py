"""mmselfsup / OpenSelfSup (open-mmlab/mmselfsup) checkpoints: ``{state_dict, meta, ...}``.

mmselfsup 1.x algorithms hold ``backbone.*`` (mmcv's ResNet, whose names are
torchvision's: mmpretrain's torchvision_to_mmcls.py only adds the prefix), ``neck.*``,
``head.*``, momentum copies (``target_net``, ``momentum_encoder``, ``encoder_k``,
``teacher``), queues (``queue``, ``queue_ptr``; DenseCL's ``queue2``, ``queue2_ptr``),
memory banks (NPID's and ODC's ``memory_bank``), DeepCluster's and ODC's ``loss_weight``
and the ``data_preprocessor`` buffers (checked against mmselfsup's algorithms).
OpenSelfSup / mmselfsup 0.x nest the backbone as ``encoder_q.0.*`` (MoCo, neck
``encoder_q.1``) or ``online_net.0.*`` (BYOL, neck ``online_net.1``).
tools/model_converters/extract_backbone_weights.py writes ``{state_dict: <backbone keys
without the prefix>, author: "MMSelfSup"}``: torchvision's layout, read by ``--from
mmselfsup`` too (``--from auto`` calls it ``torchvision``).
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
    pick,
    register_converter,
    require_arch,
    strip_prefix,
)
from zoo.convert.torchvision import RESNET_MODULES

ARCHS = archs_of("resnet")
_BACKBONES = {"backbone.": "neck", "encoder_q.0.": "encoder_q.1", "online_net.0.": "online_net.1"}
_HEADS = (
    "head",
    "target_net",
    "momentum_encoder",
    "encoder_k",
    "teacher",
    "predictor",
    "queue",
    "queue_ptr",
    "queue2",  # DenseCL's second (dense) queue
    "queue2_ptr",
    "memory_bank",  # NPID's SimpleMemory, ODC's ODCMemory (feature bank, sampler, centroids)
    "loss_weight",  # DeepCluster's and ODC's class re-weighting buffer
    "data_preprocessor",
)


def unwrap(obj: object, source: str) -> StateDict:
    return pick(obj, ("state_dict",), source)


def _layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    for prefix, neck in _BACKBONES.items():
        if any(k.startswith(prefix) for k in state_dict):
            return prefix, neck
    if has_layout(state_dict, ("conv1", "layer1"), RESNET_MODULES):
        return "", ""  # extract_backbone_weights.py's output: the backbone alone
    return "backbone.", "neck"


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    prefix, neck = _layout(state_dict)
    return bool(prefix) and has_layout(state_dict, (prefix.rstrip("."), neck), _HEADS)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("mmselfsup", arch, ARCHS)
    prefix, neck = _layout(state_dict)
    heads = (neck, *_HEADS) if prefix else ()
    mapped, leftovers = strip_prefix(state_dict, prefix, heads)
    return check_complete(mapped, leftovers, "mmselfsup", arch)


CONVERTER = register_converter(
    Converter(
        name="mmselfsup",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="mmselfsup / OpenSelfSup .pth (state_dict: backbone, neck, head, momentum copies)",
        unwrap=unwrap,
    )
)
