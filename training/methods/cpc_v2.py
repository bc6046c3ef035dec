"""CPC v2: data-efficient image recognition with contrastive predictive coding (Hénaff,
Srinivas, De Fauw, Razavi, Doersch, Eslami & van den Oord 2020), https://arxiv.org/abs/1905.09272.

Each image is cut into a grid of overlapping patches (``ViewSpec(patch_grid=...)``), every
patch is encoded by the backbone, a masked (PixelCNN-style: each output row sees only the
rows above and its own) convolutional context network runs over the grid of embeddings,
and the context of each position predicts, with one linear map per offset, the embeddings
1..K rows below against every other patch of the batch (:class:`CPCLoss`).

What zoo and the CIFAR recipe change from the paper: a 7 x 7 grid of 8-pixel patches at
stride 4 of the 32-pixel view (the paper: 7 x 7 of 64 px at stride 32 of 224 px) through the
quarter-width CIFAR ResNet-18 (the paper: ResNet-161 with layer norm; this backbone keeps
BatchNorm, which sees the patches of an image together), predictions 2..4 rows below (the
adjacent row overlaps the context's own patch by half), top-to-bottom predictions only (v2
predicts in all four directions, one context network per direction), no per-patch
augmentation; the context network is 3 causal residual blocks. The exported encoder is the backbone applied to
the whole image (the paper evaluates pooled patch features), so the kNN figures measure how
the patch features transfer to full images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.losses.cpc import CPCLoss
from zoo.training.methods.base import Method, MethodConfig, register_method


@dataclass(frozen=True)
class CPCv2Config(MethodConfig):
    #: grid x grid patches of ``patch`` pixels (stride (size - patch) / (grid - 1)).
    grid: int = 7
    patch: int = 64
    #: How many rows below each context predicts ("predicting up to 5 rows" on ImageNet's 7x7 grid)...
    offsets: int = 5
    #: ...starting this many rows below. 2 skips the adjacent row: with patches at half-patch
    #: stride, the context's own patch holds half of the patch right below it, so predicting
    #: that one is partly copying (lightning-bolts' CPC also starts at 2).
    first_offset: int = 1
    context_dim: int = 512
    context_blocks: int = 3


class _CausalBlock(nn.Module):
    """A residual block whose output row i depends on input rows <= i (vertical masking)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, (2, 3))
        self.conv2 = nn.Conv2d(dim, dim, (2, 3))

    def _causal(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        return conv(F.pad(x, (1, 1, 1, 0)))  # left, right, top (the row above), no bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._causal(self.conv2, F.relu(self._causal(self.conv1, F.relu(x))))


class ContextNetwork(nn.Module):
    """(N, D, G, G) patch embeddings -> (N, C, G, G) contexts, row i from rows <= i only."""

    def __init__(self, in_dim: int, dim: int, blocks: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_dim, dim, 1)
        self.blocks = nn.Sequential(*[_CausalBlock(dim) for _ in range(blocks)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.inp(z))


@register_method
class CPCv2(Method):
    """Contrastive predictive coding over a grid of patches (one view)."""

    name = "cpc_v2"
    Config = CPCv2Config

    def __init__(self, backbone: nn.Module, embed_dim: int, config: CPCv2Config) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        if c.grid < 2 or c.offsets < 1 or c.first_offset < 1 or c.context_blocks < 1:
            raise ValueError("grid >= 2, offsets >= 1, first_offset >= 1 and context_blocks >= 1 needed")
        if c.first_offset + c.offsets - 1 >= c.grid:
            raise ValueError(
                f"rows {c.first_offset}..{c.first_offset + c.offsets - 1} below do not fit a"
                f" {c.grid}-row grid: lower offsets or first_offset"
            )
        self.context = ContextNetwork(embed_dim, c.context_dim, c.context_blocks)
        self.predictors = nn.ModuleList(
            nn.Linear(c.context_dim, embed_dim, bias=False) for _ in range(c.offsets)
        )
        self.loss = CPCLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1, patch_grid=(config.grid, config.patch))  # type: ignore[attr-defined]

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        g = self.config.grid
        patches = views[0]  # (N * G * G, 3, P, P), image-major, row-major
        z = self.backbone(patches).float()
        n = len(z) // (g * g)
        z = z.view(n, g, g, -1)
        c = self.context(z.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (N, G, G, C)
        first = self.config.first_offset
        predictions = [w(c[:, : g - k]) for k, w in enumerate(self.predictors, start=first)]
        return {"loss": self.loss(predictions, z, first)}
