"""DCGAN's discriminator as an encoder (Radford, Metz & Chintala 2016, https://arxiv.org/abs/1511.06434).

The paper's all-convolutional discriminator (fig. 1's mirror: stride-2 4x4 convolutions that
double the width, LeakyReLU 0.2, BatchNorm on every layer but the first, no pooling, no fully
connected layer) at 32 px: three layers of 64-128-256 channels down to a 4x4 map. Its
features are read as section 5.1 reads them for CIFAR-10: "all layers' features, max-pooled
to a 4x4 spatial grid, flattened and concatenated", here (64 + 128 + 256) x 16 = 7,168 values.
The real/fake logit of :mod:`zoo.training.methods.dcgan` reads only the last layer's part of
that vector (``logit_features``): at 32 px it is the whole 4x4 map, so a linear layer on it is
the paper's last layer (a 4x4 convolution over that map). A logit on all layers would let the
discriminator judge from its first layer's low-level statistics, a shortcut the paper's does not
have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import register_arch

__all__ = ["DCGANDiscriminator", "dcgan_discriminator", "dcgan_init"]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (sec. 4): convolution weights N(0, 0.02), BatchNorm scales
    N(1, 0.02), biases 0; for its generator and its discriminator alike."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANDiscriminator(nn.Module):
    """``len(widths)`` stride-2 4x4 convolutions; forward gives every layer's output max-pooled
    to ``grid`` x ``grid``, flattened and concatenated."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256), grid: int = 4) -> None:
        super().__init__()
        self.grid = grid
        blocks, ch = [], 3
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(ch, w, 4, 2, 1, bias=i == 0)]
            if i > 0:  # DCGAN: no BatchNorm on the discriminator's input layer
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            blocks.append(nn.Sequential(*layers))
            ch = w
        self.blocks = nn.ModuleList(blocks)
        self.embed_dim = sum(widths) * grid * grid
        #: Where the last layer's pooled map lies in the features: what DCGAN's logit reads.
        self.logit_features = slice(self.embed_dim - widths[-1] * grid * grid, self.embed_dim)
        dcgan_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(F.adaptive_max_pool2d(x, self.grid).flatten(1))
        return torch.cat(pooled, 1)


@register_arch("dcgan_discriminator", embed_dim=7168, source="torchvision", default_input_size=32)
def dcgan_discriminator(**kwargs) -> nn.Module:
    """DCGAN's 32 px discriminator (64-128-256 channels, 0.66 M parameters); features: each
    layer max-pooled to 4x4, concatenated (7,168-d), as the paper's CIFAR-10 experiment."""
    return DCGANDiscriminator(**kwargs)
