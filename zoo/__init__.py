"""zoo: self-supervised image encoders, loaded in one line.

>>> import zoo
>>> encoder = zoo.load("supervised-efficientnet-lite0")   # or a folder, URL, hf-hub:org/name
>>> features = encoder.embed(["a.jpg", "b.jpg"])           # float32 (2, 1280)

Data flows one way: registry (:mod:`zoo.registry`, :mod:`zoo.pretrained`) -> weights
(:mod:`zoo.hub`, :mod:`zoo.convert`, :mod:`zoo.folder`) -> :class:`zoo.Encoder` ->
embedding, export and cards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from zoo import models as _models  # noqa: F401  (registers architectures)
from zoo import pretrained as _pretrained  # noqa: F401  (registers pretrained entries)
from zoo.encoder import Encoder
from zoo.errors import (
    CacheError,
    ChecksumError,
    ConversionError,
    DownloadError,
    ExportError,
    ImageError,
    InvalidArgumentError,
    OfflineError,
    OutputError,
    StateDictMismatchError,
    UnknownModelError,
    WeightsError,
    ZooError,
)
from zoo.export import export, sample_images, save_folder
from zoo.images import ImageInput
from zoo.loading import create_model, load, load_folder
from zoo.pretrained import DEFAULT_MODEL
from zoo.registry import (
    Metric,
    ModelEntry,
    Preprocess,
    Training,
    Weights,
    list_archs,
    list_models,
    model_info,
    register_model,
)

if TYPE_CHECKING:  # imported on use: fine-tuning pulls in zoo.training
    from zoo.classifier import Classifier
    from zoo.finetuning import FinetuneResult

__version__ = "0.1.0"


def create_encoder(
    name: str = DEFAULT_MODEL, **kwargs: Any
) -> tuple[Encoder, Callable[[ImageInput], torch.Tensor]]:
    """``(encoder, preprocess)``: the loaded encoder and its image -> tensor transform."""
    encoder = load(name, **kwargs)
    return encoder, encoder.transform


def create_classifier(
    name_or_dir: str | os.PathLike | Encoder, num_classes: int | None = None, **kwargs: Any
) -> Classifier:
    """An encoder + linear head (``zoo.classifier.Classifier``), or a fine-tuned folder loaded
    back; see :func:`zoo.classifier.create_classifier`."""
    from zoo.classifier import create_classifier as _create

    return _create(name_or_dir, num_classes, **kwargs)


def finetune(
    model: str | os.PathLike | Encoder, data: str | os.PathLike, out: str | os.PathLike, **kwargs: Any
) -> FinetuneResult:
    """Fine-tune an encoder on a labelled ImageFolder; see :func:`zoo.finetuning.finetune`."""
    from zoo.finetuning import finetune as _finetune

    return _finetune(model, data, out, **kwargs)


__all__ = [
    "DEFAULT_MODEL",
    "CacheError",
    "ChecksumError",
    "ConversionError",
    "DownloadError",
    "Encoder",
    "ExportError",
    "ImageError",
    "InvalidArgumentError",
    "Metric",
    "ModelEntry",
    "OfflineError",
    "OutputError",
    "Preprocess",
    "StateDictMismatchError",
    "Training",
    "UnknownModelError",
    "Weights",
    "WeightsError",
    "ZooError",
    "create_classifier",
    "create_encoder",
    "create_model",
    "export",
    "finetune",
    "list_archs",
    "list_models",
    "load",
    "load_folder",
    "model_info",
    "register_model",
    "sample_images",
    "save_folder",
]
