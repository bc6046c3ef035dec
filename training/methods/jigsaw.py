"""Jigsaw puzzles (Noroozi & Favaro 2016), https://arxiv.org/abs/1603.09246.

Each image is cut into a 3x3 grid; a tile is taken from every cell at a random offset (the
gaps and jitter that keep edges from matching), the nine tiles are shuffled by one of a fixed
set of permutations, and the network classifies which. The tiles go through the backbone
*separately with shared weights* (the paper's context-free network), so no layer before the
head sees two tiles together: the features must describe what each tile shows and where it
sits in an object. The permutation set is chosen greedily for maximal minimum Hamming
distance (:func:`zoo.training.pretext.jigsaw.permutation_set`); its size is the recipe key
``method.num_permutations`` (the paper's best: 1000, with 100 close behind). Each tile is
normalised on its own (mean and std), as in the paper, so tiles cannot be matched by
their statistics.

What zoo's recipes change from the paper: an AlexNet on 64 px tiles of 225 px crops becomes
zoo's CIFAR ResNet on 9 px tiles of 32 px images (quarter width, ``jigsaw_r18q_cifar10``) or a
ResNet-18 on 27 px tiles of 96 px crops (``jigsaw_r18_imagenette``, where tiles are large enough
to show object parts); the per-tile features are the backbone's pooled output (the paper: fc6
per tile), concatenated into a Linear-BN-ReLU-Linear head (fc7, fc8). The encoder that ships
sees whole images at evaluation, as in the paper's transfer experiments.

The permutation accuracy of each step is logged as ``jigsaw_acc`` (%) in metrics.csv.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from zoo.training.losses import PretextClassificationLoss
from zoo.training.methods._pretext import ClassifierHead, one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext.jigsaw import check_jigsaw_size, jigsaw_tiles, normalize_tiles, permutation_set


@dataclass(frozen=True)
class JigsawConfig(MethodConfig):
    #: Size of the greedy max-min Hamming permutation set (the number of classes).
    num_permutations: int = 1000
    #: Tiles per side (3: the paper's 3x3 puzzle).
    grid: int = 3
    #: Tile side in pixels; each grid cell (view size // grid) must hold it. The spare
    #: ``cell - tile`` pixels are the random gap/jitter (paper: 64 px tiles in 75 px cells).
    tile_size: int = 64
    #: Seed of the permutation set's random tie-breaks (fixed: the set defines the classes).
    permutation_seed: int = 0
    #: Width of the hidden layer of the head over the concatenated tile features (0: linear).
    head_hidden_dim: int = 1024
    #: Normalise each tile to zero mean and unit variance on its own (the paper's).
    normalize_tiles: bool = True


@register_method
class Jigsaw(Method):
    name = "jigsaw"
    Config = JigsawConfig
    task_metrics: ClassVar[dict[str, str]] = {"jigsaw_acc": "permutation accuracy (%)"}

    def __init__(self, backbone: nn.Module, embed_dim: int, config: JigsawConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        cells = config.grid * config.grid
        if config.grid < 2 or config.tile_size < 1:
            raise ValueError(f"grid must be >= 2 and tile_size >= 1, got {config.grid}, {config.tile_size}")
        # The set is a function of (size, cells, seed), so it is rebuilt rather than checkpointed.
        self.register_buffer(
            "permutations",
            permutation_set(config.num_permutations, cells, config.permutation_seed),
            persistent=False,
        )
        self.head = ClassifierHead(cells * embed_dim, config.head_hidden_dim, config.num_permutations)
        self.loss = PretextClassificationLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "Jigsaw")
        c = self.config
        tiles, labels = jigsaw_tiles(x.cpu(), self.permutations.cpu(), None, grid=c.grid, tile=c.tile_size)
        if c.normalize_tiles:
            tiles = normalize_tiles(tiles)
        n, k = tiles.shape[:2]
        tiles = tiles.flatten(0, 1).to(x.device).contiguous(memory_format=_format(x))
        feats = self.backbone(tiles).reshape(n, k * self.embed_dim)  # puzzle positions in order
        logits = self.head(feats)
        labels = labels.to(logits.device)
        return {"loss": self.loss(logits, labels), "jigsaw_acc": self.loss.accuracy(logits, labels)}


def _format(x: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    )


def _check_size(config: JigsawConfig, size: int) -> None:
    check_jigsaw_size(size, config.grid, config.tile_size)
