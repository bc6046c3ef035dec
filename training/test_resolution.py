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

A ``+flip`` suffix (``146/128+flip``) reads the candidate with mirror-averaged features (the mean
of the image's and its mirror image's: ``Preprocess.flip_average``, 2 forward passes), so the
test resolution and whether to average over the mirror image are chosen in one run, on the same
held-out training images; ``--test-size 146/128+flip`` ships that.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from zoo import memory
from zoo.encoder import Encoder
from zoo.errors import ZooError
from zoo.evaluate import features, image_folder, knn_predict


class Candidate(NamedTuple):
    """A test-time reading: shorter side resized to ``resize``, centre crop ``crop``, and with
    ``flip``, features averaged over the image and its mirror image."""

    resize: int
    crop: int
    flip: bool = False

    def __str__(self) -> str:
        return f"{self.resize}/{self.crop}" + ("+flip" if self.flip else "")


_FLIP_SUFFIX = "+flip"


def parse_candidate(text: str) -> Candidate:
    """``"146/128"`` -> (resize 146, crop 128, flip False); ``"146/128+flip"`` -> flip True; one
    clear error for anything else."""
    size, flip = (text[: -len(_FLIP_SUFFIX)], True) if text.endswith(_FLIP_SUFFIX) else (text, False)
    try:
        resize, crop = (int(v) for v in size.split("/"))
    except ValueError:
        raise ValueError(
            f"candidate {text!r}: expected RESIZE/CROP with an optional +flip (features averaged with the"
            " mirror image's), e.g. 146/128 or 146/128+flip"
        ) from None
    if not 0 < crop <= resize:
        raise ValueError(f"candidate {text!r}: need 0 < crop <= resize")
    return Candidate(resize, crop, flip)


def at_test_size(encoder: Encoder, resize: int, crop: int, flip_average: bool = False) -> Encoder:
    """The same weights reading images resized to ``resize`` and centre-cropped to ``crop``, with
    ``flip_average`` their features averaged with their mirror images' (its registry entry, when it
    has one, says so too)."""
    preprocess = dataclasses.replace(
        encoder.preprocess, resize_size=resize, input_size=crop, flip_average=flip_average
    )
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
    candidates: list[str | tuple[int, int] | tuple[int, int, bool]],
    *,
    train_split: str = "train",
    k: int = 20,
    temperature: float = 0.07,
    fraction: float = 0.1,
    seed: int = 0,
    backend: str = "torch",
) -> dict[str, float]:
    """Held-out weighted-kNN top-1 (%) of ``encoder`` on the training split for each candidate, a
    ``"RESIZE/CROP[+flip]"`` text (keyed as given) or a ``(resize, crop[, flip])`` tuple (keyed
    ``"146/128"`` / ``"146/128+flip"``): ``{"146/128": 81.2, "146/128+flip": 81.9, ...}``. PyTorch by
    default: an exported ONNX graph is fixed to one input size."""
    files, labels, classes = image_folder(Path(data) / train_split)
    bank, query = holdout_split(labels, fraction, seed)
    scores = {}
    for given in candidates:
        candidate = parse_candidate(given) if isinstance(given, str) else Candidate(*given)
        reading = at_test_size(encoder, candidate.resize, candidate.crop, candidate.flip)
        feats = features(reading, files, backend=backend)
        predicted = knn_predict(
            feats[bank], labels[bank], feats[query], k=k, temperature=temperature, num_classes=len(classes)
        )
        key = given if isinstance(given, str) else str(candidate)
        scores[key] = round(float((predicted == labels[query]).mean() * 100), 2)
    return scores


def main(argv: list[str] | None = None) -> None:
    import zoo

    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.test_resolution", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", help="a zoo name or an exported folder")
    parser.add_argument("--data", required=True, help="dataset root with a train/<class>/<image> split")
    parser.add_argument(
        "--candidates",
        nargs="+",
        required=True,
        help="RESIZE/CROP pairs, each with an optional +flip (features averaged with the mirror image's),"
        " e.g. 128/112 146/128 146/128+flip",
    )
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.07)
    parser.add_argument("--fraction", type=float, default=0.1, help="share of each class held out as queries")
    args = parser.parse_args(argv)
    memory.keep_freed_memory()  # batch after batch of features
    try:
        for c in args.candidates:
            parse_candidate(c)  # every one checked before any is scored; scores keyed as given
    except ValueError as e:
        parser.error(str(e))
    candidates = list(args.candidates)
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
