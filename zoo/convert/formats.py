"""The PyTorch checkpoint formats, as one table of layouts read by one mechanism.

Every format below nests a torchvision ResNet or a timm ViT somewhere in a state dict: the
mechanism (:class:`Format` -> :class:`~zoo.convert.Converter`) finds the format's layout
(the backbone's key prefix, DistributedDataParallel's ``module.`` or not), strips the
prefix, drops exactly the format's known heads, applies the format's architecture rule and
checks the result complete against the architecture. What each record says about the
upstream files was read from the upstream code (the repository named in ``doc``).

Readers that are more than a prefix (TensorFlow bundles, JAX pickles, EfficientNet-Lite's
renaming) are modules of their own: :mod:`~zoo.convert.simclr_tf`,
:mod:`~zoo.convert.byol_jax`, :mod:`~zoo.convert.efficientnet_lite`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

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
    tensor_mapping,
    unwrap_state_dict,
)
from zoo.errors import ConversionError
from zoo.registry import Preprocess

#: The top-level modules of a torchvision ResNet.
RESNET_MODULES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")
#: The top-level parameters and modules of a timm ViT (register tokens, fc_norm in some).
VIT_MODULES = ("cls_token", "reg_token", "pos_embed", "patch_embed", "blocks", "norm", "fc_norm", "head")
RESNETS = archs_of("resnet")
MOCOV3_VITS = "vit_small_patch16_224_mocov3"
VITS = tuple(a for a in archs_of("vit") if a != MOCOV3_VITS)


@dataclass(frozen=True)
class Layout:
    """One way a format holds its backbone.

    Attributes:
        backbone: the prefix of the backbone's keys (``""``: the keys are the backbone's own).
        heads: modules the format carries beside the backbone, dropped (full key prefixes).
        marks: modules whose presence identifies the layout for ``--from auto``; ``()``
            for layouts that are some other format's too (a bare torchvision state dict).
        also: other modules a checkpoint of this layout may hold (for ``--from auto``).
        any_of: at least one of these modules must be present (for ``--from auto``).
    """

    backbone: str
    heads: tuple[str, ...] = ()
    marks: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def ddp(self) -> Layout:
        """The same layout saved from a DistributedDataParallel model: ``module.`` before all."""

        def p(names: tuple[str, ...]) -> tuple[str, ...]:
            return tuple("module." + n for n in names)

        return Layout("module." + self.backbone, p(self.heads), p(self.marks), p(self.also), p(self.any_of))

    def matches(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        if not self.marks:
            return False
        allowed = (*((self.backbone.rstrip("."),) if self.backbone else ()), *self.heads, *self.also)
        present = not self.any_of or any(k.startswith(m + ".") for k in state_dict for m in self.any_of)
        return present and has_layout(state_dict, self.marks, allowed)


#: ``(state_dict of the architecture's keys, arch) -> None``, raising ConversionError when the
#: weights would load into ``arch`` but compute something else.
Rule = Callable[[StateDict, str], None]
#: ``(state_dict, leftovers, arch) -> state_dict``: renames beyond stripping a prefix.
Rename = Callable[[StateDict, list[str], str], StateDict]


@dataclass(frozen=True)
class Format:
    """A row of :data:`FORMATS`: how to read one upstream format (see :class:`Converter`)."""

    name: str
    description: str
    archs: tuple[str, ...]
    layouts: tuple[Layout, ...]
    ddp: bool = False  # also look for every layout under DistributedDataParallel's "module."
    unwrap: Callable[[object, str], StateDict] = unwrap_state_dict
    rule: Rule | None = None
    rename: Rename | None = None
    arch_note: str = ""
    safe_globals: tuple[type, ...] = ()
    method: str | None = None
    preprocess: Preprocess | None = field(default=None)
    doc: str = ""

    def candidates(self) -> tuple[Layout, ...]:
        return tuple(
            d for layout in self.layouts for d in ((layout.ddp(), layout) if self.ddp else (layout,))
        )

    def layout_of(self, state_dict: Mapping[str, torch.Tensor]) -> Layout:
        """The first layout whose backbone prefix the checkpoint has (a bare one last)."""
        for layout in self.candidates():
            if layout.backbone and any(k.startswith(layout.backbone) for k in state_dict):
                return layout
        for layout in self.candidates():
            if not layout.backbone:
                return layout
        expected = ", ".join(repr(layout.backbone) for layout in self.candidates())
        # DDP's "module." says nothing: name the modules under it.
        tops = {
            ".".join(k.split(".")[:2]) if k.startswith("module.") else k.split(".", 1)[0] for k in state_dict
        }
        found = ", ".join(sorted(tops)[:12]) or "no keys"
        raise ConversionError(
            f"{self.name}: expected the backbone's keys under one of {expected}; found top-level"
            f" modules {found}"
        )

    def matches(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return any(layout.matches(state_dict) for layout in self.candidates())

    def convert(self, state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
        require_arch(self.name, arch, self.archs, self.arch_note)
        layout = self.layout_of(state_dict)
        mapped, leftovers = strip_prefix(state_dict, layout.backbone, layout.heads)
        if self.rename is not None:
            mapped = self.rename(mapped, leftovers, arch)
        if leftovers:
            dropped = ", ".join(layout.heads) or "nothing"
            raise ConversionError(
                f"{self.name}: {len(leftovers)} checkpoint keys are not mapped: {_listing(leftovers)}"
                f" (expected the backbone under {layout.backbone!r}, and dropped: {dropped})"
            )
        if self.rule is not None:
            self.rule(mapped, arch)
        return check_complete(mapped, [], self.name, arch)

    def converter(self) -> Converter:
        return Converter(
            name=self.name,
            convert=self.convert,
            matches=self.matches,
            archs=self.archs,
            description=self.description,
            unwrap=self.unwrap,
            safe_globals=self.safe_globals,
            method=self.method,
            preprocess=self.preprocess,
        )


def _listing(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(sorted(keys)[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _state_dict(obj: object, source: str) -> StateDict:
    return pick(obj, ("state_dict",), source)


# --------------------------------------------------------------------------------------------
# Format-specific pieces: unwrapping, renaming and architecture rules
# --------------------------------------------------------------------------------------------


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


def _timm_rule(mapped: StateDict, arch: str) -> None:
    mocov3 = is_mocov3_vit(mapped)
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


def _dino_unwrap(obj: object, source: str) -> StateDict:
    if isinstance(obj, Mapping) and "teacher" in obj:
        return pick(obj, ("teacher",), source)
    return unwrap_state_dict(obj, source)


def _dino_rule(mapped: StateDict, arch: str) -> None:
    if is_mocov3_vit(mapped):
        raise ConversionError(
            "dino: this ViT has MoCo v3's fixed sin-cos position embedding, not DINO's learned one:"
            " convert it with --from moco-v3 or --from timm"
        )


def _solo_rule(mapped: StateDict, arch: str) -> None:
    stem = mapped.get("conv1.weight")
    if stem is not None and tuple(stem.shape[-2:]) == (3, 3):
        raise ConversionError(
            "solo-learn: this is a CIFAR model (3x3 stem conv with padding 2), which no zoo"
            " architecture reproduces; only ImageNet-stem ResNets convert"
        )


_VISSL_TRUNKS = (
    ("classy_state_dict", "base_model", "model", "trunk"),
    ("model_state_dict", "model", "trunk"),
)


def _vissl_unwrap(obj: object, source: str) -> StateDict:
    for path in _VISSL_TRUNKS:
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


# lightly: children of a torchvision ResNet by index (relu, maxpool and avgpool have no
# weights), and of lightly's own CIFAR ResNet (lightly/models/resnet.py ResNetGenerator:
# conv1, bn1, layer1-4, linear), whose blocks name torchvision's downsample "shortcut".
_TORCHVISION_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_GENERATOR_CHILDREN = {"0": "conv1", "1": "bn1", "2": "layer1", "3": "layer2", "4": "layer3", "5": "layer4"}
_INDEXED = re.compile(r"^(\d+)\.(.+)$")
_SHORTCUT = re.compile(r"^(layer\d\.\d+)\.shortcut\.")
#: lightly's CIFAR ResNets: the named generator converts onto zoo's CIFAR stems; the CIFAR-10
#: benchmark's ``nn.Sequential(*children()[:-1], pool)`` has no stem ReLU (the generator
#: applies it functionally), and converts onto the architecture that lacks it too.
LIGHTLY_CIFAR = ("resnet18_cifar", "resnet50_cifar")
LIGHTLY_NO_STEM_RELU = ("resnet18_cifar_lightly",)


def _lightly_rename(mapped: StateDict, leftovers: list[str], arch: str) -> StateDict:
    generator = any(".shortcut." in k for k in mapped)
    children = _GENERATOR_CHILDREN if generator else _TORCHVISION_CHILDREN
    if generator:
        sequential = any(k.startswith("2.") for k in mapped)
        wanted = LIGHTLY_NO_STEM_RELU if sequential else LIGHTLY_CIFAR
        if arch not in wanted:
            raise ConversionError(
                f"lightly: this backbone is lightly's CIFAR ResNet (ResNetGenerator"
                f"{', as nn.Sequential: no ReLU after the stem' if sequential else ''}),"
                f" which converts to {', '.join(wanted)}, not {arch!r}"
            )
    elif arch in LIGHTLY_NO_STEM_RELU:
        raise ConversionError(f"lightly: {arch} is for lightly's ResNetGenerator backbones only")
    renamed: StateDict = {}
    for key, value in mapped.items():
        m = _INDEXED.match(key)
        if m and m.group(1) in children:
            key = f"{children[m.group(1)]}.{m.group(2)}"
        elif m:
            leftovers.append("backbone." + key)
            continue
        renamed[_SHORTCUT.sub(r"\1.downsample.", key)] = value
    return _collate_split_batchnorm(renamed)


def _collate_split_batchnorm(state_dict: StateDict) -> StateDict:
    """lightly's ``SplitBatchNorm`` (its MoCo benchmarks' ``num_splits=8``, simulating 8 GPUs)
    keeps ``num_splits`` copies of the running statistics, (S * C,). Evaluation uses their mean
    over the splits (``SplitBatchNorm.train(False)`` averages them, then reads the first C), so
    that mean is the plain BatchNorm's statistic; a checkpoint saved in eval mode holds S equal
    copies of it, one saved in training mode S different ones: the mean is right for both."""
    out = dict(state_dict)
    for key, value in state_dict.items():
        if not key.endswith((".running_mean", ".running_var")):
            continue
        weight = state_dict.get(key.rsplit(".", 1)[0] + ".weight")
        if weight is None or weight.ndim != 1 or value.ndim != 1 or len(value) == len(weight):
            continue
        splits, rest = divmod(len(value), len(weight))
        if rest:
            raise ConversionError(
                f"lightly: {key} has {len(value)} entries for {len(weight)} channels, not a whole"
                " number of SplitBatchNorm splits"
            )
        out[key] = value.view(splits, len(weight)).mean(0)
    return out


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

_SOLO_HEADS = (
    "projector", "predictor", "prototypes", "head", "classifier", "momentum_backbone", "momentum_encoder",
    "momentum_projector", "momentum_head", "momentum_classifier", "queue", "queue_ptr", "queue_y",
    "queue_index", "predictor2", "transformer_encoder", "local_memory_index", "local_memory_embeddings",
    "dino_loss_func",
)  # fmt: skip
_LIGHTLY_HEADS = (
    "projection_head", "prediction_head", "prototypes", "teacher_backbone", "teacher_projection_head",
    "student_backbone", "student_projection_head", "backbone_momentum", "projection_head_momentum",
    "key_backbone", "key_projection_head", "head", "teacher_head", "memory_bank", "queues", "smog",
    "criterion", "online_classifier",
)  # fmt: skip
_MMSELFSUP_HEADS = (
    "head", "target_net", "momentum_encoder", "encoder_k", "teacher", "predictor", "queue", "queue_ptr",
    "queue2", "queue2_ptr", "memory_bank", "loss_weight", "data_preprocessor",
)  # fmt: skip
_BARE_RESNET = Layout("")  # a backbone saved alone, torchvision's keys (any format may read it)
_BARE_VIT = Layout("")

FORMATS: tuple[Format, ...] = (
    Format(
        name="torchvision",
        description="torchvision ResNet state dict (conv1, layer1.0 ..., fc); also timm ResNets",
        archs=RESNETS,
        layouts=(Layout("", heads=("fc",), marks=("conv1", "layer1"), also=RESNET_MODULES),),
        doc="torchvision's own layout; also DINO's, Barlow Twins' and VICReg's backbone files,"
        " mmselfsup's extract_backbone_weights.py output and timm's ResNets.",
    ),
    Format(
        name="timm",
        description="timm Vision Transformer state dict (cls_token, patch_embed, blocks.N, head)",
        # MoCo v3's 12-head ViT-S has timm's 6-head shapes: tried last, chosen only for a file
        # with MoCo v3's fixed position embedding (_timm_rule).
        archs=(*VITS, MOCOV3_VITS),
        layouts=(
            Layout("", heads=("head",), marks=("cls_token", "patch_embed", "blocks"), also=VIT_MODULES),
        ),
        rule=_timm_rule,
        doc="timm's ViT layout: DINO's ViT backbones and MoCo v3's ViTs after convert_to_deit.py"
        " ({'model': base_encoder without head}).",
    ),
    Format(
        name="moco",
        description="MoCo v1/v2 .pth.tar (module.encoder_q / encoder_k / queue)",
        archs=RESNETS,
        layouts=(
            Layout(
                "encoder_q.",
                heads=("encoder_q.fc", "encoder_k", "queue", "queue_ptr"),
                marks=("encoder_q.conv1",),
            ),
        ),
        ddp=True,  # single-GPU runs save no module. (facebookresearch/moco#84)
        method="moco",
        doc="facebookresearch/moco builder.py: {epoch, arch, state_dict, optimizer}; encoder_q with its"
        " projection fc, the momentum encoder_k, queue and queue_ptr.",
    ),
    Format(
        name="moco-v3",
        description="MoCo v3 .pth.tar (module.base_encoder / momentum_encoder / predictor), ResNet or ViT",
        archs=(*RESNETS, MOCOV3_VITS, "vit_base_patch16_224"),
        layouts=(
            Layout(
                "base_encoder.",
                heads=("base_encoder.fc", "base_encoder.head", "momentum_encoder", "predictor"),
                marks=("base_encoder",),
            ),
        ),
        ddp=True,
        arch_note=f"MoCo v3's ViT-S has 12 attention heads: use {MOCOV3_VITS}",
        method="moco-v3",
        doc="facebookresearch/moco-v3 builder.py: base_encoder (ResNet fc / ViT head = projector),"
        " momentum_encoder, predictor.",
    ),
    Format(
        name="simsiam",
        description="SimSiam .pth.tar (module.encoder with projector fc, module.predictor)",
        archs=RESNETS,
        layouts=(
            Layout("encoder.", heads=("encoder.fc", "predictor"), marks=("encoder.conv1", "predictor")),
        ),
        ddp=True,
        method="simsiam",
        doc="facebookresearch/simsiam builder.py: encoder (fc = 3-layer projector), predictor.",
    ),
    Format(
        name="swav",
        description="SwAV / DeepCluster-v2 / SeLa-v2 .pth.tar (module.*, projection_head, prototypes)",
        archs=RESNETS,
        layouts=(
            Layout(
                "",
                heads=("projection_head", "prototypes"),
                marks=("conv1", "projection_head", "prototypes"),
                also=RESNET_MODULES,
            ),
        ),
        ddp=True,
        method="swav",
        doc="facebookresearch/swav src/resnet50.py: ResNet + projection_head + prototypes (MultiPrototypes:"
        " prototypes.prototypesN); its ConstantPad2d(1) + padding-2 stem is torchvision's padding 3.",
    ),
    Format(
        name="barlowtwins",
        description="Barlow Twins resnet50.pth or checkpoint.pth (module.backbone / projector / bn)",
        archs=RESNETS,
        layouts=(
            Layout(
                "module.backbone.",
                heads=("module.projector", "module.bn"),
                marks=("module.backbone", "module.projector", "module.bn"),
            ),
            _BARE_RESNET,
        ),
        method="barlowtwins",
        doc="facebookresearch/barlowtwins main.py: {epoch, model, optimizer}; resnet50.pth is the backbone.",
    ),
    Format(
        name="vicreg",
        description="VICReg resnet50.pth or full checkpoint (module.backbone / projector)",
        archs=RESNETS,
        layouts=(
            Layout(
                "module.backbone.", heads=("module.projector",), marks=("module.backbone", "module.projector")
            ),
            _BARE_RESNET,
        ),
        method="vicreg",
        doc="facebookresearch/vicreg main_vicreg.py: {epoch, model, optimizer}, LARS's filters pickled as"
        " __main__.exclude_bias_and_norm (read as stand-ins); resnet50.pth is the backbone.",
    ),
    Format(
        name="dino",
        description="DINO backbone .pth or full checkpoint (teacher: backbone + head), ViT or ResNet",
        archs=(*RESNETS, *VITS),
        layouts=(Layout("backbone.", heads=("head",), marks=("backbone", "head")), _BARE_VIT),
        ddp=True,
        unwrap=_dino_unwrap,
        rule=_dino_rule,
        safe_globals=(argparse.Namespace,),
        method="dino",
        # DINO evaluates with a bicubic resize to 256 and a 224 centre crop (eval_linear.py).
        preprocess=Preprocess(input_size=224, resize_size=256, interpolation="bicubic"),
        doc="facebookresearch/dino: *_pretrain.pth backbones and full checkpoints {student, teacher,"
        " optimizer, epoch, args (argparse.Namespace), dino_loss, fp16_scaler}; the teacher is read.",
    ),
    Format(
        name="solo-learn",
        description="solo-learn Lightning .ckpt (state_dict: backbone, projector, classifier ...)",
        archs=("resnet18", "resnet50"),
        layouts=(
            Layout("backbone.", heads=_SOLO_HEADS, marks=("backbone", "classifier")),
            Layout("encoder.", heads=_SOLO_HEADS, marks=("encoder", "classifier")),  # older releases
        ),
        unwrap=_state_dict,
        rule=_solo_rule,
        doc="vturrisi/solo-learn solo/methods/*.py: backbone + method parts + the online classifier;"
        " CIFAR stems (3x3, padding 2) are refused: no zoo architecture pads that way.",
    ),
    Format(
        name="lightly",
        description="lightly benchmark .ckpt (state_dict: backbone, projection_head, online_classifier ...)",
        archs=(*RESNETS, *LIGHTLY_NO_STEM_RELU),
        layouts=(
            Layout(
                "backbone.",
                heads=_LIGHTLY_HEADS,
                marks=("backbone",),
                any_of=("projection_head", "online_classifier"),
            ),
        ),
        unwrap=_state_dict,
        rename=_lightly_rename,
        doc="lightly-ai/lightly benchmarks: a torchvision ResNet (named or as Sequential children 0, 1,"
        " 4-7) or lightly's ResNetGenerator as Sequential (children 0-5, shortcut = downsample).",
    ),
    Format(
        name="mmselfsup",
        description="mmselfsup / OpenSelfSup .pth (state_dict: backbone, neck, head, momentum copies)",
        archs=RESNETS,
        layouts=(
            Layout("backbone.", heads=("neck", *_MMSELFSUP_HEADS), marks=("backbone", "neck")),
            Layout(
                "encoder_q.0.", heads=("encoder_q.1", *_MMSELFSUP_HEADS), marks=("encoder_q.0", "encoder_q.1")
            ),
            Layout(
                "online_net.0.",
                heads=("online_net.1", *_MMSELFSUP_HEADS),
                marks=("online_net.0", "online_net.1"),
            ),
            _BARE_RESNET,  # tools/model_converters/extract_backbone_weights.py's output
        ),
        unwrap=_state_dict,
        doc="open-mmlab/mmselfsup algorithms (1.x: backbone/neck/head, momentum copies, queues, DenseCL's"
        " queue2, NPID/ODC memory_bank, loss_weight; 0.x: encoder_q.0 / online_net.0); mmengine's"
        " HistoryBuffer objects in message_hub read as stand-ins.",
    ),
    Format(
        name="vissl",
        description="VISSL checkpoint (classy_state_dict ... trunk: _feature_blocks.*)",
        archs=RESNETS,
        layouts=(Layout("_feature_blocks.", marks=("_feature_blocks",)),),
        unwrap=_vissl_unwrap,
        doc="facebookresearch/vissl: training checkpoints, model-zoo files and"
        " convert_classy_vision_to_vissl_resnet.py's {'model_state_dict': trunk}.",
    ),
)

for _format in FORMATS:
    register_converter(_format.converter())
