"""The patch-grid read-out (zoo.models.patch_grid): a backbone trained on patches, read on the
image cut into its training grid, features averaged, as one loadable and exportable encoder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from zoo.training.data import decode
from zoo.training.pretext import images

import zoo
from zoo.export import export
from zoo.models.patch_grid import PatchGridEncoder, patch_grid_arch, read_on_patch_grid


@pytest.fixture(scope="module")
def batch(cifar_test: tuple[list[Path], list[int]]) -> torch.Tensor:
    """8 real CIFAR-10 test images (4 of each of 2 classes), normalised."""
    files = cifar_test[0][:8]
    return images.normalize(torch.stack([decode(f, 32) for f in files]).float() / 255)


def test_the_grid_features_are_the_mean_over_the_patches_cut_by_hand(batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    backbone = zoo.create_model("resnet18_cifar_quarter").backbone.eval()
    grid = PatchGridEncoder(backbone, grid=7, patch=8).eval()
    with torch.no_grad():
        # 7 patches of 8 px across 32 px: stride (32 - 8) / 6 = 4, overlapping by half.
        hand = torch.stack(
            [backbone(batch[:, :, 4 * i : 4 * i + 8, 4 * j : 4 * j + 8]) for i in range(7) for j in range(7)]
        ).mean(dim=0)
        torch.testing.assert_close(grid(batch), hand, rtol=1e-4, atol=1e-5)
        # The read-out differs from the whole image's: that is its point.
        assert not torch.allclose(grid(batch), backbone(batch), atol=1e-3)


def test_images_that_the_grid_does_not_tile_name_the_sizes(batch: torch.Tensor) -> None:
    grid = PatchGridEncoder(zoo.create_model("resnet18_cifar_quarter").backbone, grid=7, patch=8)
    with pytest.raises(ValueError, match=r"7 x 7 grid of 8 px patches does not tile 30 px images"):
        grid(batch[:, :, :30, :30])
    with pytest.raises(ValueError, match="no patch-grid architecture is registered for 'resnet18' on a 3x32"):
        patch_grid_arch("resnet18", 3, 32)


def test_a_grid_encoder_loads_embeds_and_exports_like_any_other(tmp_path: Path, batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    base = zoo.create_model("resnet18_cifar_quarter")
    encoder = read_on_patch_grid(base, 7, 8)
    assert encoder.arch == "resnet18_cifar_quarter_grid7x8" and encoder.embed_dim == base.embed_dim
    # Same weights under backbone.*: the base network's file is the grid encoder's file, renamed.
    state = encoder.backbone.state_dict()
    assert {k.removeprefix("backbone.") for k in state} == set(base.backbone.state_dict())
    report = export(encoder, tmp_path / "grid")  # checks the ONNX graph against PyTorch on images
    assert report.onnx is not None and report.onnx.is_file() and report.images_checked > 0
    loaded = zoo.load(str(report.folder))
    assert loaded.arch == encoder.arch
    with torch.no_grad():
        torch.testing.assert_close(loaded.backbone(batch), encoder.backbone(batch))
    # Reading images the grid does not tile is refused before anything is built.
    small = zoo.Encoder(base.backbone, base.arch, dataclasses.replace(base.preprocess, input_size=30))
    with pytest.raises(ValueError, match="does not tile 30 px"):
        read_on_patch_grid(small, 7, 8)
