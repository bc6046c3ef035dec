"""timm's Vision Transformer layout: ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N``, ``norm`` and the ``head`` classifier.

DINO's ViT backbones (``dino_deitsmall16_pretrain.pth`` ...) are saved in exactly this
layout, so ``--from auto`` calls them ``timm``; ``--from dino`` reads them too.
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
    register_converter,
    require_arch,
    strip_prefix,
)

#: The top-level parameters and modules of a timm ViT (register tokens and fc_norm
#: appear in some variants).
VIT_MODULES = ("cls_token", "reg_token", "pos_embed", "patch_embed", "blocks", "norm", "fc_norm", "head")
# MoCo v3's 12-head ViT-S has the same shapes as timm's 6-head one: it is only offered
# when asked for by name.
ARCHS = tuple(a for a in archs_of("vit") if not a.endswith("_mocov3"))
_HEADS = ("head",)  # the classifier


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, ("cls_token", "patch_embed", "blocks"), VIT_MODULES)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("timm", arch, (*ARCHS, "vit_small_patch16_224_mocov3"))
    mapped, leftovers = strip_prefix(state_dict, "", _HEADS)
    return check_complete(mapped, leftovers, "timm", arch)


CONVERTER = register_converter(
    Converter(
        name="timm",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="timm Vision Transformer state dict (cls_token, patch_embed, blocks.N, head)",
    )
)
