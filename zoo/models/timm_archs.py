"""Backbones built by timm: ViTs and EfficientNet-Lite0.

Each is ``timm.create_model(name, num_classes=0)``: timm's own pooled-feature model, so the
state dict is exactly timm's and ``timm.create_model(name, num_classes=0, pretrained=True,
pretrained_cfg_overlay=dict(file=".../model.safetensors"))`` loads a zoo folder as is.
The one exception is MoCo v3's ViT-Small, which timm has no name for (see below).
"""

from __future__ import annotations

from torch import nn

from zoo.registry import register_arch


def _timm(name: str, **kwargs) -> nn.Module:
    import timm  # imported here so `import zoo` stays fast

    return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)


@register_arch("vit_small_patch16_224", embed_dim=384, source="timm", timm_name="vit_small_patch16_224")
def vit_small_patch16_224(**kwargs) -> nn.Module:
    return _timm("vit_small_patch16_224", **kwargs)


@register_arch("vit_small_patch8_224", embed_dim=384, source="timm", timm_name="vit_small_patch8_224")
def vit_small_patch8_224(**kwargs) -> nn.Module:
    return _timm("vit_small_patch8_224", **kwargs)


@register_arch("vit_small_patch16_224_mocov3", embed_dim=384, source="timm")
def vit_small_patch16_224_mocov3(**kwargs) -> nn.Module:
    """MoCo v3's ViT-Small: timm's ViT-S/16 with 12 attention heads instead of 6 (moco-v3 vits.py).

    The weights have the same shapes either way, so a 6-head model would load them without
    complaint and compute other features; this architecture exists to make that impossible.
    timm has no model name for it (``timm_name`` is unset): build it with
    ``timm.create_model("vit_small_patch16_224", num_heads=12, num_classes=0)``.
    """
    return _timm("vit_small_patch16_224", num_heads=12, **kwargs)


@register_arch("vit_base_patch16_224", embed_dim=768, source="timm", timm_name="vit_base_patch16_224")
def vit_base_patch16_224(**kwargs) -> nn.Module:
    return _timm("vit_base_patch16_224", **kwargs)


@register_arch("vit_base_patch8_224", embed_dim=768, source="timm", timm_name="vit_base_patch8_224")
def vit_base_patch8_224(**kwargs) -> nn.Module:
    return _timm("vit_base_patch8_224", **kwargs)


@register_arch("efficientnet_lite0", embed_dim=1280, source="timm", timm_name="efficientnet_lite0")
def efficientnet_lite0(**kwargs) -> nn.Module:
    return _timm("efficientnet_lite0", **kwargs)


@register_arch("vit_tiny_patch4_32", embed_dim=192, source="timm", default_input_size=32)
def vit_tiny_patch4_32(**kwargs) -> nn.Module:
    """ViT-Tiny (192 wide, 12 blocks, 3 heads) on 32 px images cut into 4 px patches (an 8x8
    grid): the MAE recipe's CIFAR-10 encoder. Features are the final LayerNorm's patch tokens,
    average-pooled (the class token is kept, as in MAE's encoder, but not pooled). timm has
    no name for it: ``timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4,
    global_pool="avg", fc_norm=False, num_classes=0)``.
    """
    return _timm(
        "vit_tiny_patch16_224", img_size=32, patch_size=4, global_pool="avg", fc_norm=False, **kwargs
    )
