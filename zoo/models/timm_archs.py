"""Backbones built by timm: ViTs and EfficientNet-Lite0.

Each is ``timm.create_model(name, num_classes=0)``: timm's own pooled-feature model, so the
state dict is exactly timm's and ``timm.create_model(name, num_classes=0, pretrained=True,
pretrained_cfg_overlay=dict(file=".../model.safetensors"))`` loads a zoo folder as is.
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


@register_arch("vit_base_patch16_224", embed_dim=768, source="timm", timm_name="vit_base_patch16_224")
def vit_base_patch16_224(**kwargs) -> nn.Module:
    return _timm("vit_base_patch16_224", **kwargs)


@register_arch("efficientnet_lite0", embed_dim=1280, source="timm", timm_name="efficientnet_lite0")
def efficientnet_lite0(**kwargs) -> nn.Module:
    return _timm("efficientnet_lite0", **kwargs)
