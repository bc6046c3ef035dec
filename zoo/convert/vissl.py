"""VISSL (facebookresearch/vissl) checkpoints.

A training checkpoint nests the trunk at ``classy_state_dict.base_model.model.trunk``
(heads beside it at ``...model.heads``), a model-zoo file at ``model_state_dict.model.trunk``
or holds the trunk itself; extra_scripts/convert_classy_vision_to_vissl_resnet.py writes
``{"model_state_dict": trunk}``. Trunk keys are ``_feature_blocks.<torchvision keys>``:
extra_scripts/convert_vissl_to_torchvision.py strips that prefix and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from zoo.convert import (
    Converter,
    StateDict,
    archs_of,
    check_complete,
    register_converter,
    require_arch,
    strip_prefix,
    tensor_mapping,
)
from zoo.errors import ConversionError

ARCHS = archs_of("resnet")
_TRUNK_PATHS = (
    ("classy_state_dict", "base_model", "model", "trunk"),
    ("model_state_dict", "model", "trunk"),
)


def unwrap(obj: object, source: str) -> StateDict:
    for path in _TRUNK_PATHS:
        node = obj
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            return tensor_mapping(node, f"{source}:{'.'.join(path)}")
    # extra_scripts/convert_classy_vision_to_vissl_resnet.py: {"model_state_dict": trunk}.
    node = obj.get("model_state_dict") if isinstance(obj, Mapping) else None
    if isinstance(node, Mapping) and any(str(k).startswith("_feature_blocks.") for k in node):
        return tensor_mapping(node, f"{source}:model_state_dict")
    if isinstance(obj, Mapping) and any(str(k).startswith("_feature_blocks.") for k in obj):
        return tensor_mapping(obj, source)
    found = ", ".join(repr(k) for k in list(obj)[:10]) if isinstance(obj, Mapping) else type(obj).__name__
    raise ConversionError(
        f"{source}: no VISSL trunk (expected classy_state_dict.base_model.model.trunk,"
        f" model_state_dict.model.trunk or model_state_dict of _feature_blocks.*; found {found})"
    )


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return bool(state_dict) and all(k.startswith("_feature_blocks.") for k in state_dict)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("vissl", arch, ARCHS)
    mapped, leftovers = strip_prefix(state_dict, "_feature_blocks.")
    return check_complete(mapped, leftovers, "vissl", arch)


CONVERTER = register_converter(
    Converter(
        name="vissl",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="VISSL checkpoint (classy_state_dict ... trunk: _feature_blocks.*)",
        unwrap=unwrap,
    )
)
