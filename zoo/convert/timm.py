"""timm's Vision Transformer layout: ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N``, ``norm`` and the ``head`` classifier.

DINO's ViT backbones (``dino_deitsmall16_pretrain.pth`` ...) are saved in exactly this
layout, so ``--from auto`` calls them ``timm``; ``--from dino`` reads them too. So is MoCo
v3's ViT after its convert_to_deit.py (``{"model": base_encoder without head}``), whose
ViT-S has 12 heads where timm's has 6: the two are told apart by MoCo v3's fixed sin-cos
position embedding (:func:`is_mocov3_vit`), and each architecture refuses the other's file.
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
from zoo.errors import ConversionError

#: The top-level parameters and modules of a timm ViT (register tokens and fc_norm
#: appear in some variants).
VIT_MODULES = ("cls_token", "reg_token", "pos_embed", "patch_embed", "blocks", "norm", "fc_norm", "head")
MOCOV3_VITS = "vit_small_patch16_224_mocov3"
# MoCo v3's 12-head ViT-S has the same shapes as timm's 6-head one: tried after it, it is
# chosen only for a checkpoint with MoCo v3's fixed position embedding (is_mocov3_vit).
ARCHS = (*(a for a in archs_of("vit") if a != MOCOV3_VITS), MOCOV3_VITS)
_HEADS = ("head",)  # the classifier


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return has_layout(state_dict, ("cls_token", "patch_embed", "blocks"), VIT_MODULES)


def mocov3_pos_embed(grid: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """MoCo v3's fixed position embedding (vits.py ``build_2d_sincos_position_embedding``):
    a zero [cls] row, then sin/cos of the patch grid's w and h coordinates."""
    coords = torch.arange(grid, dtype=torch.float32)
    grid_w, grid_h = torch.meshgrid(coords, coords, indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    out_w = torch.einsum("m,d->md", grid_w.flatten(), omega)
    out_h = torch.einsum("m,d->md", grid_h.flatten(), omega)
    pos = torch.cat([torch.sin(out_w), torch.cos(out_w), torch.sin(out_h), torch.cos(out_h)], dim=1)
    return torch.cat([torch.zeros(1, dim), pos])[None]


def is_mocov3_vit(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``pos_embed`` is MoCo v3's frozen sin-cos embedding: MoCo v3 never trains it
    (``requires_grad = False``), DINO, DeiT and timm learn theirs, so it is what tells a
    MoCo v3 ViT (12 heads at ViT-S size) from a timm/DINO one (6 heads), whose shapes match."""
    pos = state_dict.get("pos_embed")
    if pos is None or pos.ndim != 3 or pos.shape[-1] % 4:
        return False
    grid = round((pos.shape[1] - 1) ** 0.5)
    if grid * grid != pos.shape[1] - 1:
        return False
    return torch.allclose(pos.float(), mocov3_pos_embed(grid, pos.shape[-1]), atol=1e-5)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("timm", arch, (*ARCHS, MOCOV3_VITS))
    mocov3 = is_mocov3_vit(state_dict)
    if arch == "vit_small_patch16_224" and mocov3:
        raise ConversionError(
            "timm: this ViT-S/16 has MoCo v3's fixed sin-cos position embedding (a MoCo v3 ViT,"
            f" e.g. after its convert_to_deit.py), which has 12 attention heads: use --arch {MOCOV3_VITS}"
            " (vit_small_patch16_224 has 6 and would compute other features)"
        )
    if arch == MOCOV3_VITS and not mocov3:
        raise ConversionError(
            f"timm: {MOCOV3_VITS} is MoCo v3's ViT-S, whose position embedding is a fixed sin-cos"
            " table; this checkpoint's is learned (a timm/DINO/DeiT ViT-S: 6 heads, vit_small_patch16_224)"
        )
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
