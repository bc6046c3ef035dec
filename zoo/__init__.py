"""zoo: self-supervised image encoders, loaded in one line.

>>> import zoo
>>> encoder = zoo.load("supervised-efficientnet-lite0")   # or a folder, URL, hf-hub:org/name
>>> features = encoder.embed(["a.jpg", "b.jpg"])           # float32 (2, 1280)

Data flows one way: registry (:mod:`zoo.registry`, :mod:`zoo.pretrained`) -> weights
(:mod:`zoo.hub`, :mod:`zoo.convert`, :mod:`zoo.folder`) -> :class:`zoo.Encoder` ->
embedding, export and cards.
"""

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

__version__ = "0.1.0"


def create_encoder(name: str = DEFAULT_MODEL, **kwargs) -> tuple[Encoder, "object"]:
    """``(encoder, preprocess)``: the loaded encoder and its image -> tensor transform."""
    encoder = load(name, **kwargs)
    return encoder, encoder.transform


def create_classifier(name_or_dir, num_classes: int | None = None, **kwargs):
    """An encoder + linear head (``zoo.classifier.Classifier``), or a fine-tuned folder loaded
    back; see :func:`zoo.classifier.create_classifier`."""
    from zoo.classifier import create_classifier as _create

    return _create(name_or_dir, num_classes, **kwargs)


def finetune(model, data, out, **kwargs):
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
