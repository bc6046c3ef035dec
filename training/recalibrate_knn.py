"""kNN of an encoder with its shipped batch-norm statistics and with statistics re-estimated on
whole training images.

A backbone's running statistics are those of what it saw in training: crops, tiles, or, for a
GAN's discriminator, real and generated batches alike. ``run.bn_recalibration_images`` makes a
recipe re-estimate them before its evaluations and export; this measures what that would give
an encoder already shipped, without retraining, so a training note can say whether a recipe
should turn it on:

    python -m zoo.training.recalibrate_knn dcgan-disc-cifar10 ../shared/data/cifar10 \\
        --images 0 2048 10240

prints, for each count (0: the statistics the encoder ships with), weighted kNN top-1 (k=20
T=0.07 and k=200 T=0.1, the full train split -> test or val split, fp32 features of the
backbone on centre crops as the encoder's preprocessing says). The images are those the trainer
would draw with ``--seed`` (a recipe's ``train.seed``, default 0):
:func:`zoo.training.batch_norm.recalibration_indices`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from zoo.training.pretext.grid_knn import PROTOCOLS
from zoo.training.pretext.probe import load_encoder


def recalibrate_knn(
    model: str,
    data: str,
    *,
    images: Sequence[int] = (0, 2048),
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """``{"shipped k=20": top1, "shipped k=200": top1, "2048 k=20": ..., ...}`` (%) of a zoo
    encoder (name or folder) on an ImageFolder dataset, one pair per count in ``images``."""
    from zoo.training.batch_norm import recalibrated, recalibration_indices
    from zoo.training.data import evaluation_batches, find_split, load_split

    from zoo.evaluate import knn_predict

    if not images or any(n < 0 for n in images):
        raise ValueError(f"--images takes counts >= 0 (0: the shipped statistics), not {list(images)}")
    encoder = load_encoder(model, backbone_reader="recalibrate_knn")
    pre = encoder.preprocess
    shipped = encoder.backbone.float().eval()
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in shipped.modules()):
        raise ValueError(f"{model}: its backbone has no batch-norm layer, so no statistics to re-estimate")
    train, train_labels, classes = load_split(find_split(data, "train"), pre.resize_size)
    test, test_labels, test_classes = load_split(find_split(data, ""), pre.resize_size)
    if test_classes != classes:
        raise ValueError(f"{data}: the train and test splits have different class folders")

    def batches(split: torch.Tensor, indices: torch.Tensor | None = None, size: int = batch_size):
        return evaluation_batches(split, pre.input_size, pre.mean, pre.std, size, indices=indices)

    @torch.inference_mode()
    def embed(backbone: nn.Module, split: torch.Tensor) -> np.ndarray:
        return torch.cat([backbone(x) for x in batches(split)]).numpy()

    result = {}
    for n in images:
        backbone = shipped
        if n:
            idx, batch = recalibration_indices(len(train), n, seed)
            backbone = recalibrated(shipped, batches(train, idx, batch))
        tr, te = embed(backbone, train), embed(backbone, test)
        name = f"{n}" if n else "shipped"
        for k, temperature in PROTOCOLS:
            pred = knn_predict(
                tr, train_labels.numpy(), te, k=k, temperature=temperature, num_classes=len(classes)
            )
            result[f"{name} k={k}"] = round(100.0 * float((pred == test_labels.numpy()).mean()), 2)
    return result


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        description="kNN of an encoder with shipped and with re-estimated batch-norm statistics"
    )
    parser.add_argument("model", help="zoo name or folder (e.g. runs/<run>/export)")
    parser.add_argument("data", help="ImageFolder root with train and test (or val) splits")
    parser.add_argument(
        "--images",
        type=int,
        nargs="+",
        default=[0, 2048],
        help="training images to re-estimate on, one reading each (0: the shipped statistics)",
    )
    parser.add_argument("--seed", type=int, default=0, help="which images: a recipe's train.seed")
    a = parser.parse_args(argv)
    try:
        result = recalibrate_knn(a.model, a.data, images=a.images, seed=a.seed)
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":  # python -m zoo.training.recalibrate_knn ENCODER DATA --images 0 2048
    main()
