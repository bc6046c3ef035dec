"""Relative patch location, context prediction (Doersch, Gupta & Efros 2015),
https://arxiv.org/abs/1505.05192.

A patch is cut from the centre of a 3x3 grid and another from one of its 8 neighbours; the
network sees both (the same backbone, shared weights, each patch on its own, as the paper's
pair of AlexNets) and classifies where the second sits relative to the first. Knowing that a
wheel is below a car door, or an eye beside another, needs object-level features.

The paper's defences against shortcuts are recipe keys, so their effect can be measured
(task accuracy with and without them: they make the task harder and the features better):

* ``gap``: pixels between neighbouring patches (paper: 48 px for 96 px patches), so edges
  and textures do not simply continue from one patch into the other;
* ``jitter``: each patch moved by up to this many pixels (paper: 7), so lines do not align;
* ``color_drop``: 2 of the 3 colour channels of each patch replaced by small noise, against
  chromatic aberration (which tells a patch's position relative to the lens centre).

Two further defences of the authors' code (``train.py`` of cdoersch/deepcontext) are not
here: each patch's kept channel is mean-subtracted and scaled to a fixed RMS (so brightness
and contrast across the pair are no cue), and a third of the patches are downsampled to as
few as 100 pixels and back (against fine low-level cues).

What zoo's recipes change from the paper: AlexNet on 96 px patches of ImageNet becomes zoo's
CIFAR ResNet on 8 px patches of 32 px views (``relative_patch_r18q_cifar10``, gap 3, jitter 1:
little context per patch) or a ResNet-18 on 27 px patches of 96 px Imagenette views
(``relative_patch_r18_imagenette``, gap 5, jitter 2, every neighbour of the centre per image);
the two patch features (the backbone's pooled output; the paper: fc6 each) are concatenated into a
Linear-BN-ReLU-Linear head (fc7, fc8).

``all_neighbours``: the paper classifies one pair per image. With this key every image's 9
patches go through the backbone and the centre is paired with each of its 8 neighbours: 8
labelled pairs for 9 encoded patches (4.5 times the backbone's work per image for 8 times the
labels), and every position in every image, so no batch leans on a few of them.

The position accuracy of each step is logged as ``patch_acc`` (%) in metrics.csv.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from zoo.training.losses import PretextClassificationLoss
from zoo.training.methods._pretext import ClassifierHead, memory_format_of, one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext.patches import (
    CENTRE,
    NEIGHBOUR_INDEX,
    NEIGHBOURS,
    check_patch_size,
    patch_grid,
    patch_pairs,
)


@dataclass(frozen=True)
class RelativePatchConfig(MethodConfig):
    patch_size: int = 96
    gap: int = 48
    jitter: int = 7
    color_drop: bool = True
    head_hidden_dim: int = 1024
    all_neighbours: bool = False


@register_method
class RelativePatch(Method):
    name = "relative_patch"
    Config = RelativePatchConfig
    task_metrics: ClassVar[dict[str, str]] = {"patch_acc": "8-way relative position accuracy (%)"}

    def __init__(self, backbone: nn.Module, embed_dim: int, config: RelativePatchConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.patch_size < 1 or config.gap < 0 or config.jitter < 0:
            raise ValueError(
                f"patch_size must be >= 1, gap and jitter >= 0; got {config.patch_size}, {config.gap},"
                f" {config.jitter}"
            )
        self.head = ClassifierHead(2 * embed_dim, config.head_hidden_dim, len(NEIGHBOURS))
        self.loss = PretextClassificationLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "RelativePatch")
        c = self.config
        cut = dict(patch=c.patch_size, gap=c.gap, jitter=c.jitter, color_drop=c.color_drop)
        if c.all_neighbours:
            grid = patch_grid(x.float().cpu(), None, **cut)  # (N, 9, C, p, p)
            n = grid.shape[0]
            feats = self._encode(grid.flatten(0, 1), x).unflatten(0, (n, 9))
            f_other = feats[:, NEIGHBOUR_INDEX]  # (N, 8, D), in label order
            f_centre = feats[:, CENTRE : CENTRE + 1].expand_as(f_other)
            pairs = torch.cat([f_centre, f_other], dim=2).flatten(0, 1)
            labels = torch.arange(len(NEIGHBOURS)).repeat(n)
        else:
            centre, other, labels = patch_pairs(x.float().cpu(), None, **cut)
            f_centre, f_other = self._encode(torch.cat([centre, other]), x).chunk(2)
            pairs = torch.cat([f_centre, f_other], dim=1)
        logits = self.head(pairs)
        labels = labels.to(logits.device)
        return {"loss": self.loss(logits, labels), "patch_acc": self.loss.accuracy(logits, labels)}

    def _encode(self, patches: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Backbone features of CPU-cut ``patches``, on ``like``'s device, dtype and memory format."""
        patches = patches.to(device=like.device, dtype=like.dtype)
        return self.backbone(patches.contiguous(memory_format=memory_format_of(like)))


def _check_size(config: RelativePatchConfig, size: int) -> None:
    check_patch_size(size, config.patch_size, config.gap, config.jitter)
