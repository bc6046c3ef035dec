"""kNN of an encoder read on the whole image and on a grid of patches whose features are averaged.

Patch-based tasks (relative patch location, jigsaw, CPC) train the backbone on small patches,
while a zoo encoder embeds whole images, a scale and context the network never saw. Kolesnikov,
Zhai & Beyer (2019, sec. 3) read such networks the way they were trained: the image cut into
patches, each encoded, the features averaged. This measures both read-outs side by side, so a
card or a training note can say whether the whole-image export loses anything:

    python -m zoo.training.pretext.grid_knn cpc-v2-r18q-cifar10.whole ../shared/data/cifar10 \\
        --grid 7 --patch 8
    python -m zoo.training.pretext.grid_knn runs/<run>/export ../shared/data/imagenette --grid 3 --patch 32 \\
        --recalibrate [--random-init]

prints weighted kNN top-1 (k=20 T=0.07 and k=200 T=0.1, full train split -> test or val split)
of both; with ``--holdout``, a seeded tenth of each training class classified by the rest
instead: the reading to choose a read-out by (the test split then only reports the choice).
``--recalibrate`` re-estimates the batch-norm statistics on the patches of 2,048
training images first (for a backbone whose export holds whole-image statistics);
``--random-init`` gives the floor: the same architecture with seeded random weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from zoo.training.augment import patch_grid
from zoo.training.pretext.probe import load_encoder

from zoo.models.patch_grid import PatchGridEncoder

#: (k, temperature) of the two kNN protocols of the leaderboard.
PROTOCOLS = ((20, 0.07), (200, 0.1))


@torch.inference_mode()
def grid_features(backbone: nn.Module, x: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """The mean of ``backbone``'s features over a ``grid x grid`` grid of ``patch`` px patches at
    an equal stride (overlapping where ``grid * patch`` exceeds the image), as
    :func:`zoo.training.augment.patch_grid` cuts CPC's views: the read-out the shipped patch-grid
    architectures compute (:class:`zoo.models.patch_grid.PatchGridEncoder`), so this measures
    exactly what ships."""
    return PatchGridEncoder(backbone, grid, patch)(x)


def grid_knn(
    model: str,
    data: str,
    *,
    grid: int,
    patch: int,
    random_init: bool = False,
    recalibrate: bool = False,
    holdout: bool = False,
    batch_size: int = 256,
) -> dict[str, float]:
    """``{"whole k=20": top1, ..., "grid k=200": top1}`` (%) of a zoo encoder on an ImageFolder
    dataset, each image centre-cropped as the encoder's preprocessing says."""
    from zoo.training.batch_norm import recalibrated
    from zoo.training.data import evaluation_batches, find_split, load_split

    from zoo.evaluate import knn_predict

    # Both read-outs run the backbone on raw batches and patch grids.
    encoder = load_encoder(model, random_init=random_init, backbone_reader="grid_knn")
    pre = encoder.preprocess
    span = pre.input_size - patch
    if grid < 2 or patch < 1 or span < 0 or span % (grid - 1):
        raise ValueError(
            f"a {grid} x {grid} grid of {patch} px patches does not tile {pre.input_size} px inputs at an"
            f" equal stride: grid must be >= 2 and ({pre.input_size} - patch) a multiple of grid - 1"
        )
    backbone = encoder.backbone.float().eval()
    train, train_labels, classes = load_split(find_split(data, "train"), pre.resize_size)
    if holdout:
        # Choosing the read-out to ship is a choice: make it on training images, a seeded tenth
        # of each class voted on by the rest (as the test-resolution chooser), never on test.
        from zoo.training.test_resolution import holdout_split

        bank, query = (torch.from_numpy(i) for i in holdout_split(train_labels.numpy()))
        test, test_labels = train[query], train_labels[query]
        train, train_labels = train[bank], train_labels[bank]
    else:
        test, test_labels, _ = load_split(find_split(data, ""), pre.resize_size)

    def batches(images, indices=None):
        return evaluation_batches(images, pre.input_size, pre.mean, pre.std, batch_size, indices=indices)

    if recalibrate:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2048]
        backbone = recalibrated(backbone, (patch_grid(x, grid, patch) for x in batches(train, order)))

    @torch.inference_mode()
    def embed(images) -> tuple[np.ndarray, np.ndarray]:
        whole, pooled = [], []
        for x in batches(images):
            whole.append(backbone(x))
            pooled.append(grid_features(backbone, x, grid, patch))
        return torch.cat(whole).numpy(), torch.cat(pooled).numpy()

    tr, te = embed(train), embed(test)
    result = {}
    for i, readout in enumerate(("whole", "grid")):
        for k, temperature in PROTOCOLS:
            pred = knn_predict(
                tr[i], train_labels.numpy(), te[i], k=k, temperature=temperature, num_classes=len(classes)
            )
            result[f"{readout} k={k}"] = round(100.0 * float((pred == test_labels.numpy()).mean()), 2)
    return result


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="kNN of whole-image and patch-grid-averaged features")
    parser.add_argument("model", help="zoo name or folder (e.g. runs/<run>/export)")
    parser.add_argument("data", help="ImageFolder root with train and test (or val) splits")
    parser.add_argument("--grid", type=int, required=True, help="patches per side")
    parser.add_argument("--patch", type=int, required=True, help="patch size in pixels")
    parser.add_argument("--recalibrate", action="store_true", help="batch-norm statistics from the patches")
    parser.add_argument("--random-init", action="store_true", help="seeded random weights (the floor)")
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="classify a seeded tenth of each training class by the rest, not the test split"
        " (to choose a read-out by)",
    )
    a = parser.parse_args(argv)
    try:
        result = grid_knn(
            a.model,
            a.data,
            grid=a.grid,
            patch=a.patch,
            random_init=a.random_init,
            recalibrate=a.recalibrate,
            holdout=a.holdout,
        )
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":  # python -m zoo.training.pretext.grid_knn ENCODER DATA --grid G --patch P
    main()
