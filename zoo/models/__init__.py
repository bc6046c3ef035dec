"""Backbone architectures; importing this package registers them."""

from zoo.models import resnet, timm_archs

__all__ = ["resnet", "timm_archs"]
