"""Pretext targets (zoo.training.pretext) on real CIFAR-10 images, and the pretext losses on
hand-checked small cases."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo.training.data import decode
from zoo.training.losses import (
    ColorizationLoss,
    GANLoss,
    MAELoss,
    MaskedL2Loss,
    PretextClassificationLoss,
)
from zoo.training.pretext import PretextSizeError, color, features, images, jigsaw, masks, patches, rotation


@pytest.fixture(scope="module")
def cifar(cifar_root: Path) -> torch.Tensor:
    """8 real CIFAR-10 training images, uint8 (8, 3, 32, 32), from 8 classes."""
    classes = sorted(p for p in (cifar_root / "train").iterdir() if p.is_dir())[:8]
    return torch.stack([decode(sorted(c.iterdir())[0], 32) for c in classes])


@pytest.fixture(scope="module")
def views(cifar: torch.Tensor) -> torch.Tensor:
    return images.normalize(cifar.float() / 255)


# ---------------------------------------------------------------------------- rotation


def test_rotations_really_rotate(views: torch.Tensor) -> None:
    out, labels = rotation.rotations(views)
    n, s = len(views), views.shape[-1]
    assert out.shape == (4 * n, 3, s, s)
    assert labels.tolist() == [k for k in range(4) for _ in range(n)]
    x = views[2]
    r90 = out[n + 2]
    # Counter-clockwise by 90 degrees: out[i, j] = in[j, S - 1 - i], pixel for pixel.
    for i, j in [(0, 0), (3, 17), (31, 5)]:
        torch.testing.assert_close(r90[:, i, j], x[:, j, s - 1 - i])
    torch.testing.assert_close(out[2 * n + 2], x.flip(-1).flip(-2))  # 180 degrees
    torch.testing.assert_close(rotation.rotate(out[3 * n + 2], 1), x)  # 270 + 90 = 360
    # Real photos are not rotation-symmetric: the four copies differ.
    for a, b in itertools.combinations(range(4), 2):
        assert not torch.allclose(out[a * n + 2], out[b * n + 2])


# ---------------------------------------------------------------------------- jigsaw


def test_permutation_set_is_greedy_max_min_hamming() -> None:
    size = 24
    perms = jigsaw.permutation_set(size, 9, seed=1).numpy()
    everything = np.array(list(itertools.permutations(range(9))))
    assert len({tuple(p) for p in perms}) == size
    assert all(sorted(p) == list(range(9)) for p in perms)
    min_dist = np.full(len(everything), 10)
    for k in range(1, size):
        min_dist = np.minimum(min_dist, (everything != perms[k - 1]).sum(1))
        chosen = min((perms[k] != perms[i]).sum() for i in range(k))
        # Permutation k is as far from the first k as any permutation can be.
        assert chosen == min_dist.max(), k
    assert (perms[1] != perms[0]).all()  # the second differs from the first everywhere (9)
    torch.testing.assert_close(jigsaw.permutation_set(size, 9, seed=1), torch.from_numpy(perms))
    assert not torch.equal(jigsaw.permutation_set(size, 9, seed=2), torch.from_numpy(perms))


def test_jigsaw_tiles_are_cells_of_the_image_in_the_permuted_order(views: torch.Tensor) -> None:
    perms = jigsaw.permutation_set(10, 9)
    g = torch.Generator().manual_seed(0)
    tiles, labels = jigsaw.jigsaw_tiles(views, perms, g, grid=3, tile=9)
    assert tiles.shape == (8, 9, 3, 9, 9) and labels.shape == (8,)
    assert len(set(labels.tolist())) > 1
    cell = 32 // 3
    start = (32 - 3 * cell) // 2
    for n in range(8):
        for pos in range(9):
            src = int(perms[labels[n], pos])
            r, c = divmod(src, 3)
            # The tile is a 9 px crop of cell `src`, at one of its 2 x 2 jitter offsets.
            crops = [
                views[n, :, start + r * cell + dy : start + r * cell + dy + 9, start + c * cell + dx :][
                    :, :, :9
                ]
                for dy in range(cell - 9 + 1)
                for dx in range(cell - 9 + 1)
            ]
            assert any(torch.equal(tiles[n, pos], crop) for crop in crops), (n, pos)
    normed = jigsaw.normalize_tiles(tiles)
    assert normed.mean(dim=(-3, -2, -1)).abs().max() < 1e-5


def test_jigsaw_grid_that_does_not_fit_names_the_sizes(views: torch.Tensor) -> None:
    with pytest.raises(
        PretextSizeError, match=r"3x3 grid of 12 px tiles needs images of at least 36 px, got 32"
    ):
        jigsaw.jigsaw_tiles(views, jigsaw.permutation_set(4, 9), torch.Generator(), grid=3, tile=12)


# ---------------------------------------------------------------------------- relative patch


def test_patch_pairs_take_the_centre_and_the_labelled_neighbour(views: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    centre, other, labels = patches.patch_pairs(views, g, patch=8, gap=4)
    assert centre.shape == other.shape == (8, 3, 8, 8)
    start = (32 - 32) // 2
    torch.testing.assert_close(centre, views[:, :, start + 12 : start + 20, start + 12 : start + 20])
    for n in range(8):
        r, c = patches.NEIGHBOURS[int(labels[n])]
        top, left = start + 12 * r, start + 12 * c
        torch.testing.assert_close(other[n], views[n, :, top : top + 8, left : left + 8])
    # Colour dropping keeps exactly one channel of each patch; the others become small noise.
    c2, o2, _ = patches.patch_pairs(views, torch.Generator().manual_seed(0), patch=8, gap=4, color_drop=True)
    for p, ref in ((c2, centre), (o2, other)):
        kept = torch.tensor([[(p[n, ch] == ref[n, ch]).all().item() for ch in range(3)] for n in range(8)])
        assert (kept.sum(1) == 1).all()
        assert p[~kept].std() < 0.05


def test_patch_grid_that_does_not_fit_names_the_sizes(views: torch.Tensor) -> None:
    with pytest.raises(PretextSizeError, match=r"at least 36 px \(3 x 8 \+ 2 x 4 \+ 2 x 2\), got 32 px"):
        patches.patch_pairs(views, torch.Generator(), patch=8, gap=4, jitter=2)


# ---------------------------------------------------------------------------- colour


def test_lab_of_known_colours() -> None:
    rgb = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0], [0.5, 0.5, 0.5]])
    lab = color.rgb_to_lab(rgb.T.reshape(3, 6, 1)).reshape(3, 6).T
    # Reference values (sRGB, D65), e.g. Bruce Lindbloom's calculator.
    expected = torch.tensor(
        [
            [53.24, 80.09, 67.20],
            [87.73, -86.18, 83.18],
            [32.30, 79.19, -107.86],
            [100, 0, 0],
            [0, 0, 0],
            [53.39, 0, 0],
        ]
    )
    torch.testing.assert_close(lab, expected, atol=0.02, rtol=0)


def test_colour_conversions_build_their_constants_on_the_inputs_device() -> None:
    # On a GPU, CPU constants failed with a device mismatch (colorization's targets, CMC's
    # views and Lab-split encoder). The meta device fails the same way without a GPU.
    x = torch.rand(2, 3, 4, 4, device="meta")
    assert color.rgb_to_lab(x).device.type == "meta"
    assert color.lightness_gray(x).device.type == "meta"


def test_ab_bins_soft_encoding_and_histogram(cifar: torch.Tensor) -> None:
    bins = color.ab_bins()
    assert 200 < len(bins) <= 400 and (bins.abs() <= 130).all()
    assert ((bins == 0).all(1)).sum() == 1  # grey is a bin
    lab = color.rgb_to_lab(cifar.float() / 255)
    z = color.soft_encode(lab[:, 1:], bins)
    assert z.shape == (8, len(bins), 32, 32)
    torch.testing.assert_close(z.sum(1), torch.ones(8, 32, 32))
    assert ((z > 0).sum(1) == 5).all()
    torch.testing.assert_close(z.argmax(1), color.nearest_bin(lab[:, 1:], bins))
    # The table look-up gives the nearest bin of (almost) every real pixel.
    fast, exact = color.quantize(lab[:, 1:], bins), color.nearest_bin(lab[:, 1:], bins)
    assert (fast == exact).float().mean() > 0.999
    counts = color.ab_histogram(cifar, bins)
    assert counts.sum() == 8 * 32 * 32
    grey = cifar.float().mean(1, keepdim=True).round().to(torch.uint8).expand(-1, 3, -1, -1)
    grey_counts = color.ab_histogram(grey, bins)
    assert grey_counts[(bins == 0).all(1)].item() == 8 * 32 * 32


def test_rebalancing_weights_by_hand() -> None:
    bins = torch.tensor([[0.0, 0], [100, 0], [0, 100], [100, 100]])
    # p = (.5, .5, 0, 0), lambda .5, Q 4: w ∝ 1 / (.25 + .125), 1 / .125 -> (8/3, 8/3, 8, 8);
    # sum_q p_q w_q = 8/3, so w = (1, 1, 3, 3).
    w = color.rebalance_weights(torch.tensor([5.0, 5, 0, 0]), bins, lam=0.5, sigma=0)
    torch.testing.assert_close(w, torch.tensor([1.0, 1, 3, 3]))
    torch.testing.assert_close(color.rebalance_weights(torch.ones(4), bins, sigma=0), torch.ones(4))
    torch.testing.assert_close(
        color.rebalance_weights(torch.tensor([9.0, 1, 0, 0]), bins, lam=1), torch.ones(4)
    )
    # Smoothed: rare colours weigh more and the expectation under the smoothed prior is 1.
    real = color.ab_bins()
    counts = torch.arange(len(real), 0, -1).double() ** 3
    w = color.rebalance_weights(counts, real)
    assert w[0] < w[-1]
    kernel = torch.exp(-((real[:, None] - real[None]) ** 2).sum(-1).double() / 50)
    p = kernel @ (counts / counts.sum())
    assert float((p / p.sum() * w.double()).sum()) == pytest.approx(1.0, rel=1e-5)


# ---------------------------------------------------------------------------- masks and low resolution


def test_patch_masks_cover_the_asked_fraction() -> None:
    keep, mask = masks.random_patch_mask(16, 64, 0.75, torch.Generator().manual_seed(0))
    assert keep.shape == (16, 16) and (mask.sum(1) == 48).all()
    assert not mask.gather(1, keep).any()  # kept patches are exactly the unmasked ones
    assert (keep.diff(dim=1) > 0).all()
    assert len({tuple(k.tolist()) for k in keep}) == 16  # a fresh mask per image
    assert masks.check_patch_grid(32, 4, 0.75) == 64


@pytest.mark.parametrize("mode,fraction", [("center", 0.25), ("random", 0.25), ("random", 0.5)])
def test_block_masks_cover_the_asked_fraction(mode: str, fraction: float) -> None:
    m = masks.block_mask(6, 32, torch.Generator().manual_seed(0), mode=mode, fraction=fraction, block=8)
    assert m.shape == (6, 1, 32, 32)
    assert (m.float().mean(dim=(1, 2, 3)) == fraction).all()
    if mode == "center":
        assert m[:, :, 8:24, 8:24].all() and m.sum() == 6 * 16 * 16
    else:
        assert not (m[0] == m[1]).all()


def test_masks_that_do_not_fit_name_the_sizes() -> None:
    with pytest.raises(PretextSizeError, match="30 px image is not a whole grid of 4 px patches"):
        masks.check_patch_grid(30, 4, 0.75)
    with pytest.raises(PretextSizeError, match=r"masking 99% of the 4 patches .* leaves 0 visible"):
        masks.check_patch_grid(8, 4, 0.99)
    with pytest.raises(PretextSizeError, match=r"random blocks of 12 px .* got 32 px"):
        masks.block_mask(1, 32, torch.Generator(), mode="random", block=12)


def test_low_resolution_keeps_only_the_coarse_image(views: torch.Tensor) -> None:
    low = images.low_resolution(views, 4)
    assert low.shape == views.shape
    # Only the 4x4 block means survive: detail that averages to zero in each block is gone.
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2 - 1.0
    torch.testing.assert_close(images.low_resolution(views + 0.5 * checker, 4), low)
    assert (low - views).abs().mean() > 0.05
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(images.low_resolution(flat, 4), flat)
    with pytest.raises(PretextSizeError, match="32x32 image cannot be downsampled by 3"):
        images.low_resolution(views, 3)
    torch.testing.assert_close(images.denormalize(views), views.new_tensor(0) + images.denormalize(views))
    g = images.gray(views)
    rgb = images.denormalize(g)
    torch.testing.assert_close(rgb[:, 0], rgb[:, 1], atol=1e-5, rtol=0)


def test_feature_maps_are_the_backbone_forward_block_by_block(views: torch.Tensor) -> None:
    import zoo

    backbone = zoo.create_model("resnet18_cifar_quarter").backbone.eval()
    with torch.no_grad():
        maps = features.feature_maps(backbone, views)
        torch.testing.assert_close(maps[-1].mean(dim=(-2, -1)), backbone(views))
    assert [m.shape[1] for m in maps] == [16, 16, 32, 64, 128]
    assert features.map_shape(backbone) == (128, 8)
    assert [f.shape for f in features.block_features(backbone, views)][-1] == (8, 128)
    with pytest.raises(TypeError, match="not a torchvision ResNet"):
        features.feature_maps(torch.nn.Conv2d(3, 3, 1), views)


# ---------------------------------------------------------------------------- losses, by hand


def _fp32_under_autocast(fn, *args):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(*args)
    assert out.dtype == torch.float32
    return out


def test_pretext_classification_loss_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3)], [2.0, 0.0]])
    labels = torch.tensor([1, 1])
    # -log(3/4) and -log(1/(1 + e^2))
    expected = (math.log(4 / 3) + math.log(1 + math.e**2)) / 2
    loss = PretextClassificationLoss()
    assert _fp32_under_autocast(loss, logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert PretextClassificationLoss.accuracy(logits, labels).item() == 50.0


def test_mae_loss_by_hand() -> None:
    patches_ = torch.tensor([[[1.0, 3.0], [2.0, 2.0], [0.0, 4.0]]])  # N=1, L=3, P=2
    pred = torch.tensor([[[0.0, 0.0], [5.0, 5.0], [-1.0, 1.0]]])
    mask = torch.tensor([[True, False, True]])
    # Patch 0: mean 2, unbiased var 2 -> target (-1, 1)/sqrt(2 + 1e-6); patch 2: mean 2, var 8
    # -> (-2, 2)/sqrt(8 + 1e-6) = (-1/sqrt2, 1/sqrt2). Patch 1 is visible: not counted.
    t0 = 1 / math.sqrt(2 + 1e-6)
    t2 = 2 / math.sqrt(8 + 1e-6)
    e0 = (t0**2 + t0**2) / 2
    e2 = ((1 - t2) ** 2 * 2) / 2
    loss = _fp32_under_autocast(MAELoss(), pred, patches_, mask)
    assert loss.item() == pytest.approx((e0 + e2) / 2, rel=1e-6)
    raw = MAELoss(norm_pix=False)(pred, patches_, mask)
    assert raw.item() == pytest.approx(((1 + 9) / 2 + (1 + 9) / 2) / 2, rel=1e-6)


def test_colorization_loss_by_hand() -> None:
    # Two pixels, Q = 3. Pixel 1: target (.8, .2, 0), nearest bin 0 with weight 2;
    # pixel 2: target (0, 0, 1), weight 0.5. logits (0, 0, 0) -> log softmax = -log 3 everywhere.
    logits = torch.zeros(1, 3, 1, 2)
    target = torch.tensor([[0.8, 0.0], [0.2, 0.0], [0.0, 1.0]]).view(1, 3, 1, 2)
    loss = ColorizationLoss(torch.tensor([2.0, 1.0, 0.5]))
    expected = (2 * math.log(3) + 0.5 * math.log(3)) / 2
    assert _fp32_under_autocast(loss, logits, target).item() == pytest.approx(expected, rel=1e-6)
    logits = torch.tensor([math.log(4), 0.0, 0.0]).view(1, 3, 1, 1)
    target = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    assert ColorizationLoss(torch.ones(3))(logits, target).item() == pytest.approx(math.log(6 / 4), rel=1e-6)


def test_masked_l2_and_gan_losses_by_hand() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[[True, False], [False, True]]]])
    assert _fp32_under_autocast(MaskedL2Loss(), pred, target, mask).item() == pytest.approx((1 + 16) / 2)
    assert MaskedL2Loss()(pred, target).item() == pytest.approx(30 / 4)
    gan = GANLoss()
    zero = torch.zeros(4, 1)
    assert _fp32_under_autocast(gan.discriminator, zero, zero).item() == pytest.approx(2 * math.log(2))
    big = torch.full((4, 1), 20.0)
    assert gan.discriminator(big, -big).item() == pytest.approx(0.0, abs=1e-6)
    assert gan.generator(-big).item() == pytest.approx(20.0, rel=1e-6)
    # One-sided label smoothing: real target 0.9 costs 0.1 x the logit when D is certain.
    smooth = GANLoss(real_label=0.9)
    assert smooth.discriminator(big, -big).item() == pytest.approx(0.1 * 20.0, rel=1e-4)
    assert smooth.generator(-big).item() == pytest.approx(20.0, rel=1e-6)  # G's target stays 1
    with pytest.raises(ValueError, match="real_label"):
        GANLoss(real_label=0.4)


def test_lightness_gray_keeps_l_and_drops_colour(cifar: torch.Tensor) -> None:
    rgb = cifar.float() / 255
    g = color.lightness_gray(rgb)
    assert (g[:, 0] == g[:, 1]).all() and (g[:, 1] == g[:, 2]).all()
    lab, lab_g = color.rgb_to_lab(rgb), color.rgb_to_lab(g)
    torch.testing.assert_close(lab_g[:, 0], lab[:, 0], atol=1e-3, rtol=0)
    assert lab_g[:, 1:].abs().max() < 1e-3
