"""Evaluation of frozen encoders on ImageFolder datasets.

Weighted kNN (Wu et al. 2018, as in DINO and solo-learn): each test feature takes its
``k`` most cosine-similar training features, which vote for their class with weight
``exp(similarity / T)``; top-1 is the share of test images whose heaviest class is right.
solo-learn's protocol is k=20, T=0.07; lightly's is k=200, T=0.1.

Features are cached per encoder weights and file list, so a second protocol on the same
data costs no forward pass.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from zoo.encoder import Encoder
from zoo.errors import ImageError
from zoo.images import IMAGE_SUFFIXES


def image_folder(root: str | os.PathLike) -> tuple[list[Path], np.ndarray, list[str]]:
    """``(files, labels, classes)`` of an ImageFolder split (``root/<class>/<image>``)."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: dataset split folder not found")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ImageError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    files: list[Path] = []
    labels: list[int] = []
    for i, c in enumerate(classes):
        found = sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ImageError(f"{root / c}: class folder holds no images")
        files += found
        labels += [i] * len(found)
    return files, np.asarray(labels, dtype=np.int64), classes


def knn_predict(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    *,
    k: int,
    temperature: float,
    num_classes: int,
) -> np.ndarray:
    """Weighted-kNN class predictions for ``test`` (features are L2-normalised here)."""
    train_t = torch.nn.functional.normalize(torch.from_numpy(train).float(), dim=1)
    test_t = torch.nn.functional.normalize(torch.from_numpy(test).float(), dim=1)
    labels = torch.from_numpy(train_labels)
    k = min(k, len(train_t))
    preds = []
    for chunk in test_t.split(1024):
        sim, idx = (chunk @ train_t.T).topk(k, dim=1)
        votes = torch.zeros(len(chunk), num_classes)
        votes.scatter_add_(1, labels[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds).numpy()


def features(
    encoder: Encoder,
    files: list[Path],
    *,
    backend: str = "auto",
    cache: bool = True,
    calibration: list[Path] | None = None,
) -> np.ndarray:
    """Features of ``files``, cached under ``$ZOO_HOME/features`` by weights and file list."""
    from zoo.folder import atomic_write_bytes
    from zoo.hub import cache_dir

    key = hashlib.blake2b(digest_size=12)
    key.update(encoder.fingerprint().encode())
    key.update(repr(encoder.preprocess).encode())
    key.update(backend.encode())  # int8 and fp32 features differ
    for f in calibration or ():
        key.update(str(f).encode())
    for f in files:
        key.update(str(Path(f).resolve()).encode())
    path = cache_dir() / "features" / f"{key.hexdigest()}.npy"
    if cache and path.is_file():
        return np.load(path)
    feats = encoder.embed(files, backend=backend, progress=True, calibration=calibration)
    if cache:
        buf = io.BytesIO()
        np.save(buf, feats)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            pass  # an unwritable cache only costs recomputation
    return feats


def knn_eval(
    model: str | Encoder,
    data: str | os.PathLike,
    *,
    train_split: str = "train",
    test_split: str | None = None,
    k: int = 20,
    temperature: float = 0.07,
    backend: str = "auto",
) -> dict:
    """Weighted-kNN top-1 (%) of ``model`` on an ImageFolder dataset with two splits."""
    import zoo

    encoder = model if isinstance(model, Encoder) else zoo.load(model)
    root = Path(data)
    if test_split is None:
        test_split = "val" if (root / "val").is_dir() else "test"
    train_files, train_labels, classes = image_folder(root / train_split)
    test_files, test_labels, test_classes = image_folder(root / test_split)
    if test_classes != classes:
        raise ImageError(f"{root}: the {train_split} and {test_split} splits have different classes")
    # int8 activation ranges come from training images only, the same for both splits.
    calib = train_files if backend == "onnx-int8" else None
    train = features(encoder, train_files, backend=backend, calibration=calib)
    test = features(encoder, test_files, backend=backend, calibration=calib)
    pred = knn_predict(train, train_labels, test, k=k, temperature=temperature, num_classes=len(classes))
    return {
        "model": encoder.name,
        "data": str(root),
        "protocol": f"weighted kNN, k={k}, T={temperature}, cosine; {train_split} -> {test_split}",
        "train_images": len(train_files),
        "test_images": len(test_files),
        "top1": round(100.0 * float((pred == test_labels).mean()), 2),
        "backend": backend,
    }
