"""SimCLR v1/v2 (google-research/simclr): TensorFlow checkpoints of a ResNet-50.

Variables are named by creation order, as TF1's ``tf.layers`` numbers them:
``base_model/conv2d[_N]/kernel`` (HWIO) and ``base_model/batch_normalization[_N]/
{gamma,beta,moving_mean,moving_variance}``. In each block with a projection shortcut
the shortcut's conv and BN are created *before* the block's own layers (resnet.py), so
torchvision's ``downsample`` comes first in that order. Beside the backbone: the linear
head ``head_supervised/*``, v2's projection head ``head_contrastive/*`` and its moving
average copy ``ema_model/*`` (the online weights are converted, as Separius's converter
does by default), LARS's ``*/Momentum`` slots and ``global_step``.

Inputs are [0, 1] pixels with no mean/std normalisation; evaluation crops the centre
87.5% and resizes it bicubically (data_util.py), hence :data:`PREPROCESS`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import torch

from zoo.convert import (
    Converter,
    StateDict,
    arch_shapes,
    check_complete,
    is_under,
    register_converter,
    require_arch,
    tensor_mapping,
)
from zoo.convert.containers import TF_CHECKPOINT
from zoo.registry import Preprocess

#: SimCLR's TF ResNet pads its stem max-pool "SAME" (resnet.py), hence the TF-padded twin.
ARCHS = ("resnet50_tfpool",)
PREPROCESS = Preprocess(
    input_size=224, resize_size=256, interpolation="bicubic", mean=(0, 0, 0), std=(1, 1, 1)
)
_HEADS = ("head_supervised", "head_contrastive", "ema_model", "global_step")
_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_BLOCK = re.compile(r"^(layer\d+\.\d+)\.")


@functools.cache
def tf_names(arch: str) -> dict[str, str]:
    """``{TF variable: torchvision key}`` for ``arch``, following TF's layer numbering."""
    shapes = arch_shapes(arch)
    convs = [k.removesuffix(".weight") for k in shapes if k.endswith(".weight") and len(shapes[k]) == 4]
    bns = [k.removesuffix(".running_mean") for k in shapes if k.endswith(".running_mean")]
    names = {}
    for i, module in enumerate(_creation_order(convs)):
        names[f"base_model/{_numbered('conv2d', i)}/kernel"] = f"{module}.weight"
    for i, module in enumerate(_creation_order(bns)):
        for tf, tv in _BN.items():
            names[f"base_model/{_numbered('batch_normalization', i)}/{tf}"] = f"{module}.{tv}"
    return names


def _numbered(layer: str, i: int) -> str:
    return layer if i == 0 else f"{layer}_{i}"


def _creation_order(modules: list[str]) -> list[str]:
    """torchvision's order with each block's ``downsample`` moved to the front of its block."""
    blocks: dict[str, list[str]] = {}
    for m in modules:
        match = _BLOCK.match(m)
        blocks.setdefault(match.group(1) if match else m, []).append(m)
    return [m for group in blocks.values() for m in sorted(group, key=lambda m: ".downsample." not in m)]


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return "base_model/conv2d/kernel" in state_dict


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch(
        "simclr-tf", arch, ARCHS, "its max-pool pads 'SAME': only resnet50_tfpool computes its features"
    )
    names = tf_names(arch)
    mapped: StateDict = {}
    leftovers = []
    for key, value in state_dict.items():
        if is_under(key.replace("/", "."), _HEADS) or key.endswith("/Momentum"):
            continue  # heads, the EMA copy, optimiser slots, the step counter
        if key not in names:
            leftovers.append(key)
            continue
        # TF kernels are (height, width, in, out); PyTorch's (out, in, height, width).
        mapped[names[key]] = value.permute(3, 2, 0, 1).contiguous() if value.ndim == 4 else value
    return check_complete(mapped, leftovers, "simclr-tf", arch)


CONVERTER = register_converter(
    Converter(
        name="simclr-tf",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="SimCLR v1/v2 TF checkpoint (folder, prefix, .index or .zip; base_model/conv2d_N)",
        container=TF_CHECKPOINT,
        unwrap=tensor_mapping,
        method="simclr",
        preprocess=PREPROCESS,
    )
)
