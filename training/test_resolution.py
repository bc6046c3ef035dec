"""Choose the resolution a trained encoder reads test images at, on held-out *training* images.

Random-resized-crop training shows objects larger than a centre crop of the same size does, so
a network often reads test images best at a somewhat higher resolution than it was trained at
(FixRes, Touvron et al. 2019, https://arxiv.org/abs/1906.06423). Picking that resolution on the
test split would tune on it; here a tenth of each class of the training split is the query set
and the other nine tenths the kNN bank, and the test split is never read.

    python -m zoo.training.test_resolution runs/flagship/simclr_r18h_imagenette/export \\
        --data ../shared/data/imagenette --candidates 128/112 146/128 128/128

prints the held-out weighted-kNN top-1 of each ``resize/crop`` candidate and the best one;
``python -m zoo.training.ship ... --test-size 146/128`` ships it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from zoo.encoder import Encoder
from zoo.errors import ZooError
from zoo.evaluate import features, image_folder, knn_predict


def parse_candidate(text: str) -> tuple[int, int]:
    """``"146/128"`` -> (resize 146, crop 128); one clear error for anything else."""
    try:
        resize, crop = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"candidate {text!r}: expected RESIZE/CROP, e.g. 146/128") from None
    if not 0 < crop <= resize:
        raise ValueError(f"candidate {text!r}: need 0 < crop <= resize")
    return resize, crop


def at_test_size(encoder: Encoder, resize: int, crop: int) -> Encoder:
    """The same weights reading images resized to ``resize`` and centre-cropped to ``crop``
    (its registry entry, when it has one, says so too)."""
    preprocess = dataclasses.replace(encoder.preprocess, resize_size=resize, input_size=crop)
    entry = None if encoder.entry is None else dataclasses.replace(encoder.entry, preprocess=preprocess)
    return Encoder(encoder.backbone, encoder.arch, preprocess, entry)


def holdout_split(labels: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(bank indices, query indices): ``fraction`` of each class (at least one image) as queries."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    queries = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            raise ValueError(f"class {c} has {len(members)} training image(s); a held-out split needs 2")
        queries.append(rng.choice(members, max(1, round(fraction * len(members))), replace=False))
    query = np.sort(np.concatenate(queries))
    return np.setdiff1d(np.arange(len(labels)), query), query


def holdout_knn(
    encoder: Encoder,
    data: str | Path,
    candidates: list[tuple[int, int]],
    *,
    train_split: str = "train",
    k: int = 20,
    temperature: float = 0.07,
    fraction: float = 0.1,
    seed: int = 0,
    backend: str = "torch",
) -> dict[str, float]:
    """Held-out weighted-kNN top-1 (%) of ``encoder`` on the training split for each
    ``(resize, crop)`` candidate: ``{"146/128": 81.2, ...}``. PyTorch by default: an exported
    ONNX graph is fixed to one input size."""
    files, labels, classes = image_folder(Path(data) / train_split)
    bank, query = holdout_split(labels, fraction, seed)
    scores = {}
    for resize, crop in candidates:
        feats = features(at_test_size(encoder, resize, crop), files, backend=backend)
        predicted = knn_predict(
            feats[bank], labels[bank], feats[query], k=k, temperature=temperature, num_classes=len(classes)
        )
        scores[f"{resize}/{crop}"] = round(float((predicted == labels[query]).mean() * 100), 2)
    return scores


def main(argv: list[str] | None = None) -> None:
    import zoo

    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.test_resolution", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", help="a zoo name or an exported folder")
    parser.add_argument("--data", required=True, help="dataset root with a train/<class>/<image> split")
    parser.add_argument(
        "--candidates", nargs="+", required=True, help="RESIZE/CROP pairs, e.g. 128/112 146/128"
    )
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each class held out as queries")
    args = parser.parse_args(argv)
    try:
        candidates = [parse_candidate(c) for c in args.candidates]
    except ValueError as e:
        parser.error(str(e))
    try:
        encoder = zoo.load_folder(args.model) if Path(args.model).is_dir() else zoo.load(args.model)
        scores = holdout_knn(
            encoder, args.data, candidates, k=args.k, temperature=args.temperature, fraction=args.fraction
        )
    except (ZooError, ValueError) as e:  # an unknown model, a missing split, a class too small to hold out
        parser.exit(2, f"zoo: error: {' '.join(str(e).split())}\n")
    best = max(scores, key=scores.get)
    print(json.dumps({"held_out_knn_top1": scores, "best": best, "fraction": args.fraction}, indent=2))


if __name__ == "__main__":
    main()
