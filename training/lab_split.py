"""CMC's encoder: one network on the L channel and one on the ab channels of CIELAB.

:class:`LabSplitEncoder` is what a CMC run trains and exports: it takes the same normalised
RGB images as every zoo encoder, converts them to CMC's normalised Lab
(:func:`zoo.training.augment.rgb_to_lab`, the conversion the training views go through), and
concatenates the two halves' pooled features, the representation the paper evaluates
("we concatenate the features from both views").
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from zoo.training.augment import LAB_MEAN, LAB_STD, rgb_to_lab

from zoo.registry import IMAGENET_MEAN, IMAGENET_STD


def with_input_channels(module: nn.Module, channels: int) -> nn.Module:
    """``module`` with its first 3-channel convolution replaced by a fresh one taking
    ``channels`` inputs (same kernel, stride, padding, bias)."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3:
            conv = nn.Conv2d(
                channels,
                m.out_channels,
                m.kernel_size,
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                groups=1,
                bias=m.bias is not None,
            )
            parent_name, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent_name) if parent_name else module, attr, conv)
            return module
    raise ValueError(f"{type(module).__name__} has no 3-channel input convolution to adapt")


class LabSplitEncoder(nn.Module):
    """``l_net`` (1 input channel) and ``ab_net`` (2), built from one backbone; (N, 3, S, S)
    RGB normalised with ``mean``/``std`` -> (N, 2 D) concatenated features."""

    def __init__(
        self,
        backbone: nn.Module,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.l_net = with_input_channels(copy.deepcopy(backbone), 1)
        self.ab_net = with_input_channels(copy.deepcopy(backbone), 2)
        self.register_buffer("rgb_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("lab_mean", torch.tensor(LAB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("lab_std", torch.tensor(LAB_STD).view(1, 3, 1, 1), persistent=False)

    def to_lab(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB -> normalised Lab, as the training views (in fp32)."""
        rgb = (x.float() * self.rgb_std + self.rgb_mean).clamp(0, 1)
        return ((rgb_to_lab(rgb) - self.lab_mean) / self.lab_std).to(x.dtype)

    def halves(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised Lab (N, 3, S, S) -> (L features, ab features)."""
        return self.l_net(lab[:, :1]), self.ab_net(lab[:, 1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            lab = self.to_lab(x)
        return torch.cat(self.halves(lab), 1)
