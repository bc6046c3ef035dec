"""The frozen teacher of the distillation methods (CRD, feature regression).

The trainer loads the recipe's ``method.teacher`` with :func:`zoo.load` (any zoo name or
exported folder) and hands it to the method, which wraps it here: always in eval mode (its
BatchNorm statistics never move, whatever ``method.train()`` does), no gradients, and
re-normalised from the views' statistics to the teacher's own preprocessing, so a teacher
trained with other mean/std sees what it expects. A teacher whose preprocessing reads another
size than the views' (the CIFAR-10 flagship reads 32 px images upsampled to 48 px, where its
kNN is 3 points higher) gets each view resized to that size with its own interpolation, as
``zoo eval`` would feed it the same image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.registry import IMAGENET_MEAN, IMAGENET_STD


class FrozenTeacher(nn.Module):
    """``encoder`` (a :class:`zoo.Encoder` or any module mapping images to (N, D)) frozen.

    Args:
        encoder: the teacher; its ``preprocess.mean/std`` are used when present.
        view_mean, view_std: the statistics the views are normalised with (zoo's recipes:
            ImageNet's).
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        view_mean: tuple[float, float, float] = IMAGENET_MEAN,
        view_std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        pre = getattr(encoder, "preprocess", None)
        mean = torch.tensor(pre.mean if pre else view_mean).view(1, 3, 1, 1)
        std = torch.tensor(pre.std if pre else view_std).view(1, 3, 1, 1)
        vm, vs = torch.tensor(view_mean).view(1, 3, 1, 1), torch.tensor(view_std).view(1, 3, 1, 1)
        # x_teacher = (x_view * vs + vm - mean) / std = x_view * scale + shift
        self.register_buffer("scale", vs / std, persistent=False)
        self.register_buffer("shift", (vm - mean) / std, persistent=False)
        self.input_size: int | None = getattr(pre, "input_size", None)
        self.interpolation: str = getattr(pre, "interpolation", "bilinear")
        super().train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:
        return super().train(False)  # a teacher never trains, not even its BN statistics

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            # Resizing is linear, so resizing the normalised view equals normalising the resized
            # image; antialias only matters when shrinking, as PIL's resize does then.
            mode, size = self.interpolation, (self.input_size, self.input_size)
            kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
            x = F.interpolate(x.float(), size=size, mode=mode, **kwargs).to(x.dtype)
        return self.encoder(x * self.scale.to(x.dtype) + self.shift.to(x.dtype)).float()
