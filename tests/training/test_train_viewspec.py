"""What a method declares about its inputs (ViewSpec): how many views, CIELAB, a patch grid;
built by augment.build_views on whole batches, and checked before training."""

from __future__ import annotations

import pytest
import torch
from zoo.training.augment import (
    LAB_MEAN,
    LAB_STD,
    BatchedViews,
    ViewSpec,
    build_views,
    patch_grid,
    rgb_to_lab,
    simclr_views,
)


def test_rgb_to_lab_gives_the_reference_values() -> None:
    # CIE values of sRGB white, black, red, green and blue (D65), as colour science tables give.
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]).view(5, 3, 1, 1)
    lab = rgb_to_lab(rgb).view(5, 3)
    expected = torch.tensor(
        [[100.0, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86]]
    )
    torch.testing.assert_close(lab, expected, atol=0.05, rtol=0)


def test_patch_grid_cuts_overlapping_patches_in_row_major_order() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    patches = patch_grid(x, grid=3, patch=4)  # stride (8 - 4) / 2 = 2
    assert patches.shape == (2 * 9, 3, 4, 4)
    for n in range(2):
        for r in range(3):
            for c in range(3):
                assert torch.equal(patches[n * 9 + r * 3 + c], x[n, :, 2 * r : 2 * r + 4, 2 * c : 2 * c + 4])


def test_build_views_applies_the_spec_after_the_same_random_views() -> None:
    images = torch.randint(
        0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    views = simclr_views(16)
    plain = BatchedViews(views)(images, torch.Generator().manual_seed(1))
    assert isinstance(build_views(views, ViewSpec()), BatchedViews)
    one = build_views(views, ViewSpec(count=1))(images, torch.Generator().manual_seed(1))
    assert len(one) == 1 and torch.equal(one[0], plain[0])
    lab = build_views(views, ViewSpec(count=1, colour="lab"))(images, torch.Generator().manual_seed(1))[0]
    mean, std = torch.tensor(views[0].mean).view(1, 3, 1, 1), torch.tensor(views[0].std).view(1, 3, 1, 1)
    expected = (
        rgb_to_lab((plain[0] * std + mean).clamp(0, 1)) - torch.tensor(LAB_MEAN).view(1, 3, 1, 1)
    ) / torch.tensor(LAB_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(lab, expected)
    assert lab.abs().max() <= 1.01  # each channel's range mapped to [-1, 1]
    grid = build_views(views, ViewSpec(patch_grid=(3, 8)))(images, torch.Generator().manual_seed(1))
    assert len(grid) == 2 and all(g.shape == (4 * 9, 3, 8, 8) for g in grid)
    torch.testing.assert_close(grid[1], patch_grid(plain[1], 3, 8))


def test_impossible_specs_are_errors_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="takes 3 views but the preset draws 2"):
        build_views(simclr_views(16), ViewSpec(count=3))
    with pytest.raises(ValueError, match=r"does not tile 16-pixel views evenly"):
        build_views(simclr_views(16), ViewSpec(patch_grid=(4, 6)))
    with pytest.raises(ValueError, match="colour must be"):
        ViewSpec(colour="hsv")  # type: ignore[arg-type]
