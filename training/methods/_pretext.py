"""What the pretext-task methods share: one image per sample, and their view declaration."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from zoo.training.augment import ViewConfig, ViewSpec

from zoo.models.dcgan import dcgan_init


def single_view(views: list[torch.Tensor], name: str) -> torch.Tensor:
    """The image a pretext task is built from: the first view (the others, if the trainer
    drew any, are not used)."""
    if not views:
        raise ValueError(f"{name} takes at least 1 view, got none")
    return views[0]


@dataclass(frozen=True)
class PretextViews(ViewSpec):
    """One view per image (pretext tasks build their inputs from a single image, so drawing a
    second would be wasted work), and the method's size check run on the recipe's view sizes
    when the trainer builds the pipeline: a grid, tile or mask that does not fit is one error
    before training (``augment: <method> cannot use these views: ...``)."""

    count: int = 1
    size_check: Callable[[int], None] | None = field(default=None, compare=False)

    def check(self, views: Sequence[ViewConfig]) -> None:
        super().check(views)
        if self.size_check is not None:
            for v in views[: self.count or None]:
                self.size_check(v.size)


def one_view_spec(size_check: Callable[[int], None] | None = None) -> PretextViews:
    return PretextViews(size_check=size_check)


class ClassifierHead(nn.Sequential):
    """Concatenated per-part features -> pretext classes: Linear, BN, ReLU, Linear (the
    fc7/fc8 of the jigsaw and patch-location networks), or one Linear with ``hidden=0``."""

    def __init__(self, in_dim: int, hidden: int, classes: int) -> None:
        if hidden:
            super().__init__(
                nn.Linear(in_dim, hidden, bias=False),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Linear(hidden, classes),
            )
        else:
            super().__init__(nn.Linear(in_dim, classes))


class ConvDecoder(nn.Module):
    """A ResNet feature map (N, C, S / stride, S / stride) -> (N, out, S, S) for the pixel
    pretext tasks (inpainting, super-resolution): ``log2(stride)`` stages of 2x nearest
    upsampling + 3x3 conv + BN + ReLU, halving the width (not below ``min_width``), then a
    3x3 conv to ``out`` channels (the context encoder's up-convolutional decoder)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, min_width: int = 16) -> None:
        super().__init__()
        stages = stride.bit_length() - 1
        if stride != 1 << stages:
            raise ValueError(f"the feature map's stride must be a power of 2, got {stride}")
        layers: list[nn.Module] = []
        width = in_ch
        for _ in range(stages):
            nxt = max(min_width, width // 2)
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width, nxt, 3, padding=1, bias=False),
                nn.BatchNorm2d(nxt),
                nn.ReLU(inplace=True),
            ]
            width = nxt
        layers.append(nn.Conv2d(width, out_ch, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def frozen_call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with its parameters detached and its buffers copied: gradients flow to
    ``x`` only, and BatchNorm running statistics are not updated. This is how one loss holds
    both GAN players: the generator's term goes through a frozen discriminator, so each
    player's parameters receive the gradient of its own loss only (simultaneous updates)."""
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.clone() for k, v in module.named_buffers()}
    return torch.func.functional_call(module, {**params, **buffers}, (x,))


class DCGANGenerator(nn.Module):
    """DCGAN's generator (Radford et al. 2016, fig. 1): z (N, nz) -> image (N, 3, S, S) in
    [-1, 1]: a 4x4 projection, then ``log2(S / 4)`` stride-2 transposed convolutions halving
    the width, BN + ReLU between, tanh at the end."""

    def __init__(self, size: int, nz: int = 100, width: int = 64) -> None:
        super().__init__()
        stages = (size // 4).bit_length() - 1
        if size < 8 or size != 4 << stages:
            raise ValueError(f"the DCGAN generator makes images of 4 x 2^k px (k >= 1), not {size} px")
        self.nz = nz
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class ConvDiscriminator(nn.Module):
    """A DCGAN-style critic for any image size: three stride-2 4x4 convolutions (LeakyReLU
    0.2, BN after the first), a 3x3 conv to one channel, averaged over positions: one logit
    per image. The context encoder's adversarial discriminator."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 4, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(-2, -1))


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    )
