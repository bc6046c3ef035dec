"""solo-learn (vturrisi/solo-learn): PyTorch Lightning ``.ckpt`` files.

``state_dict`` holds ``backbone.*`` (a torchvision ResNet with ``fc = Identity``) and
method parts: ``projector``, ``predictor``, ``prototypes``, ``head``, the online linear
``classifier``, momentum copies (``momentum_backbone``, ``momentum_projector``,
``momentum_head``, ``momentum_classifier``), queues (``queue``, ``queue_ptr``,
``queue_y``, All4One's ``queue_index``), DeepCluster-v2's memory bank
(``local_memory_index``, ``local_memory_embeddings``) and loss buffers
(``dino_loss_func``), checked against solo/methods/*.py. Older releases named the backbone
``encoder``, which main_linear.py renames (and ``momentum_encoder``).

solo-learn's CIFAR stem is a 3x3 conv with ``padding=2`` (solo/methods/base.py) where
zoo's ``resnet*_cifar`` pad by 1: the weights would load and compute something else, so
CIFAR checkpoints are refused rather than converted.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.convert import (
    Converter,
    StateDict,
    check_complete,
    has_layout,
    pick,
    register_converter,
    require_arch,
    strip_prefix,
)
from zoo.errors import ConversionError

ARCHS = ("resnet18", "resnet50")
_HEADS = (
    "projector",
    "predictor",
    "prototypes",
    "head",
    "classifier",
    "momentum_backbone",
    "momentum_encoder",
    "momentum_projector",
    "momentum_head",
    "momentum_classifier",
    "queue",
    "queue_ptr",
    "queue_y",
    "queue_index",  # All4One
    "predictor2",  # All4One's second predictor and its transformer
    "transformer_encoder",
    "local_memory_index",  # DeepCluster-v2's memory bank (deepclusterv2.py register_buffer)
    "local_memory_embeddings",
    "dino_loss_func",
)


def unwrap(obj: object, source: str) -> StateDict:
    return pick(obj, ("state_dict",), source)


def _backbone(state_dict: Mapping[str, torch.Tensor]) -> str:
    return "encoder" if any(k.startswith("encoder.") for k in state_dict) else "backbone"


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    # The online linear classifier is what every solo-learn method adds.
    return has_layout(state_dict, (_backbone(state_dict), "classifier"), _HEADS)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("solo-learn", arch, ARCHS)
    prefix = _backbone(state_dict) + "."
    stem = state_dict.get(prefix + "conv1.weight")
    if stem is not None and tuple(stem.shape[-2:]) == (3, 3):
        raise ConversionError(
            "solo-learn: this is a CIFAR model (3x3 stem conv with padding 2), which no zoo"
            " architecture reproduces; only ImageNet-stem ResNets convert"
        )
    mapped, leftovers = strip_prefix(state_dict, prefix, _HEADS)
    return check_complete(mapped, leftovers, "solo-learn", arch)


CONVERTER = register_converter(
    Converter(
        name="solo-learn",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="solo-learn Lightning .ckpt (state_dict: backbone, projector, classifier ...)",
        unwrap=unwrap,
    )
)
