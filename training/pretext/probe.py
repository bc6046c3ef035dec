"""Which block's features are best: a linear probe on the pooled output of every block.

RotNet's finding (Gidaris et al. 2018, section 3.1.1) is that for a network trained on a
pretext task the *middle* blocks give the best features for a downstream linear classifier:
the last ones specialise in the pretext task. This measures it for any zoo encoder whose
backbone is a torchvision ResNet:

    python -m zoo.training.pretext.probe runs/rotnet-r18q-cifar10/export ../shared/data/cifar10

prints the linear-probe top-1 (%) of the globally average-pooled output of the stem and of
layer1 .. layer4, each through ``zoo.evaluate.linear_probe`` (standardised features, AdamW,
cosine, a fixed seed), on ``--train-per-class`` / ``--test-per-class`` images of each class;
``--random-init`` gives the same for the architecture with seeded random weights, the floor.
With ``--record`` (a registry name) the five numbers go into the measured table as protocols
``linear-stem`` .. ``linear-layer4``, so the encoder's card shows which block is best.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from zoo.training.pretext.features import BLOCKS, block_features

from zoo.encoder import Encoder
from zoo.errors import ImageError


@torch.no_grad()
def probe_blocks(
    backbone: nn.Module,
    train: torch.Tensor,
    train_labels: np.ndarray,
    test: torch.Tensor,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    batch_size: int = 500,
    epochs: int = 100,
) -> dict[str, float]:
    """Linear-probe top-1 (%) of the globally pooled output of each block (stem, layer1 ..
    layer4) of a torchvision ResNet ``backbone``, from normalised images ``train`` / ``test``
    (N, 3, S, S); the protocol of ``zoo.evaluate.linear_probe``."""
    from zoo.evaluate import linear_probe

    was = backbone.training
    backbone.eval()

    def feats(x: torch.Tensor) -> list[np.ndarray]:
        chunks = [block_features(backbone, c) for c in x.split(batch_size)]
        return [torch.cat([c[b] for c in chunks]).float().numpy() for b in range(len(BLOCKS))]

    try:
        tr, te = feats(train), feats(test)
    finally:
        backbone.train(was)
    return {
        name: linear_probe(tr[b], train_labels, te[b], test_labels, num_classes=num_classes, epochs=epochs)[
            "top1"
        ]
        for b, name in enumerate(BLOCKS)
    }


def load_encoder(model: str, *, random_init: bool = False, backbone_reader: str = "") -> Encoder:
    """A zoo encoder (name or folder); with ``random_init`` its architecture and preprocessing
    with seeded random weights (``torch.manual_seed(0)``, as ``zoo eval --random-init``).
    ``backbone_reader`` names a tool that runs the backbone on raw batches itself: it refuses an
    encoder whose features are mirror-averaged, whose name would then score plain features."""
    import zoo
    from zoo.registry import get_arch

    encoder = zoo.load(model, progress=False)
    if backbone_reader and encoder.preprocess.flip_average:
        raise ValueError(
            f"{model}: its features are mirror-averaged (flip_average); {backbone_reader} reads the"
            " backbone itself: give the encoder without flip_average"
        )
    if random_init:
        torch.manual_seed(0)
        kwargs = encoder.entry.arch_kwargs if encoder.entry is not None else {}
        encoder.backbone.load_state_dict(get_arch(encoder.arch).builder(**kwargs).state_dict())
    return encoder


def probe_folder(
    model: str,
    data: str,
    *,
    train_per_class: int = 1000,
    test_per_class: int = 1000,
    epochs: int = 100,
    random_init: bool = False,
) -> dict[str, float]:
    """:func:`probe_blocks` of a zoo encoder (name or folder, e.g. ``runs/<name>/export``) on an
    ImageFolder dataset's train and test (or val) splits, ``*_per_class`` images of each class.
    With ``random_init`` the encoder's architecture and preprocessing with seeded random weights
    (``torch.manual_seed(0)``, as ``zoo eval --random-init``): the floor each block must beat."""
    from zoo.training.data import evaluation_batches, find_split, load_split, subset_per_class

    encoder = load_encoder(model, random_init=random_init)
    pre = encoder.preprocess
    split_data, class_lists = [], []
    for split, per in (("train", train_per_class), ("", test_per_class)):
        # Resized to the shorter side, then centre-cropped, as the encoder's own preprocessing
        # frames an image (and `zoo eval` with it): the per-block rows sit beside its linear row.
        images, labels, classes = load_split(find_split(data, split), pre.resize_size)
        idx = subset_per_class(labels, per * len(classes))
        x = torch.cat(list(evaluation_batches(images, pre.input_size, pre.mean, pre.std, indices=idx)))
        split_data += [x, labels[idx].numpy()]
        class_lists.append(classes)
    if class_lists[0] != class_lists[1]:
        raise ImageError(
            f"{data}: the train and test splits hold different class folders ({len(class_lists[0])} and"
            f" {len(class_lists[1])}); the probe's labels would not match"
        )
    return probe_blocks(encoder.backbone, *split_data, num_classes=len(class_lists[0]), epochs=epochs)


def record_blocks(
    name: str, data: str, result: dict[str, float], *, train_per_class: int, test_per_class: int, epochs: int
) -> None:
    """Upsert ``result`` (block -> top-1) of registry encoder ``name`` into the measured table as
    ``linear-<block>`` rows, each with how it was measured and the command that reproduces it."""
    from zoo.evaluate import record_eval, shown_path

    command = (
        f"python -m zoo.training.pretext.probe {name} {shown_path(data)} --train-per-class {train_per_class}"
        f" --test-per-class {test_per_class} --epochs {epochs}"
    )
    for block, top1 in result.items():
        how = (
            f"linear probe on the globally average-pooled output of {block} (fp32, frozen), standardised;"
            f" AdamW, {epochs} epochs, cosine, seed 0; {train_per_class:,} train -> up to"
            f" {test_per_class:,} test images per class"
        )
        record_eval(name, data, None, f"linear-{block}", top1, how=how, command=command)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    from zoo.evaluate import recordable_weights

    parser = argparse.ArgumentParser(description="Linear-probe top-1 of each ResNet block's pooled features")
    parser.add_argument("model", help="zoo name or folder (e.g. runs/rotnet-r18q-cifar10/export)")
    parser.add_argument("data", help="ImageFolder root with train and test (or val) splits")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--record", action="store_true", help="keep the numbers in the measured table")
    parser.add_argument(
        "--random-init", action="store_true", help="the architecture with seeded random weights (the floor)"
    )
    a = parser.parse_args(argv)
    if a.record and a.random_init:
        parser.error("--record keeps the encoder's own numbers, not --random-init ones")
    if a.record:
        recordable_weights(a.model)  # a registry name with pinned weights, checked before the work
    per = {"train_per_class": a.train_per_class, "test_per_class": a.test_per_class, "epochs": a.epochs}
    result = probe_folder(a.model, a.data, random_init=a.random_init, **per)
    print(json.dumps(result, indent=2))
    if a.record:
        record_blocks(a.model, a.data, result, **per)


if __name__ == "__main__":  # python -m zoo.training.pretext.probe ENCODER DATA [--record]
    main()
