"""lightly (lightly-ai/lightly) benchmark checkpoints: PyTorch Lightning ``.ckpt`` files.

``state_dict`` holds ``backbone.*`` and the method's parts: ``projection_head``,
``prediction_head``, ``prototypes``, momentum/teacher copies (``teacher_backbone``,
``teacher_projection_head``, ``student_backbone``, ``student_projection_head``,
``backbone_momentum``, ``projection_head_momentum``), the loss (``criterion``, e.g.
DINO's center) and the ``online_classifier``. The backbone is either a torchvision
ResNet with ``fc = Identity`` (``backbone.conv1.weight``, the ImageNet benchmarks) or
``nn.Sequential(*resnet.children()[:-1])`` (``backbone.0.weight`` for ``conv1``, ``1``
for ``bn1``, ``4``-``7`` for ``layer1``-``layer4``; the examples and CIFAR benchmarks).
"""

from __future__ import annotations

import re
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

ARCHS = archs_of("resnet")
_HEADS = (
    "projection_head",
    "prediction_head",
    "prototypes",
    "teacher_backbone",
    "teacher_projection_head",
    "student_backbone",
    "student_projection_head",
    "backbone_momentum",
    "projection_head_momentum",
    "criterion",
    "online_classifier",
)
# Children of a torchvision ResNet, by index (relu, maxpool and avgpool have no weights).
_SEQUENTIAL = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def unwrap(obj: object, source: str) -> StateDict:
    return pick(obj, ("state_dict",), source)


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, ("backbone",), _HEADS) and any(
        k.startswith(h + ".") for k in state_dict for h in ("projection_head", "online_classifier")
    )


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("lightly", arch, ARCHS)
    mapped, leftovers = strip_prefix(state_dict, "backbone.", _HEADS)
    renamed: StateDict = {}
    for key, value in mapped.items():
        m = _INDEXED.match(key)
        if m and m.group(1) in _SEQUENTIAL:
            key = f"{_SEQUENTIAL[m.group(1)]}.{m.group(2)}"
        elif m:
            leftovers.append("backbone." + key)
            continue
        renamed[key] = value
    return check_complete(renamed, leftovers, "lightly", arch)


CONVERTER = register_converter(
    Converter(
        name="lightly",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="lightly benchmark .ckpt (state_dict: backbone, projection_head, online_classifier ...)",
        unwrap=unwrap,
    )
)
