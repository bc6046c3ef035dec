"""AMDIM: augmented multiscale Deep InfoMax (Bachman, Hjelm & Buchwalter 2019),
https://arxiv.org/abs/1906.00910.

Deep InfoMax's local-global InfoNCE (:mod:`zoo.training.methods.dim`) between two augmented
views of each image, at several scales: the global feature of one view must identify the
other view's local features of the same image, from two feature maps, both ways; as in the
authors' code, scores are divided by sqrt(critic_dim), penalised by 0.05 x their mean square
and soft-clipped at 20 ("tanh-based clipping"). What the CIFAR recipe changes: the quarter-width
CIFAR ResNet-18's ``layer3`` (8 x 8) and ``layer4`` (4 x 4) maps as the scales (the paper: its
own encoder's 1x1 / 5x5 / 7x7 features), cosine SGD. Left out: the authors' third pair,
local -> local (a random location of one view's 5x5 map identifying the other view's 5x5
features, ``costs.py``); every source here is a global feature. The pair losses and the
regularisers are averaged, where the authors sum them (the same ratio; a smaller loss scale).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.training.methods.base import register_method
from zoo.training.methods.dim import DIM, DIMConfig


@dataclass(frozen=True)
class AMDIMConfig(DIMConfig):
    local_layers: str = "layer3,layer4"
    multiview: bool = True
    score_scale: bool = True
    score_penalty: float = 0.05


@register_method
class AMDIM(DIM):
    """Deep InfoMax across two views and two scales."""

    name = "amdim"
    Config = AMDIMConfig
