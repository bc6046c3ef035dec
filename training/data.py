"""Training data: an ImageFolder split decoded once into memory, and deterministic batches.

On CPU, decoding JPEGs every epoch would cost more than the small backbones' steps, so a
split is decoded once (shorter side resized to ``image_size``, centre crop) into a uint8
tensor and cached under ``$ZOO_HOME/datasets`` keyed by the file list and size. Views are
then made from memory by :mod:`zoo.training.augment`. Datasets larger than memory
(ImageNet) set ``data.in_memory: false``: :class:`LazyImages` decodes the files of each
batch as it is drawn, in the loader's worker processes.

Batches are a pure function of ``(seed, epoch, step, rank)``: the sample order of an epoch
comes from ``DistributedSampler`` (``set_epoch``; one shard per rank, the tail dropped so
every rank takes the same number of steps), and the views of a step are drawn with a
generator seeded from the step. That is what makes ``--resume`` exact and makes any number
of loader workers give the same batches.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from zoo.errors import ImageError
from zoo.evaluate import image_folder
from zoo.images import open_image

Augment = Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]]


class LazyImages:
    """Images decoded when indexed, for datasets too large for memory (ImageNet):
    ``images[idx]`` decodes those files into a uint8 batch (N, 3, S, S). Use with
    ``augment.workers`` > 0 so decoding runs in loader processes.

    Like the in-memory path, each image is first reduced to its centre square at
    ``image_size``, so random crops never reach beyond it (the long side's edges of
    non-square photos are not seen; ImageNet recipes use ``image_size: 256``)."""

    def __init__(self, files: list[Path], image_size: int) -> None:
        self.files, self.image_size = files, image_size

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), 3, self.image_size, self.image_size)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [decode(self.files[int(i)], self.image_size) for i in torch.as_tensor(idx).flatten()]
        )


def load_split(
    root: str | os.PathLike,
    image_size: int,
    *,
    limit_per_class: int = 0,
    cache: bool = True,
    in_memory: bool = True,
) -> tuple[torch.Tensor | LazyImages, torch.Tensor, list[str]]:
    """``(images uint8 (N, 3, S, S), labels int64 (N,), classes)`` of an ImageFolder split
    (``images`` is a :class:`LazyImages` with ``in_memory=False``).

    Raises:
        ImageError: the folder is missing, has no class folders, or a class folder holds
            no images (the message names it).
    """
    files, labels, classes = image_folder(root, limit_per_class=limit_per_class)
    if not in_memory:
        return LazyImages(files, image_size), torch.from_numpy(labels), classes
    images = decode_files(files, image_size, cache=cache)
    return images, torch.from_numpy(labels), classes


def decode_files(files: Sequence[Path], size: int, *, cache: bool = True) -> torch.Tensor:
    """uint8 (N, 3, size, size) of :func:`decode` for each file, cached under
    ``$ZOO_HOME/datasets`` by file list, sizes and modification times, and verified (sha256,
    shape) before every use."""
    from zoo.derived import cached_array, files_key
    from zoo.hub import cache_dir

    def decode_all() -> np.ndarray:
        images = np.empty((len(files), 3, size, size), dtype=np.uint8)
        for i, f in enumerate(files):
            images[i] = decode(f, size).numpy()
        return images

    path = cache_dir() / "datasets" / f"{files_key(f'v1-{size}', files)}.npy"
    shape = (len(files), 3, size, size)
    return torch.from_numpy(cached_array(path, decode_all, shape=shape, dtype=np.uint8, enabled=cache))


def decode(path: str | os.PathLike, size: int) -> torch.Tensor:
    """One image as uint8 (3, size, size): shorter side resized to ``size`` (antialiased
    bilinear), centre crop."""
    img = open_image(path)
    t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    h, w = t.shape[1:]
    if min(h, w) != size:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        t = F.interpolate(t[None].float(), (nh, nw), mode="bilinear", antialias=True, align_corners=False)
        t = t[0].round().clamp(0, 255).to(torch.uint8)
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return t[:, top : top + size, left : left + size].contiguous()


def step_seed(seed: int, epoch: int, step: int, rank: int, stream: str = "") -> int:
    """A 63-bit seed for one step on one rank, independent of everything that ran before.
    ``stream`` separates a step's independent draws: ``""`` its views, ``"model"`` what the
    method draws (masks, noise samples)."""
    key = f"{seed}:{epoch}:{step}:{rank}" + (f":{stream}" if stream else "")
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochBatches(Dataset):
    """The batches of one epoch for one rank; item ``step`` is ``(views, labels, indices)``,
    ``indices`` the samples' positions in the split (memory banks, per-sample pseudo-labels).

    Used as a map-style dataset of whole batches (``DataLoader(batch_size=None)``), so a
    run resumed at step k simply starts the sampler at k.
    """

    def __init__(
        self,
        images: torch.Tensor | LazyImages,
        labels: torch.Tensor,
        augment: Augment,
        *,
        batch_size: int,
        epoch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(images) < batch_size * world_size:
            raise ImageError(
                f"the dataset has {len(images)} images, fewer than one global batch of"
                f" {batch_size * world_size}; lower train.batch_size"
            )
        sampler = DistributedSampler(
            range(len(images)), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        sampler.set_epoch(epoch)
        self.order = torch.tensor(list(sampler))
        self.images, self.labels, self.augment = images, labels, augment
        self.batch_size, self.epoch, self.seed, self.rank = batch_size, epoch, seed, rank

    def __len__(self) -> int:
        return len(self.order) // self.batch_size

    def __getitem__(self, step: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        idx = self.order[step * self.batch_size : (step + 1) * self.batch_size]
        generator = torch.Generator().manual_seed(step_seed(self.seed, self.epoch, step, self.rank))
        return self.augment(self.images[idx], generator), self.labels[idx], idx


def steps_per_epoch(num_images: int, batch_size: int, world_size: int = 1) -> int:
    return (num_images // world_size) // batch_size


def evaluation_batches(
    images: torch.Tensor | LazyImages,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    batch_size: int = 512,
    indices: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """Deterministic evaluation inputs: centre crop ``size`` of the stored images (those at
    ``indices``, default all), normalised."""
    s = images.shape[-1]
    if size > s:
        raise ValueError(f"cannot centre-crop {size} px from {s} px images")
    top = (s - size) // 2
    m = torch.tensor(mean).view(1, 3, 1, 1)
    sd = torch.tensor(std).view(1, 3, 1, 1)
    indices = torch.arange(len(images)) if indices is None else indices
    for chunk_idx in indices.split(batch_size):
        chunk = images[chunk_idx]
        x = chunk[:, :, top : top + size, top : top + size].float() / 255
        yield (x - m) / sd


def subset_per_class(labels: torch.Tensor, total: int) -> torch.Tensor:
    """Indices of about ``total`` samples spread evenly over classes (all if ``total`` is 0)."""
    if not total or total >= len(labels):
        return torch.arange(len(labels))
    classes = labels.unique()
    per = max(1, total // len(classes))
    return torch.cat([torch.nonzero(labels == c).flatten()[:per] for c in classes])


def find_split(root: str | os.PathLike, split: str) -> Path:
    """``root/split``, or for an empty ``split`` the evaluation split (``val``, else ``test``)."""
    root = Path(root)
    if split:
        return root / split
    for name in ("val", "test"):
        if (root / name).is_dir():
            return root / name
    raise ImageError(f"{root}: no val/ or test/ split to evaluate on; set data.test_split")
