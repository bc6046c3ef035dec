"""Super-resolution as a pretext task: reconstruct an image from a low-resolution copy.

Upsampling a downsampled image back to its detail needs knowing what the blurred structures
are (edges of which objects, textures of which materials), so an encoder trained for it
learns image content without labels. The input and target follow SRCNN (Dong, Loy, He & Tang
2014, https://arxiv.org/abs/1501.00092: the network takes the bicubically upsampled
low-resolution image and outputs the high-resolution one, trained with pixel L2); what is
kept afterwards is only the encoder, as for the other reconstruction pretexts here.

The view is downsampled by ``factor`` (area averaging) and brought back to its size by
bicubic interpolation (:func:`zoo.training.pretext.images.low_resolution`); zoo's backbone
encodes it and an up-sampling conv decoder from the last feature map predicts the full
image; the loss is the mean squared error over all pixels and channels (normalised units).
The decoder is discarded; the encoder ships.

Logged in metrics.csv: ``reconstruction_mse`` and ``bicubic_mse`` (the error of the bicubic
input itself: below it, the network sharpens the image). The encoder can learn before that: the
Imagenette recipe's decoder reads a 3x3 map and never beat the bicubic error in 20 epochs, while
the encoder's features rose 5 points of kNN and 9 of linear probe above random init
(training/README.md, session 14).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from zoo.training.losses import MaskedL2Loss
from zoo.training.methods._pretext import ConvDecoder, memory_format_of, one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext import PretextSizeError
from zoo.training.pretext.features import last_map, map_shape
from zoo.training.pretext.images import low_resolution


@dataclass(frozen=True)
class SuperResolutionConfig(MethodConfig):
    #: Downsampling factor (4: 32 px views seen at 8 px).
    factor: int = 4


@register_method
class SuperResolution(Method):
    name = "super_resolution"
    Config = SuperResolutionConfig
    task_metrics: ClassVar[dict[str, str]] = {
        "reconstruction_mse": "reconstruction MSE (normalised pixel units)",
        "bicubic_mse": "MSE of bicubic upsampling, the baseline to beat",
    }

    def __init__(self, backbone: nn.Module, embed_dim: int, config: SuperResolutionConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.factor < 2:
            raise ValueError(f"factor must be >= 2, got {config.factor}")
        channels, self.stride = map_shape(backbone)
        self.decoder = ConvDecoder(channels, 3, self.stride)
        self.loss = MaskedL2Loss()

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "SuperResolution")
        size = x.shape[-1]
        if size % self.stride:
            raise PretextSizeError(
                f"super-resolution: the decoder restores the view size from a feature map of stride"
                f" {self.stride}; {size} px views are not a multiple of {self.stride}"
            )
        with torch.no_grad():
            low = low_resolution(x.float(), self.config.factor).to(x.dtype)
        pred = self.decoder(last_map(self.backbone, low.contiguous(memory_format=memory_format_of(x))))
        loss = self.loss(pred, x)
        return {"loss": loss, "reconstruction_mse": loss.detach(), "bicubic_mse": self.loss(low, x).detach()}


def _check_size(config: SuperResolutionConfig, size: int) -> None:
    if size % config.factor:
        raise PretextSizeError(
            f"super-resolution: {size} px views cannot be downsampled by {config.factor} (the factor must"
            " divide the view size)"
        )
