"""lightly (lightly-ai/lightly) benchmark checkpoints: PyTorch Lightning ``.ckpt`` files.

``state_dict`` holds ``backbone.*`` and the method's parts: ``projection_head``,
``prediction_head``, ``prototypes``, momentum/teacher copies (``teacher_backbone``,
``teacher_projection_head``, ``student_backbone``, ``student_projection_head``,
``backbone_momentum``, ``projection_head_momentum``), the loss (``criterion``, e.g.
DINO's center) and the ``online_classifier``. The backbone is either a torchvision
ResNet with ``fc = Identity`` (``backbone.conv1.weight``, the ImageNet benchmarks) or
``nn.Sequential(*resnet.children()[:-1])`` (``backbone.0.weight`` for ``conv1``, ``1``
for ``bn1``, ``4``-``7`` for ``layer1``-``layer4``; the examples), or lightly's own CIFAR
ResNet (``ResNetGenerator``, the CIFAR-10 benchmark's backbone) as such a Sequential:
``2``-``5`` for ``layer1``-``layer4`` and ``shortcut`` for ``downsample``, converted onto
``resnet18_cifar_lightly`` (no stem ReLU, as that Sequential has none). MoCo's momentum
copies are ``key_backbone``/``key_projection_head`` in the ImageNet benchmark (checked
against lightly's benchmarks/ and docs/ benchmark sources).
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
from zoo.errors import ConversionError

#: lightly's CIFAR ResNets map onto zoo's CIFAR stems (3x3 conv, stride 1, padding 1, no
#: max-pool, as lightly/models/resnet.py builds them); the benchmark's Sequential lacks the
#: stem ReLU and gets the architectures that lack it too.
CIFAR = ("resnet18_cifar", "resnet50_cifar")
CIFAR_NO_STEM_RELU = ("resnet18_cifar_lightly",)
ARCHS = archs_of("resnet") + CIFAR_NO_STEM_RELU
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
    "key_backbone",  # MoCo v2 (benchmarks/imagenet/resnet50/mocov2.py)
    "key_projection_head",
    "head",  # DINO's student head and its teacher copy (cifar10_benchmark.py)
    "teacher_head",
    "memory_bank",  # NNCLR's / SMoG's memory banks
    "queues",  # SwAV's queues
    "smog",  # SMoG's prototypes
    "criterion",
    "online_classifier",
)
# Children of a torchvision ResNet, by index (relu, maxpool and avgpool have no weights).
_SEQUENTIAL = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
# Children of lightly's own CIFAR ResNet (lightly/models/resnet.py ResNetGenerator: conv1,
# bn1, layer1-4, linear), as the CIFAR-10 benchmark's nn.Sequential(*children()[:-1], pool).
_GENERATOR = {"0": "conv1", "1": "bn1", "2": "layer1", "3": "layer2", "4": "layer3", "5": "layer4"}
_INDEXED = re.compile(r"^(\d+)\.(.+)$")
_SHORTCUT = re.compile(r"^(layer\d\.\d+)\.shortcut\.")


def unwrap(obj: object, source: str) -> StateDict:
    return pick(obj, ("state_dict",), source)


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, ("backbone",), _HEADS) and any(
        k.startswith(h + ".") for k in state_dict for h in ("projection_head", "online_classifier")
    )


def _generator_layout(mapped: Mapping[str, torch.Tensor]) -> bool:
    """Whether the backbone is lightly's ResNetGenerator (``shortcut`` instead of ``downsample``)."""
    return any(".shortcut." in k for k in mapped)


def _sequential_without_stem_relu(mapped: Mapping[str, torch.Tensor]) -> bool:
    """The CIFAR benchmark's ``nn.Sequential(*ResNetGenerator(...).children()[:-1], pool)``:
    the generator applies its stem ReLU functionally, so that Sequential has none."""
    return _generator_layout(mapped) and any(k.startswith("2.") for k in mapped)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("lightly", arch, ARCHS)
    mapped, leftovers = strip_prefix(state_dict, "backbone.", _HEADS)
    generator = _generator_layout(mapped)
    sequential = _GENERATOR if generator else _SEQUENTIAL
    if generator:
        wanted = CIFAR_NO_STEM_RELU if _sequential_without_stem_relu(mapped) else CIFAR
        if arch not in wanted:
            raise ConversionError(
                f"lightly: this backbone is lightly's CIFAR ResNet (ResNetGenerator"
                f"{', as nn.Sequential: no ReLU after the stem' if wanted is CIFAR_NO_STEM_RELU else ''}),"
                f" which converts to {', '.join(wanted)}, not {arch!r}"
            )
    elif arch in CIFAR_NO_STEM_RELU:
        raise ConversionError(f"lightly: {arch} is for lightly's ResNetGenerator backbones only")
    renamed: StateDict = {}
    for key, value in mapped.items():
        m = _INDEXED.match(key)
        if m and m.group(1) in sequential:
            key = f"{sequential[m.group(1)]}.{m.group(2)}"
        elif m:
            leftovers.append("backbone." + key)
            continue
        # ResNetGenerator's BasicBlock/Bottleneck name torchvision's downsample "shortcut".
        key = _SHORTCUT.sub(r"\1.downsample.", key)
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
