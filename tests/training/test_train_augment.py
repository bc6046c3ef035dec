"""Batched augmentations: each operation against torchvision, distributions, determinism."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import functional as TF
from zoo.training import augment as A

IDENTITY = A.ViewConfig(
    size=16,
    scale=(1.0, 1.0),
    ratio=(1.0, 1.0),
    hflip_p=0.0,
    jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=0.0,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
)


def _images(n: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def _view(**changes) -> A.ViewConfig:
    return dataclasses.replace(IDENTITY, **changes)


def test_identity_view_returns_the_image_and_flip_mirrors_it() -> None:
    x = _images()
    g = torch.Generator().manual_seed(0)
    (out,) = A.BatchedViews([IDENTITY])(x, g)
    torch.testing.assert_close(out, x.float() / 255, atol=1e-5, rtol=0)
    (flipped,) = A.BatchedViews([_view(hflip_p=1.0)])(x, g)
    torch.testing.assert_close(flipped, x.float().flip(-1) / 255, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "op,ours,theirs,factor",
    [
        ("brightness", A._brightness, TF.adjust_brightness, 1.3),
        ("contrast", A._contrast, TF.adjust_contrast, 0.6),
        ("saturation", A._saturation, TF.adjust_saturation, 1.4),
        ("hue", A._hue, TF.adjust_hue, 0.12),
    ],
)
def test_colour_operations_match_torchvision(op, ours, theirs, factor) -> None:
    x = _images().float() / 255
    n = len(x)
    f = torch.full((n,), factor).view(n, 1, 1, 1)
    expected = torch.stack([theirs(img, factor) for img in x])
    torch.testing.assert_close(ours(x.clone(), f), expected, atol=2e-5, rtol=0)


def test_per_sample_factors_apply_to_their_own_image() -> None:
    x = _images(2).float() / 255
    out = A._brightness(x.clone(), torch.tensor([0.5, 1.5]).view(2, 1, 1, 1))
    torch.testing.assert_close(out[0], TF.adjust_brightness(x[0], 0.5))
    torch.testing.assert_close(out[1], TF.adjust_brightness(x[1], 1.5))


def test_blur_matches_torchvision_gaussian_blur() -> None:
    x = _images(3, 20).float() / 255
    sigma = torch.tensor([0.5, 1.0, 2.0])
    out = A._gaussian_blur(x, 5, sigma)
    for i in range(3):
        expected = TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2)
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=0)


def test_grayscale_and_solarize() -> None:
    x = _images()
    g = torch.Generator().manual_seed(0)
    (gray,) = A.BatchedViews([_view(grayscale_p=1.0)])(x, g)
    torch.testing.assert_close(gray[:, 0], gray[:, 1])
    torch.testing.assert_close(gray[:, 1], gray[:, 2])
    (solar,) = A.BatchedViews([_view(solarize_p=1.0)])(x, g)
    expected = TF.solarize(x.float() / 255, 0.5)
    torch.testing.assert_close(solar, expected, atol=1e-5, rtol=0)


def test_crop_boxes_lie_inside_the_image_with_the_requested_area_and_ratio() -> None:
    view = A.ViewConfig(size=8, scale=(0.2, 0.6), ratio=(0.75, 4 / 3))
    boxes = A.crop_boxes(2000, 40, 30, view, torch.Generator().manual_seed(0))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 40).all() and (left + w <= 30).all()
    area = h * w / (40 * 30)
    # Rounding to whole pixels moves the area a little past the bounds.
    assert area.min() > 0.18 and area.max() < 0.63
    assert (w / h).min() > 0.7 and (w / h).max() < 1.4
    # Not all boxes alike: positions and sizes vary.
    assert top.unique().numel() > 5 and area.std() > 0.05


def test_views_have_the_configured_shapes_statistics_and_are_deterministic() -> None:
    x = _images(8, 32)
    views = A.multicrop_views(24, 12, 3)
    out = A.BatchedViews(views)(x, torch.Generator().manual_seed(1))
    assert [tuple(v.shape) for v in out] == [(8, 3, 24, 24)] * 2 + [(8, 3, 12, 12)] * 3
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in out)
    again = A.BatchedViews(views)(x, torch.Generator().manual_seed(1))
    for a, b in zip(out, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = A.BatchedViews(views)(x, torch.Generator().manual_seed(2))
    assert not torch.equal(out[0], other[0])
    # The two views of a pair differ (they are the positives a method must match).
    assert not torch.equal(out[0], out[1])


def test_per_sample_v2_path_is_deterministic_and_shaped_like_the_batched_one() -> None:
    x = _images(4, 32)
    views = A.byol_views(16)
    a = A.PerSampleViews(views)(x, torch.Generator().manual_seed(3))
    b = A.PerSampleViews(views)(x, torch.Generator().manual_seed(3))
    batched = A.BatchedViews(views)(x, torch.Generator().manual_seed(3))
    assert [v.shape for v in a] == [v.shape for v in batched] == [torch.Size([4, 3, 16, 16])] * 2
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_batched_and_per_sample_pipelines_draw_similar_statistics() -> None:
    # Same distributions: the mean and spread of many views agree. (The batched path's
    # spread is a few percent higher: its bilinear downscaling is not antialiased.)
    x = _images(64, 32, seed=4).repeat(8, 1, 1, 1)
    views = A.simclr_views(16, blur=False)[:1]
    batched = A.BatchedViews(views)(x, torch.Generator().manual_seed(0))[0]
    per_sample = A.PerSampleViews(views)(x, torch.Generator().manual_seed(0))[0]
    assert batched.mean().item() == pytest.approx(per_sample.mean().item(), abs=0.08)
    assert batched.std().item() == pytest.approx(per_sample.std().item(), rel=0.12)


def test_presets_follow_the_papers() -> None:
    first, second = A.byol_views(224)
    assert (first.blur_p, second.blur_p, first.solarize_p, second.solarize_p) == (1.0, 0.1, 0.0, 0.2)
    simclr = A.simclr_views(224)[0]
    assert (simclr.brightness, simclr.hue, simclr.blur_p, simclr.blur_kernel) == (0.8, 0.2, 0.5, 23)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"scale": (0.5, 0.2)}, "scale must satisfy"),
        ({"hflip_p": 1.5}, "hflip_p is a probability"),
        ({"hue": 0.7}, "hue must be in"),
        ({"size": 0}, "size must be >= 1"),
        ({"blur_sigma": (0, 1)}, "blur_sigma must satisfy"),
    ],
)
def test_invalid_view_settings_are_errors(changes, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        A.ViewConfig(**changes)
