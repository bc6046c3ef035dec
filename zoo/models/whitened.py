"""Whitened read-out: a backbone followed by the PCA whitening of its features.

A self-supervised backbone's pooled features (after ReLU and average pooling) share a large
common component and spread their variance over few directions, so cosine similarity between
two images is dominated by those directions. Centring the features on their mean and scaling
each principal direction to unit variance (PCA whitening, fitted on unlabelled training images)
is the standard remedy in image retrieval (Jegou & Chum 2012, "Negative evidences and
co-occurrences in image retrieval: the benefit of PCA and whitening"); it is one affine map, so
the architectures here hold it as one Linear layer after the backbone (``backbone.*`` are the
backbone's weights unchanged, ``whiten.*`` the map), and the result loads, embeds, fine-tunes
and exports to ONNX like any other zoo encoder. :mod:`zoo.whitening` fits the map and writes
the folder.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.models.resnet import resnet18_cifar_half, resnet18_cifar_quarter, resnet18_half
from zoo.registry import get_arch, register_arch

__all__ = ["WHITENED_ARCHS", "WhitenedEncoder", "whitened_arch"]

#: base arch -> the registered architecture of that backbone followed by a whitening map.
WHITENED_ARCHS: dict[str, str] = {}


class WhitenedEncoder(nn.Module):
    """``backbone`` (D-d features), then ``whiten``, a Linear(D, D) holding the whitening map."""

    def __init__(self, backbone: nn.Module, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.whiten = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.whiten(self.backbone(x))


def _register(base: str, builder: Callable[..., nn.Module]) -> None:
    name = f"{base}_whitened"
    spec = get_arch(base)
    dim = spec.embed_dim

    @register_arch(name, embed_dim=dim, source="torchvision", default_input_size=spec.default_input_size)
    def build(**kwargs) -> nn.Module:
        return WhitenedEncoder(builder(**kwargs), dim)

    build.__doc__ = f"{base} followed by a {dim} x {dim} whitening map fitted on its training features."
    WHITENED_ARCHS[base] = name


# The backbones of zoo's flagships; one line per new one.
_register("resnet18_cifar_quarter", resnet18_cifar_quarter)
_register("resnet18_cifar_half", resnet18_cifar_half)
_register("resnet18_half", resnet18_half)


def whitened_arch(arch: str) -> str:
    """The registered architecture holding ``arch`` followed by a whitening map."""
    if arch not in WHITENED_ARCHS:
        raise ValueError(
            f"no whitened architecture is registered for {arch!r}; registered: {', '.join(WHITENED_ARCHS)}"
            " (add a line to zoo/models/whitened.py)"
        )
    return WHITENED_ARCHS[arch]
