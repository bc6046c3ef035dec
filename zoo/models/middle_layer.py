"""SimCLR v2's fine-tuning encoder: a backbone and the first layer of its projection head.

SimCLR v2 (Chen, Kornblith, Swersky, Norouzi & Hinton 2020, sec. 2) fine-tunes "from a middle
layer of the projection head, instead of the input layer of the head as in SimCLR": with its
3-layer projector, the backbone's features go through the head's first Linear (no bias: a
BatchNorm follows), BatchNorm and ReLU before the new classifier. The architectures here hold
exactly that, under the names the training head's layers have (``backbone.*``, ``projection.0``
Linear, ``projection.1`` BatchNorm), so a SimCLR run's checkpoint exports into one
(``python -m zoo.training.methods.simclr RUN --middle-layer OUT``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.models.resnet import resnet18_cifar_half, resnet18_cifar_quarter
from zoo.registry import register_arch

__all__ = ["MIDDLE_LAYER_ARCHS", "MiddleLayerEncoder", "middle_layer_arch"]

#: (base arch, hidden width) -> the registered architecture of that backbone plus a head layer.
MIDDLE_LAYER_ARCHS: dict[tuple[str, int], str] = {}


class MiddleLayerEncoder(nn.Module):
    """``backbone`` (D-d features), then Linear(D, H, no bias), BatchNorm1d(H), ReLU."""

    def __init__(self, backbone: nn.Module, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(x))


def _register(base: str, builder: Callable[..., nn.Module], in_dim: int, hidden_dim: int) -> None:
    name = f"{base}_mid{hidden_dim}"

    @register_arch(name, embed_dim=hidden_dim, source="torchvision", default_input_size=32)
    def build(**kwargs) -> nn.Module:
        return MiddleLayerEncoder(builder(**kwargs), in_dim, hidden_dim)

    build.__doc__ = (
        f"{base} and a {in_dim} -> {hidden_dim} projector layer (Linear, BN, ReLU): SimCLR v2's"
        f" fine-tuning point, {hidden_dim}-d features."
    )
    MIDDLE_LAYER_ARCHS[base, hidden_dim] = name


# The widths zoo's SimCLR v2 recipes train (proj_hidden_dim); one line per new pair.
_register("resnet18_cifar_quarter", resnet18_cifar_quarter, 128, 512)
_register("resnet18_cifar_half", resnet18_cifar_half, 256, 1024)


def middle_layer_arch(arch: str, hidden_dim: int) -> str:
    """The registered architecture holding ``arch`` plus a ``hidden_dim``-wide head layer."""
    if (arch, hidden_dim) not in MIDDLE_LAYER_ARCHS:
        known = ", ".join(f"{b} + {h} -> {n}" for (b, h), n in MIDDLE_LAYER_ARCHS.items())
        raise ValueError(
            f"no middle-layer architecture is registered for {arch!r} with a {hidden_dim}-wide head;"
            f" registered: {known} (add a line to zoo/models/middle_layer.py)"
        )
    return MIDDLE_LAYER_ARCHS[arch, hidden_dim]
