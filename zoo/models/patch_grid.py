"""Patch-grid read-out: a backbone trained on small patches, read on the image as it was trained.

CPC v2 (and the other patch-based pretext tasks) trains its backbone on patches: 8 px patches of
32 px CIFAR-10 images on a 7 x 7 grid at stride 4. Embedding the whole image shows the network a
scale and a context it never saw. Kolesnikov, Zhai & Beyer (2019, sec. 3) read such networks the
way they were trained: the image cut into the training grid, each patch encoded, the features
averaged. The architectures here hold exactly that as one module (``backbone.*`` are the
backbone's weights unchanged), so it loads, embeds, fine-tunes and exports to ONNX like any
other zoo encoder. ``python -m zoo.training.ship RUN --patch-grid 7x8`` ships a run read this way;
``python -m zoo.training.pretext.grid_knn`` measures both read-outs first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from zoo.encoder import Encoder
from zoo.models.resnet import resnet18_cifar_quarter
from zoo.registry import get_arch, register_arch

__all__ = ["PATCH_GRID_ARCHS", "PatchGridEncoder", "patch_grid_arch", "read_on_patch_grid"]

#: (base arch, grid, patch) -> the registered architecture reading ``base`` on that grid.
PATCH_GRID_ARCHS: dict[tuple[str, int, int], str] = {}


class PatchGridEncoder(nn.Module):
    """The mean of ``backbone``'s features over a ``grid x grid`` grid of ``patch`` px patches cut
    at an equal stride (overlapping where ``grid * patch`` exceeds the image side), row by row as
    :func:`zoo.training.augment.patch_grid` cuts CPC's training views."""

    def __init__(self, backbone: nn.Module, grid: int, patch: int) -> None:
        super().__init__()
        if grid < 2 or patch < 1:
            raise ValueError(f"a patch grid needs grid >= 2 and patch >= 1, got grid {grid}, patch {patch}")
        self.backbone = backbone
        self.grid, self.patch = grid, patch

    def stride(self, size: int) -> int:
        span = size - self.patch
        if span < 0 or span % (self.grid - 1):
            raise ValueError(
                f"a {self.grid} x {self.grid} grid of {self.patch} px patches does not tile {size} px"
                f" images at an equal stride: (size - {self.patch}) must be a multiple of {self.grid - 1}"
            )
        return span // (self.grid - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h != w:
            raise ValueError(f"a patch grid reads square images, got {h}x{w}")
        s, p = self.stride(h), self.patch
        # Plain slices rather than Tensor.unfold: the same patches, and every ONNX exporter takes them.
        cells = [
            x[:, :, i * s : i * s + p, j * s : j * s + p] for i in range(self.grid) for j in range(self.grid)
        ]
        patches = torch.stack(cells, dim=1).reshape(n * self.grid * self.grid, c, p, p)
        feats = self.backbone(patches)
        return feats.reshape(n, self.grid * self.grid, -1).mean(dim=1)


def _register(base: str, builder: Callable[..., nn.Module], grid: int, patch: int, size: int) -> None:
    name = f"{base}_grid{grid}x{patch}"

    @register_arch(name, embed_dim=get_arch(base).embed_dim, source="torchvision", default_input_size=size)
    def build(**kwargs) -> nn.Module:
        return PatchGridEncoder(builder(**kwargs), grid, patch)

    build.__doc__ = (
        f"{base} read on a {grid} x {grid} grid of {patch} px patches of {size} px images, features"
        " averaged: the read-out of networks trained on patches (Kolesnikov et al. 2019)."
    )
    PATCH_GRID_ARCHS[base, grid, patch] = name


# The grids zoo's patch-trained encoders ship with; one line per new one.
_register("resnet18_cifar_quarter", resnet18_cifar_quarter, 7, 8, 32)  # CPC v2's training grid


def patch_grid_arch(arch: str, grid: int, patch: int) -> str:
    """The registered architecture reading ``arch`` on a ``grid x grid`` grid of ``patch`` px."""
    if (arch, grid, patch) not in PATCH_GRID_ARCHS:
        known = ", ".join(f"{b} on {g}x{p} -> {n}" for (b, g, p), n in PATCH_GRID_ARCHS.items())
        raise ValueError(
            f"no patch-grid architecture is registered for {arch!r} on a {grid}x{patch} grid; registered:"
            f" {known} (add a line to zoo/models/patch_grid.py)"
        )
    return PATCH_GRID_ARCHS[arch, grid, patch]


def read_on_patch_grid(encoder: Encoder, grid: int, patch: int) -> Encoder:
    """The same weights as ``encoder`` (a :class:`zoo.Encoder`), read on the patch grid: a new
    Encoder of the registered grid architecture, whose registry entry (if any) says so."""
    arch = patch_grid_arch(encoder.arch, grid, patch)
    module = PatchGridEncoder(encoder.backbone, grid, patch)
    module.stride(encoder.preprocess.input_size)  # the images it will read must tile
    entry = None if encoder.entry is None else dataclasses.replace(encoder.entry, arch=arch)
    return Encoder(module, arch, encoder.preprocess, entry)
