"""DINO (facebookresearch/dino): backbone-only files and full training checkpoints.

* ``dino_<arch>_pretrain.pth``: the backbone alone, in timm's ViT layout or torchvision's
  ResNet layout without ``fc`` (eval_linear.py loads it with ``strict=True``);
* ``..._full_checkpoint.pth``: ``{student, teacher, optimizer, epoch, args, dino_loss,
  fp16_scaler}``. The teacher (evaluation's default ``checkpoint_key``) is
  ``backbone.*`` + the DINO head ``head.*``; the student adds DDP's ``module.``.
  ``args`` is a pickled ``argparse.Namespace``, admitted by an explicit allow-list.

As in dino's ``utils.load_pretrained_weights``: take the teacher, strip ``module.`` and
``backbone.``, and drop the ``head``.
"""

from __future__ import annotations

import argparse
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
    unwrap_state_dict,
)
from zoo.convert.timm import is_mocov3_vit
from zoo.convert.torchvision import ARCHS as RESNETS
from zoo.errors import ConversionError
from zoo.registry import Preprocess

ARCHS = (*RESNETS, *(a for a in archs_of("vit") if not a.endswith("_mocov3")))
#: DINO evaluates with a bicubic resize to 256 and a 224 centre crop (eval_linear.py, eval_knn.py).
PREPROCESS = Preprocess(input_size=224, resize_size=256, interpolation="bicubic")


def unwrap(obj: object, source: str) -> StateDict:
    if isinstance(obj, Mapping) and "teacher" in obj:
        return pick(obj, ("teacher",), source)
    return unwrap_state_dict(obj, source)


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    return "module." if any(k.startswith("module.backbone.") for k in state_dict) else ""


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    # Only the full checkpoint's layout is DINO's own; backbone-only files are torchvision's
    # or timm's layout and are detected as such.
    p = _prefix(state_dict)
    return has_layout(state_dict, (f"{p}backbone", f"{p}head"))


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("dino", arch, ARCHS)
    p = _prefix(state_dict)
    if any(k.startswith(f"{p}backbone.") for k in state_dict):
        mapped, leftovers = strip_prefix(state_dict, f"{p}backbone.", (f"{p}head",))
    else:
        mapped, leftovers = strip_prefix(state_dict, "")
    if is_mocov3_vit(mapped):
        raise ConversionError(
            "dino: this ViT has MoCo v3's fixed sin-cos position embedding, not DINO's learned one:"
            " convert it with --from moco-v3 or --from timm"
        )
    return check_complete(mapped, leftovers, "dino", arch)


CONVERTER = register_converter(
    Converter(
        name="dino",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="DINO backbone .pth or full checkpoint (teacher: backbone + head), ViT or ResNet",
        unwrap=unwrap,
        safe_globals=(argparse.Namespace,),
        method="dino",
        preprocess=PREPROCESS,
    )
)
