"""Colorful image colorization (Zhang, Isola & Efros 2016), https://arxiv.org/abs/1603.08511.

The network sees only the lightness of an image and predicts, for every location, a
distribution over quantised ab colours (the in-gamut bins of a 10-unit ab grid,
:mod:`zoo.training.pretext.color`); the loss is the multinomial cross-entropy against the
soft-encoded true colours, each pixel weighted by the *class-rebalancing* weight of its
colour: ``w ∝ ((1 - lambda) p~ + lambda / Q)^-1`` with ``p~`` the training set's ab
distribution smoothed by a Gaussian (sigma 5), lambda = 0.5 (eq. 4). Without it, the
desaturated colours that dominate natural images dominate the loss.

The ab histogram of the training split is computed once, in the trainer's epoch pass before
the first epoch (an "encoder" that maps each centre-cropped training image to its per-bin
pixel counts), and the weights are kept in a buffer, so a resumed run restores them.

What zoo's recipes change from the paper: its VGG-style network with dilated convolutions,
predicting at 1/4 resolution, becomes zoo's ResNet backbone whose last feature map is
upsampled to 1/4 of the view size and mapped to Q logits by a 3x3 conv-BN-ReLU + 1x1 conv
head (targets: ab average-pooled to 1/4 resolution); the input is the grey image of the same
lightness L in three channels (:func:`~zoo.training.pretext.color.lightness_gray`), so the
encoder keeps zoo's RGB input and ships as every other zoo encoder (at evaluation it sees
colour images); views that are grey (the view preset's 20% grayscale) carry no colour to
predict and are left out of the loss, as the paper left out grayscale images; 261 in-gamut
bins instead of its 313; no annealed-mean decoding (only the features are used).

Logged in metrics.csv: ``color_acc``, the % of target pixels whose most likely predicted
bin is the nearest bin of the true colour.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.losses import ColorizationLoss
from zoo.training.methods._pretext import one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, Needs, register_method
from zoo.training.precision import full_precision
from zoo.training.pretext import PretextSizeError
from zoo.training.pretext.color import (
    ab_bins,
    lightness_gray,
    quantize,
    rebalance_weights,
    rgb_to_lab,
    soft_encode,
)
from zoo.training.pretext.features import last_map, map_shape
from zoo.training.pretext.images import denormalize, normalize

#: Predictions are made at 1/4 of the input resolution (the paper's).
OUTPUT_STRIDE = 4


@dataclass(frozen=True)
class ColorizationConfig(MethodConfig):
    #: lambda: mixing of the empirical prior with the uniform one (eq. 4).
    rebalance_lambda: float = 0.5
    #: Gaussian smoothing of the ab prior, in ab units (sigma).
    prior_sigma: float = 5.0
    #: Soft encoding: nearest bins and the Gaussian's sigma.
    soft_neighbours: int = 5
    soft_sigma: float = 5.0
    #: ab grid spacing of the bins.
    grid: int = 10
    head_width: int = 128
    #: A view whose largest |a| or |b| is below this is grey: no colour to learn from.
    grey_threshold: float = 2.0


class _ABHistogram(nn.Module):
    """The epoch pass's "encoder": normalised images -> per-image pixel counts per ab bin."""

    def __init__(self, bins: torch.Tensor, grid: int, mean, std) -> None:
        super().__init__()
        self.register_buffer("bins", bins, persistent=False)
        self.grid, self.mean, self.std = grid, mean, std

    @full_precision
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ab = rgb_to_lab(denormalize(x, self.mean, self.std))[:, 1:]
        q = quantize(ab, self.bins, self.grid)  # (N, H, W)
        counts = torch.zeros(len(x), len(self.bins), device=x.device)
        return counts.scatter_add_(1, q.flatten(1), torch.ones_like(q.flatten(1), dtype=counts.dtype))


@register_method
class Colorization(Method):
    name = "colorization"
    Config = ColorizationConfig
    task_metrics: ClassVar[dict[str, str]] = {
        "color_acc": "% of pixels whose most likely quantised ab bin is the true one",
    }
    needs = Needs(epoch_pass=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: ColorizationConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.register_buffer("bins", ab_bins(config.grid), persistent=False)
        q = len(self.bins)
        channels, self.stride = map_shape(backbone)
        w = config.head_width
        self.head = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.Conv2d(w, q, 1)
        )
        self.loss = ColorizationLoss(torch.ones(q))  # the weights come from the epoch pass
        self.register_buffer("weights_ready", torch.zeros((), dtype=torch.bool))
        from zoo.registry import IMAGENET_MEAN, IMAGENET_STD

        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    # The class-rebalancing weights: one pass over the training split, before epoch 0.
    def epoch_pass_due(self, epoch: int) -> bool:
        return not bool(self.weights_ready)

    def epoch_encoder(self) -> nn.Module:
        return _ABHistogram(self.bins, self.config.grid, self.mean, self.std)

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> None:
        self.set_prior(features.double().sum(0))

    def set_prior(self, counts: torch.Tensor) -> None:
        """Class-rebalancing weights from the ab ``counts`` (Q,) of the training set."""
        c = self.config
        w = rebalance_weights(counts, self.bins, lam=c.rebalance_lambda, sigma=c.prior_sigma)
        self.loss.weights.copy_(w.to(self.loss.weights.device))
        self.weights_ready.fill_(True)

    def targets(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(grey input, soft targets (N, Q, S/4, S/4), colourful (N,) bool)`` of views ``x``."""
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            rgb = denormalize(x.float(), self.mean, self.std)
            ab = rgb_to_lab(rgb)[:, 1:]
            colourful = ab.flatten(1).abs().amax(1) > self.config.grey_threshold
            ab = F.avg_pool2d(ab, OUTPUT_STRIDE)
            z = soft_encode(
                ab, self.bins, neighbours=self.config.soft_neighbours, sigma=self.config.soft_sigma
            )
            grey = normalize(lightness_gray(rgb), self.mean, self.std)
        return grey.to(x.dtype), z, colourful

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        if not bool(self.weights_ready):
            raise RuntimeError(
                "colorization: the class-rebalancing weights are computed by the trainer's epoch pass"
                " over the training split; call set_prior(ab counts) when training outside the trainer"
            )
        x = single_view(views, "Colorization")
        size = x.shape[-1]
        if size % OUTPUT_STRIDE or size < self.stride:
            raise PretextSizeError(
                f"colorization predicts at 1/{OUTPUT_STRIDE} of the view size from a feature map of stride"
                f" {self.stride}: the views must be a multiple of {OUTPUT_STRIDE} px and at least"
                f" {self.stride} px, got {size} px"
            )
        grey, z, colourful = self.targets(x)
        feats = last_map(self.backbone, grey.contiguous(memory_format=_format(x)))
        feats = F.interpolate(feats, size=z.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.head(feats)
        keep = colourful if colourful.any() else torch.ones_like(colourful)
        logits, z = logits[keep], z[keep]
        loss = self.loss(logits, z)
        with torch.no_grad():
            acc = (logits.argmax(1) == z.argmax(1)).float().mean() * 100
        return {"loss": loss, "color_acc": acc}


def _format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    )


def _check_size(config: ColorizationConfig, size: int) -> None:
    if size % OUTPUT_STRIDE:
        raise PretextSizeError(
            f"colorization predicts at 1/{OUTPUT_STRIDE} of the view size: the views must be a multiple of"
            f" {OUTPUT_STRIDE} px, got {size} px"
        )
