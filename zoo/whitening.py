"""Whiten an encoder's features on unlabelled images: fit, check on held-out images, save.

    python -m zoo.whitening moco-v2-r18h-cifar10 --data ../shared/data/cifar10 --out FOLDER

embeds the ``train`` split of ``--data`` at the encoder's own preprocessing (features cached as
``zoo eval`` caches them), fits the PCA whitening of those features (:func:`fit_whitening`: no
labels), and writes a zoo folder whose architecture is the backbone followed by that map
(:mod:`zoo.models.whitened`). Before writing, it prints weighted-kNN top-1 on held-out training
images (a tenth of each class against the rest, the map fitted on the rest only) with and
without the map: the labels serve only that check, so a map that does not help is seen before it
ships.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from zoo.encoder import Encoder
from zoo.errors import ZooError

__all__ = ["fit_whitening", "heldout_gain", "whiten", "whitened_name"]

#: Smallest variance kept, relative to the largest: directions below it (constant channels, the
#: numerical noise of a rank-deficient covariance) are scaled as if they had this variance
#: instead of being blown up by the reciprocal of almost zero.
EIGEN_FLOOR = 1e-5


def fit_whitening(features: np.ndarray, *, floor: float = EIGEN_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)`` of the PCA whitening of ``features`` (N, D) as a Linear layer:
    ``x @ weight.T + bias`` is centred on the features' mean, rotated onto their principal axes
    and scaled to unit variance along each, float32. Fitted in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"whitening needs an (N, D) array of N >= 2 features, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the features hold NaN or infinite values; the encoder's outputs are broken")
    mean = x.mean(axis=0)
    variances, axes = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    largest = variances.max()
    if largest <= 0:
        raise ValueError("the features do not vary: every image has the same features")
    projection = axes / np.sqrt(np.maximum(variances, floor * largest))  # (D, D), one axis per column
    return projection.T.astype(np.float32), (-mean @ projection).astype(np.float32)


def _apply(features: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return features @ weight.T + bias


def heldout_gain(
    features: np.ndarray, labels: np.ndarray, *, k: int = 200, temperature: float = 0.1, seed: int = 0
) -> tuple[float, float]:
    """Weighted-kNN top-1 (%) of held-out training images (a tenth of each class) against the rest,
    ``(plain, whitened)``, the whitening fitted on the rest only."""
    from zoo.evaluate import knn_predict
    from zoo.training.test_resolution import holdout_split

    bank, query = holdout_split(labels, 0.1, seed)
    weight, bias = fit_whitening(features[bank])
    classes = int(labels.max()) + 1
    scores = []
    for bank_f, query_f in (
        (features[bank], features[query]),
        (_apply(features[bank], weight, bias), _apply(features[query], weight, bias)),
    ):
        predicted = knn_predict(
            bank_f, labels[bank], query_f, k=k, temperature=temperature, num_classes=classes
        )
        scores.append(round(float((predicted == labels[query]).mean() * 100), 2))
    return scores[0], scores[1]


def whitened_name(name: str) -> str:
    """A registry name with ``whitened`` added to its tag: ``a-b.ep200`` -> ``a-b.ep200_whitened``,
    ``a-b`` -> ``a-b.whitened`` (names allow one ``.tag``)."""
    return f"{name}_whitened" if "." in name else f"{name}.whitened"


def whiten(encoder: Encoder, features: np.ndarray, *, name: str | None = None) -> Encoder:
    """``encoder`` followed by the whitening of ``features`` (its own, of unlabelled images), as
    an Encoder of the registered whitened architecture; its entry (if any) is renamed ``name``
    (default :func:`whitened_name`) and keeps no measured numbers (they were the plain features')."""
    from zoo.models.whitened import WhitenedEncoder, whitened_arch

    if features.shape[1:] != (encoder.embed_dim,):
        raise ValueError(
            f"expected ({encoder.embed_dim},)-d features of {encoder.name}, got shape {features.shape}"
        )
    arch = whitened_arch(encoder.arch)
    weight, bias = fit_whitening(features)
    module = WhitenedEncoder(encoder.backbone, encoder.embed_dim)
    with torch.no_grad():
        module.whiten.weight.copy_(torch.from_numpy(weight))
        module.whiten.bias.copy_(torch.from_numpy(bias))
    entry = None
    if encoder.entry is not None:
        entry = dataclasses.replace(
            encoder.entry,
            name=name or whitened_name(encoder.entry.name),
            arch=arch,
            measured=(),
            reported=(),
            description=(
                f"{encoder.entry.name} followed by the PCA whitening of its features of {len(features)}"
                " unlabelled training images (centred, rotated onto their principal axes, each scaled"
                " to unit variance): " + encoder.entry.description
            ),
        )
    return Encoder(module.eval(), arch, encoder.preprocess, entry)


def main(argv: list[str] | None = None) -> None:
    """``python -m zoo.whitening ENCODER --data ROOT --out FOLDER [--split train] [--name NAME]``."""
    parser = argparse.ArgumentParser(
        prog="python -m zoo.whitening",
        description="Fit the PCA whitening of an encoder's features on a dataset's training images"
        " (no labels), report held-out kNN with and without it, and save the whitened encoder.",
    )
    parser.add_argument("encoder", help="registry name or zoo folder")
    parser.add_argument("--data", required=True, help="ImageFolder dataset root holding the split")
    parser.add_argument("--split", default="train", help="the split to fit on (default: train)")
    parser.add_argument("--out", required=True, type=Path, help="the zoo folder to write")
    parser.add_argument(
        "--name", default=None, help="the saved encoder's name (default: NAME.TAG_whitened or NAME.whitened)"
    )
    args = parser.parse_args(argv)
    import zoo
    from zoo.evaluate import features, image_folder
    from zoo.export import export

    try:
        encoder = zoo.load(args.encoder)
        files, labels, classes = image_folder(Path(args.data) / args.split)
        feats = features(encoder, files, backend="torch")
        if len(classes) > 1:
            plain, whitened = heldout_gain(feats, labels)
            print(
                f"held-out kNN top-1 (k=200, T=0.1; a tenth of each class of {args.split} against the rest):"
                f" {plain:.2f} plain, {whitened:.2f} whitened"
            )
        export(whiten(encoder, feats, name=args.name), args.out, onnx=False)
    except (ZooError, ValueError) as e:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(e).split())}\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
