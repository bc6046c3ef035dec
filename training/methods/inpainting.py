"""Context encoders: feature learning by inpainting (Pathak, Krähenbühl, Donahue, Darrell &
Efros 2016), https://arxiv.org/abs/1604.07379.

A region of the image is removed (filled with the dataset mean, 0 in the normalised input)
and an encoder-decoder reconstructs it; the loss is the L2 error on the removed pixels
(:class:`zoo.training.losses.MaskedL2Loss`), optionally joined by an adversarial term
(``adversarial_weight``; the paper: 0.999 L2 + 0.001 adversarial) from a DCGAN-style
discriminator (:class:`ConvDiscriminator`) that tells real images from images completed by
the network. Two mask kinds: the central square (``center``: 1/4 of the image, the paper's
"central region") and random blocks (``random``: ``mask_fraction`` of the image removed in
``block_size`` px cells at random, the paper's "random block"; it found random masks give
better features than the centre one). The encoder (zoo's backbone) is what ships; the decoder is discarded.

What zoo's recipe changes from the paper: its AlexNet encoder + channel-wise fully connected
layer + 5 up-convolutions on 128 px images become zoo's CIFAR ResNet on 32 px views and an
up-sampling conv decoder from the last feature map (:class:`ConvDecoder`); the random blocks
are non-overlapping cells (the removed fraction is exact) rather than overlapping squares;
no 10x weight on the region's border; the adversarial term is off by default (it sharpens
the completions, which the features do not need; the paper reports features with L2 alone).

Logged in metrics.csv: ``reconstruction_mse`` (the L2 term on removed pixels, normalised
units) and, with the adversarial term, ``d_loss`` and ``g_loss``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from zoo.training.losses import GANLoss, MaskedL2Loss
from zoo.training.methods._pretext import (
    ConvDecoder,
    ConvDiscriminator,
    frozen_call,
    memory_format_of,
    one_view_spec,
    single_view,
)
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext import PretextSizeError
from zoo.training.pretext.features import last_map, map_shape
from zoo.training.pretext.masks import block_mask, check_block_mask


@dataclass(frozen=True)
class InpaintingConfig(MethodConfig):
    mask_mode: Literal["center", "random"] = "random"
    #: Fraction of the image removed (the centre square's area, or the random cells').
    mask_fraction: float = 0.25
    #: Cell size of random blocks, in pixels (the view size must be a multiple).
    block_size: int = 8
    #: Weight of the adversarial term (the paper: 0.001, with 0.999 on L2); 0 = L2 only.
    adversarial_weight: float = 0.0
    discriminator_width: int = 32


@register_method
class Inpainting(Method):
    name = "inpainting"
    Config = InpaintingConfig
    task_metrics: ClassVar[dict[str, str]] = {
        "reconstruction_mse": "reconstruction MSE of the removed pixels (normalised pixel units)",
    }

    def __init__(self, backbone: nn.Module, embed_dim: int, config: InpaintingConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if not 0 <= config.adversarial_weight < 1:
            raise ValueError(f"adversarial_weight must be in [0, 1), got {config.adversarial_weight}")
        channels, self.stride = map_shape(backbone)
        self.decoder = ConvDecoder(channels, 3, self.stride)
        self.loss = MaskedL2Loss()
        if config.adversarial_weight > 0:
            self.discriminator = ConvDiscriminator(config.discriminator_width)
        self.gan = GANLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    def check_size(self, size: int) -> None:
        c = self.config
        check_block_mask(size, c.block_size, c.mask_fraction, c.mask_mode)
        if size % self.stride:
            raise PretextSizeError(
                f"inpainting: the decoder restores the view size from a feature map of stride {self.stride};"
                f" {size} px views are not a multiple of {self.stride}"
            )

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "Inpainting")
        c, size = self.config, x.shape[-1]
        self.check_size(size)
        mask = block_mask(len(x), size, None, mode=c.mask_mode, fraction=c.mask_fraction, block=c.block_size)
        mask = mask.to(x.device)
        holed = x.masked_fill(mask, 0.0).contiguous(memory_format=memory_format_of(x))
        pred = self.decoder(last_map(self.backbone, holed))
        rec = self.loss(pred, x, mask)
        out = {"reconstruction_mse": rec.detach()}
        if c.adversarial_weight > 0:
            completed = torch.where(mask, pred, x)
            d_loss = self.gan.discriminator(self.discriminator(x), self.discriminator(completed.detach()))
            g_loss = self.gan.generator(frozen_call(self.discriminator, completed))
            w = c.adversarial_weight
            out.update(loss=(1 - w) * rec + w * g_loss + d_loss, d_loss=d_loss, g_loss=g_loss)
        else:
            out["loss"] = rec
        return out


def _check_size(config: InpaintingConfig, size: int) -> None:
    check_block_mask(size, config.block_size, config.mask_fraction, config.mask_mode)
