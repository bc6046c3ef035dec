"""Predictions of a fine-tuned classifier folder: ``zoo predict DIR IMAGES...``.

The folder's ``model.onnx`` runs in ONNX Runtime when it is there and onnxruntime is
installed (``backend="auto"``), else the PyTorch model from ``model.safetensors``; both
take the images through the encoder's preprocessing and give softmax probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo import images as _images
from zoo.classifier import Classifier, FinetuneError, is_classifier_folder, load_classifier, top_classes

PREDICT_BACKENDS = ("auto", "torch", "onnx")


class Predictor:
    """A fine-tuned folder ready to classify: ``predictor(images)`` -> probabilities (N, C)."""

    def __init__(self, folder: str | os.PathLike, *, backend: str = "auto") -> None:
        folder = Path(os.fspath(folder)).expanduser()
        if backend not in PREDICT_BACKENDS:
            raise FinetuneError(f"unknown backend {backend!r}; choose one of {', '.join(PREDICT_BACKENDS)}")
        if not is_classifier_folder(folder):
            raise FinetuneError(
                f"{folder}: not a fine-tuned classifier folder (no class names in config.json); an"
                f" encoder has no classes to predict: fine-tune it first with `zoo finetune {folder}"
                " --data DIR --out OUT` and predict with OUT"
            )
        self.folder = folder
        self.model: Classifier = load_classifier(folder)
        onnx_file = folder / "model.onnx"
        if backend == "auto":
            backend = "onnx" if onnx_file.is_file() and _has_onnxruntime() else "torch"
        self.session = None
        if backend == "onnx":
            if not onnx_file.is_file():
                raise FinetuneError(f"{folder}: no model.onnx; use --backend torch (or export ONNX)")
            from zoo.onnx import OnnxEncoder

            self.session = OnnxEncoder(onnx_file)
        self.backend = backend

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def __call__(
        self, images: _images.ImageInput | Sequence[_images.ImageInput], batch_size: int = 64
    ) -> np.ndarray:
        if self.session is None:
            return self.model.predict_proba(images, batch_size=batch_size)
        items = _images.split_inputs(images)
        out = []
        for batch in _images.batches(items, self.model.preprocess, batch_size):
            logits = self.session(batch.numpy()).astype(np.float64)
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            out.append((p / p.sum(1, keepdims=True)).astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def top_k(
        self, images: _images.ImageInput | Sequence[_images.ImageInput], k: int = 5
    ) -> list[list[tuple[str, float]]]:
        """For each image its ``k`` most likely ``(class, probability)``."""
        return top_classes(self(images), self.classes, k)


def predict(
    folder: str | os.PathLike,
    images: _images.ImageInput | Sequence[_images.ImageInput],
    *,
    top_k: int = 5,
    backend: str = "auto",
) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(class, probability)`` of each image under the classifier in ``folder``."""
    return Predictor(folder, backend=backend).top_k(images, top_k)


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
