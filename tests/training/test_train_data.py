"""Training data: decoding, the lazy path, and batches as a pure function of the step."""

from __future__ import annotations

from pathlib import Path

import torch
from zoo.training.augment import BatchedViews, simclr_views
from zoo.training.data import EpochBatches, LazyImages, load_split


def _identity(images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    return [images]


def test_in_memory_and_lazy_splits_hold_the_same_pixels(cifar_root: Path) -> None:
    images, labels, classes = load_split(cifar_root / "test", 32, limit_per_class=3)
    lazy, lazy_labels, lazy_classes = load_split(cifar_root / "test", 32, limit_per_class=3, in_memory=False)
    assert isinstance(lazy, LazyImages) and images.shape == lazy.shape == (30, 3, 32, 32)
    assert images.dtype == torch.uint8 and classes == lazy_classes and len(classes) == 10
    assert torch.equal(labels, lazy_labels) and labels.tolist() == sorted(labels.tolist())
    idx = torch.tensor([0, 7, 29])
    assert torch.equal(images[idx], lazy[idx])
    # A second load comes from the cache, identical.
    again, _, _ = load_split(cifar_root / "test", 32, limit_per_class=3)
    assert torch.equal(images, again)


def test_images_are_resized_on_the_shorter_side_and_centre_cropped(data_root: Path) -> None:
    images, _, _ = load_split(data_root / "imagenette" / "val", 48, limit_per_class=1)
    assert images.shape == (10, 3, 48, 48)
    assert images.float().std() > 10  # real photos, not padding


def test_batches_depend_only_on_seed_epoch_step_and_rank() -> None:
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 4, 4).contiguous()
    labels = torch.arange(40)

    def batches(**kw) -> EpochBatches:
        return EpochBatches(images, labels, _identity, batch_size=4, seed=0, **kw)

    a, b = batches(epoch=0), batches(epoch=0)
    assert len(a) == 10
    assert all(torch.equal(a[i][1], b[i][1]) for i in range(len(a)))
    assert not torch.equal(a[0][1], batches(epoch=1)[0][1])  # reshuffled each epoch
    assert sorted(torch.cat([a[i][1] for i in range(len(a))]).tolist()) == list(range(40))
    # Two ranks split the epoch into disjoint halves of the same size.
    r0, r1 = batches(epoch=0, rank=0, world_size=2), batches(epoch=0, rank=1, world_size=2)
    assert len(r0) == len(r1) == 5
    seen0 = {int(x) for i in range(5) for x in r0[i][1]}
    seen1 = {int(x) for i in range(5) for x in r1[i][1]}
    assert not seen0 & seen1 and len(seen0 | seen1) == 40


def test_views_of_a_step_are_reproducible_out_of_order() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=g)
    data = EpochBatches(images, torch.zeros(32), BatchedViews(simclr_views(8)), batch_size=8, epoch=2, seed=5)
    later = data[3][0]
    _ = data[0], data[1]
    for u, v in zip(data[3][0], later, strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(data[2][0][0], later[0])
