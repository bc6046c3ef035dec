"""A pretrained encoder with a classifier head: what fine-tuning trains and what serves it.

    model = zoo.create_classifier("simclr-r18q-cifar10", num_classes=10)
    logits = model(batch)                   # (N, 3, S, S) normalised -> (N, 10)
    x = model.transform("cat.jpg")          # evaluation preprocessing of one image
    view = model.train_transforms(pil)      # random crop + flip, per image (torchvision v2)
    views = model.train_views(u8, gen)[0]   # the same distribution, batched on uint8 tensors

Like timm's ``create_model(name, num_classes=N)``: the encoder's pooled features go through
one linear layer. A fine-tuned classifier is saved as a zoo folder (the fine-tuned encoder in
``model.safetensors``, so ``zoo.load(DIR)`` gives it) plus ``head.safetensors``; its
``config.json`` adds the class names (``label_names``, as Hugging Face image classifiers
carry them) and a ``zoo_classifier`` record. :func:`create_classifier` loads such a folder
back, head included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from zoo import images as _images
from zoo.encoder import Encoder
from zoo.errors import WeightsError, ZooError
from zoo.registry import ModelEntry, Preprocess

if TYPE_CHECKING:  # zoo.training is imported on use
    from zoo.training.augment import ViewConfig

CLASSIFIER_KEY = "zoo_classifier"
HEAD_NAME = "head.safetensors"
CLASSIFIER_FORMAT = 1


class FinetuneError(ZooError, ValueError):
    """A fine-tuning request that cannot work (data, labels, model); the message says why
    and what to do."""


def train_view(preprocess: Preprocess, *, min_scale: float = 0.25) -> ViewConfig:
    """The fine-tuning augmentation for an encoder's input: random resized crop (scale
    ``min_scale``-1) at the input size + horizontal flip, normalised with the encoder's
    mean and std. No colour jitter: SimCLR's fine-tuning (appendix B.5) uses crop and flip
    only, since the labels, not invariances, are what is being learned now."""
    from zoo.training.augment import ViewConfig

    return ViewConfig(
        size=preprocess.input_size,
        scale=(min_scale, 1.0),
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
    )


class Classifier(nn.Module):
    """``encoder`` (pooled features, N x D) followed by ``head`` (linear, D -> classes).

    Attributes:
        encoder: the :class:`zoo.Encoder` (its ``backbone`` holds the pretrained weights).
        head: ``nn.Linear(encoder.embed_dim, num_classes)``.
        classes: class names, index = output column.
        preprocess: evaluation preprocessing (the encoder's).
        train_transforms: per-image training transform (torchvision v2: PIL / tensor ->
            normalised float (3, S, S)), for a user's own ``DataLoader``.
        train_views: batched version of the same (uint8 (N, 3, H, W) + generator ->
            ``[normalised (N, 3, S, S)]``), what :func:`zoo.finetune` uses.
    """

    def __init__(self, encoder: Encoder, classes: Sequence[str], *, record: dict[str, Any] | None = None):
        super().__init__()
        from zoo.training.augment import BatchedViews, v2_transform

        self.encoder = encoder
        self.classes = [str(c) for c in classes]
        self.head = nn.Linear(encoder.embed_dim, len(self.classes))
        # timm's classifier init: small weights, zero bias, so the first logits are ~uniform.
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        self.preprocess = encoder.preprocess
        view = train_view(self.preprocess)
        self.train_transforms = v2_transform(view)
        self.train_views = BatchedViews([view])
        #: what the folder's ``zoo_classifier`` record says (mode, labels, accuracy, command).
        self.record: dict[str, Any] = dict(record or {})
        self.eval()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def name(self) -> str:
        return self.record.get("name") or f"{self.encoder.name}-classifier"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, num_classes) logits."""
        return self.head(self.encoder(x))

    def transform(self, image: _images.ImageInput) -> torch.Tensor:
        """One image (path, PIL, tensor or array) -> the normalised (3, S, S) input tensor."""
        return self.encoder.transform(image)

    @torch.no_grad()
    def predict_proba(
        self, images: _images.ImageInput | Sequence[_images.ImageInput], *, batch_size: int = 64
    ) -> np.ndarray:
        """Class probabilities (N, num_classes) float32 of images in any everyday form."""
        items = _images.split_inputs(images)
        was_training = self.training
        self.eval()
        out = []
        try:
            for batch in _images.batches(items, self.preprocess, batch_size):
                out.append(torch.softmax(self(batch).float(), 1).numpy())
        finally:
            self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def predict(
        self, images: _images.ImageInput | Sequence[_images.ImageInput], *, top_k: int = 5
    ) -> list[list[tuple[str, float]]]:
        """For each image, its ``top_k`` ``(class, probability)`` pairs, most likely first."""
        return top_classes(self.predict_proba(images), self.classes, top_k)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``head.safetensors`` (see
        :func:`save_classifier`)."""
        return save_classifier(self, directory)


def top_classes(probs: np.ndarray, classes: Sequence[str], top_k: int) -> list[list[tuple[str, float]]]:
    k = max(1, min(top_k, len(classes)))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(classes[j], float(p[j])) for j in row] for p, row in zip(probs, order, strict=True)]


def check_pooled(encoder: nn.Module, input_size: int, source: str) -> int:
    """The feature width of ``encoder``; a clear error when its output is not pooled (N, D)."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            out = encoder(torch.zeros(2, 3, input_size, input_size))
    except Exception as e:  # any failure of a user's module on a plain batch
        raise FinetuneError(
            f"{source}: the encoder fails on a (2, 3, {input_size}, {input_size}) batch ({e})"
        ) from None
    finally:
        encoder.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FinetuneError(
            f"{source}: the model has no pooled features: its output is {shape}, not (N, D). A"
            " classifier head needs one feature vector per image; add global pooling (e.g."
            " nn.AdaptiveAvgPool2d(1) + nn.Flatten()) or use an encoder from zoo.list_models()"
        )
    return int(out.shape[1])


def create_classifier(
    name_or_dir: str | os.PathLike | Encoder,
    num_classes: int | None = None,
    *,
    classes: Sequence[str] | None = None,
    pretrained: bool = True,
) -> Classifier:
    """An encoder + linear head, ready for fine-tuning (or a fine-tuned folder, loaded back).

    Args:
        name_or_dir: anything :func:`zoo.load` accepts, an :class:`Encoder`, or a folder
            written by ``zoo finetune`` (then the saved head and class names are restored).
        num_classes: outputs of the new head (default: ``len(classes)``).
        classes: class names (default: ``"0"`` ... ``"N-1"``).
        pretrained: ``False`` builds the same architecture with random weights (the
            from-scratch baseline).

    Raises:
        FinetuneError: fewer than 2 classes, ``num_classes`` and ``classes`` disagree, or
            the encoder's output is not pooled features.
    """
    import zoo

    if not isinstance(name_or_dir, Encoder):
        folder = Path(os.fspath(name_or_dir)).expanduser()
        if is_classifier_folder(folder):
            model = load_classifier(folder)
            if num_classes is not None and num_classes != model.num_classes:
                raise FinetuneError(
                    f"{folder}: a fine-tuned classifier of {model.num_classes} classes, not {num_classes};"
                    " fine-tune it again (zoo finetune) for another set of classes"
                )
            return model
    if classes is None:
        if num_classes is None:
            raise FinetuneError("give num_classes or classes")
        classes = [str(i) for i in range(num_classes)]
    elif num_classes is not None and num_classes != len(classes):
        raise FinetuneError(f"num_classes={num_classes} but {len(classes)} class names were given")
    if len(classes) < 2:
        raise FinetuneError(
            f"a classifier needs at least 2 classes, got {len(classes)}"
            + (f" ({', '.join(classes)})" if classes else "")
        )
    if isinstance(name_or_dir, Encoder):
        encoder = name_or_dir
        if not pretrained:  # the same architecture, freshly initialised (from torch's RNG)
            from zoo.registry import get_arch

            kwargs = encoder.entry.arch_kwargs if encoder.entry else {}
            backbone = get_arch(encoder.arch).builder(**kwargs)
            encoder = Encoder(backbone, encoder.arch, encoder.preprocess, encoder.entry)
    else:
        encoder = zoo.load(name_or_dir, pretrained=pretrained)
    source = encoder.name
    width = check_pooled(encoder, encoder.preprocess.input_size, source)
    if width != encoder.embed_dim:
        raise FinetuneError(
            f"{source}: the encoder returns {width}-d features but its architecture declares"
            f" {encoder.embed_dim}; was its backbone replaced?"
        )
    return Classifier(encoder, classes)


# ------------------------------------------------------------------------------ the folder


def is_classifier_folder(path: Path) -> bool:
    from zoo.folder import read_config

    if not (path / "config.json").is_file():
        return False
    try:
        config = read_config(path)  # bounded, and "[[[[..." is an error there, not a RecursionError
    except WeightsError:
        return False
    return isinstance(config, dict) and CLASSIFIER_KEY in config


def base_entry(model: Classifier) -> ModelEntry:
    """The encoder's record as a fine-tuned folder carries it: its name, architecture and
    preprocessing, but no weights source or metrics (those described the pretrained file,
    not these weights; the classifier's own results are in the ``zoo_classifier`` record)."""
    import dataclasses

    from zoo.export import folder_entry
    from zoo.registry import Weights

    entry = folder_entry(model.encoder)
    return dataclasses.replace(
        entry,
        name=finetuned_name(entry.name),
        description=f"{entry.name} fine-tuned by zoo finetune on {model.num_classes} classes"
        f" ({', '.join(model.classes[:10])}{' ...' if model.num_classes > 10 else ''}).",
        weights=Weights(sha256="", format="zoo"),
        reported=(),
        measured=(),
    )


def finetuned_name(name: str) -> str:
    """``simclr-r18q-cifar10`` -> ``simclr-r18q-cifar10-ft`` (a ``.tag`` stays last)."""
    base, dot, tag = name.partition(".")
    return f"{base}-ft{dot}{tag}"


def classifier_config(model: Classifier) -> dict[str, Any]:
    """``config.json`` of a classifier folder: the encoder's zoo config with timm's
    ``num_classes`` set, Hugging Face's ``label_names`` and the ``zoo_classifier`` record."""
    from zoo.folder import zoo_config

    config = zoo_config(base_entry(model))
    config["num_classes"] = model.num_classes
    config["pretrained_cfg"]["num_classes"] = model.num_classes
    config["label_names"] = list(model.classes)
    config[CLASSIFIER_KEY] = {"format_version": CLASSIFIER_FORMAT, **model.record, "classes": model.classes}
    return config


def save_classifier(model: Classifier, directory: str | os.PathLike) -> Path:
    """Write ``config.json``, ``model.safetensors`` (the encoder's backbone, keys as in any
    zoo folder) and ``head.safetensors`` (the linear head), each atomically.

    The encoder weights stay where a zoo folder keeps them, so everything that reads a zoo
    folder reads the fine-tuned encoder from this one (``zoo.load(DIR)``, ``zoo serve
    --model DIR``, ``zoo embed --model DIR``); the head is the one file more.
    """
    from safetensors.torch import save

    from zoo.errors import CacheError
    from zoo.folder import WEIGHTS_NAME, atomic_write_bytes, atomic_write_text, save_safetensors

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"cannot create the output folder {directory} ({e.strerror or e})") from None
    backbone = {
        k: v.float() if v.is_floating_point() else v for k, v in model.encoder.backbone.state_dict().items()
    }
    save_safetensors(backbone, directory / WEIGHTS_NAME, base_entry(model))
    head = {k: v.detach().float().contiguous() for k, v in model.head.state_dict().items()}
    meta = {"format": "pt", "classes": json.dumps(model.classes)}
    atomic_write_bytes(directory / HEAD_NAME, save(head, metadata=meta))
    atomic_write_text(directory / "config.json", json.dumps(classifier_config(model), indent=2) + "\n")
    return directory


def load_classifier(directory: str | os.PathLike) -> Classifier:
    """A folder written by :func:`save_classifier` (``zoo finetune``), head included."""
    from zoo.folder import load_state_dict_strict, read_config, read_safetensors
    from zoo.loading import load_folder

    directory = Path(directory)
    config = read_config(directory)
    record = config.get(CLASSIFIER_KEY)
    if not isinstance(record, dict):
        raise WeightsError(
            f"{directory}: an encoder folder with no classifier head; fine-tune it first"
            f" (zoo finetune {directory} --data DIR --out OUT)"
        )
    record = dict(record)
    version = record.pop("format_version", None)
    if version != CLASSIFIER_FORMAT:
        raise WeightsError(f"{directory}: classifier format {version!r} is not supported")
    classes = record.pop("classes", None)
    if not isinstance(classes, list) or len(classes) < 2:
        raise WeightsError(f"{directory}: config.json has no valid class list")
    model = Classifier(load_folder(directory), classes, record=record)
    head, _ = read_safetensors(directory / HEAD_NAME)
    load_state_dict_strict(model.head, head, str(directory / HEAD_NAME))
    return model.eval()


# ------------------------------------------------------------------------------ export and card


def export_onnx_checked(
    model: Classifier, directory: str | os.PathLike, check_images: Sequence[Any]
) -> float:
    """Write ``directory/model.onnx`` (input ``images``, output ``logits``, dynamic batch)
    after ONNX Runtime matched PyTorch's logits on ``check_images`` (as ``zoo export``: max
    abs diff below 1e-4 relative to the largest logit where that is above 1); returns the
    absolute difference.

    Raises:
        ExportError: the export failed or the parity check did not pass (no file written).
    """
    import onnx

    from zoo import onnx as zoo_onnx
    from zoo.errors import ExportError
    from zoo.export import ONNX_TOLERANCE
    from zoo.folder import ONNX_NAME, atomic_write_bytes

    directory = Path(directory)
    batch = next(_images.batches(list(check_images), model.preprocess, len(check_images)))
    tmp = directory / f".{ONNX_NAME}.unchecked"
    try:
        zoo_onnx.export_onnx(model, tmp, (model.preprocess.input_size,) * 2)
        graph = onnx.load(str(tmp))
        old = graph.graph.output[0].name
        for node in graph.graph.node:
            node.output[:] = ["logits" if o == old else o for o in node.output]
        graph.graph.output[0].name = "logits"
        atomic_write_bytes(tmp, graph.SerializeToString())
        diff, scale = zoo_onnx.relative_parity(model, tmp, batch)
        if not np.isfinite(diff) or diff >= ONNX_TOLERANCE:
            raise ExportError(
                f"ONNX Runtime logits differ from PyTorch by {diff:.3g} ({zoo_onnx.parity_how(scale)}) on"
                f" {len(batch)} images, above the tolerance {ONNX_TOLERANCE:g}; model.onnx was not written"
            )
        os.replace(tmp, directory / ONNX_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    return float(diff * scale)


def accuracy_lines(r: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The card's accuracy statement: which split gave which figure and what chose the epoch."""
    chose = bool(settings.get("select_best") and settings.get("eval_every_epochs"))
    kept = f"the weights of epoch {r.get('kept_epoch')} of {r.get('epochs_run')}" + (
        ", stopped early" if r.get("stopped_early") else ""
    )
    val = f"{r.get('val_top1'):.2f}%"
    if r.get("test_top1") is None:
        return [
            f"**Val top-1: {val}** on {r.get('val')}, fp32, centre crops; {kept}"
            + (
                " (the best val epoch: the same split chose the epoch, so this figure is optimistic)."
                if chose
                else " (the last epoch)."
            )
        ]
    return [
        f"**Test top-1: {r['test_top1']:.2f}%** on {r.get('test')}, fp32, centre crops; {kept}"
        + (
            f", chosen on val ({val} on {r.get('val')})."
            if chose
            else f" (the last epoch); val top-1 {val} on {r.get('val')}."
        )
        + " The test split chose nothing: it was scored once, after training."
    ]


def render_classifier_card(
    model: Classifier, *, per_class: dict[str, float | None], confusion: str | None = None
) -> str:
    """README.md of a fine-tuned folder: what it is, how it was trained, its accuracy
    (and how measured), the confusion matrix and the command that reproduces it.

    With a test split (``record["test_top1"]``) the card leads with test top-1 and
    ``per_class`` and ``confusion`` are test's: the val figure chose the kept epoch, so it is
    reported beside it as what it is."""
    import yaml

    from zoo.cards import input_text

    r = model.record
    pre = model.preprocess
    enc = model.encoder
    license_ = enc.entry.license if enc.entry else "unknown"
    s = r.get("settings", {})
    tested = r.get("test_top1") is not None
    split = "test" if tested else "val"
    front = {
        "license": license_,
        "library_name": "zoo",
        "pipeline_tag": "image-classification",
        "tags": ["zoo", "image-classification", "fine-tuned", enc.arch],
        "base_model": r.get("encoder", enc.name),
        "model-index": [
            {
                "name": r.get("name", model.name),
                "results": [
                    {
                        "task": {"type": "image-classification"},
                        "dataset": {"name": Path(r.get("data", "data")).name, "type": "imagefolder"},
                        "metrics": [
                            *(
                                [{"type": "accuracy", "value": r["test_top1"], "name": "test top-1"}]
                                if tested
                                else []
                            ),
                            {"type": "accuracy", "value": r.get("val_top1"), "name": "val top-1"},
                        ],
                    }
                ],
            }
        ],
    }
    init = (
        "pretrained weights" if r.get("pretrained", True) else "random initialisation (from-scratch baseline)"
    )
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {r.get('name', model.name)}",
        "",
        f"`{r.get('encoder', enc.name)}` ({init}) fine-tuned by `zoo finetune` to classify"
        f" {model.num_classes} classes: {', '.join(model.classes[:20])}"
        + (" ..." if model.num_classes > 20 else "")
        + ".",
        "",
        "| | |",
        "|---|---|",
        f"| encoder | `{enc.arch}`, {enc.embed_dim}-d pooled features + linear head"
        f" ({model.num_classes} classes) |",
        f"| mode | {r.get('mode')} (linear: head only; partial: head + last {s.get('partial_blocks')} blocks;"
        " full: everything) |",
        f"| labels | {r.get('train_images')} labelled images of {r.get('pool_images')} ({r.get('labels')}),"
        " listed in `labels.txt` |",
        f"| validation | {r.get('val')} |",
        *([f"| test | {r.get('test')}, scored once after training |"] if tested else []),
        f"| input | {input_text(pre)} |",
        f"| licence | {license_} (the encoder's) |",
        "",
        "## Accuracy",
        "",
        *accuracy_lines(r, s),
        "",
        f"| class | {split} top-1 |",
        "|---|---|",
        *[f"| {c} | {f'– (no {split} image)' if v is None else f'{v:.2f}'} |" for c, v in per_class.items()],
        "",
    ]
    if confusion:
        lines += [f"![confusion matrix on the {split} images]({confusion})", ""]
    lines += [
        "## Training",
        "",
        f"AdamW, head lr {s.get('lr')}, encoder lr x{s.get('encoder_lr_scale')} with layer decay"
        f" {s.get('layer_decay')}, weight decay {s.get('weight_decay')}, warm-up {s.get('warmup_epochs')}"
        f" epoch(s) + cosine, batch {s.get('batch_size')}, {s.get('epochs')} epochs (patience"
        f" {s.get('patience')}), label smoothing {s.get('label_smoothing')}, mixup {s.get('mixup')},"
        f" random resized crop ({s.get('min_scale')}-1) + flip, {s.get('precision')}, seed {s.get('seed')}."
        + (
            " The encoder's features are mirror-averaged (`flip_average`): each step ran it on the"
            " views and on their mirror images (twice the compute), as prediction does."
            if r.get("flip_average")
            else ""
        )
        + " Per-epoch losses and accuracies: `metrics.csv`; every setting: `finetune.json`.",
        "",
    ]
    if r.get("command"):
        lines += ["Reproduce with:", "", "```bash", r["command"], "```", ""]
    diff = r.get("onnx_max_abs_diff")
    lines += [
        "## How to use",
        "",
        "```python",
        "import zoo",
        "",
        'model = zoo.create_classifier("DIR")          # encoder + head, class names in model.classes',
        'model.predict(["photo.jpg"], top_k=3)        # [[(class, probability), ...]]',
        "```",
        "",
        "```bash",
        "zoo predict DIR photo.jpg",
        "```",
        "",
    ]
    if diff is not None:
        lines += [
            "`model.onnx` (input `images`: normalised float32 N x 3 x"
            f" {pre.input_size} x {pre.input_size}; output `logits`) matched PyTorch within"
            f" {diff:.1e} (max abs) on val images before it was written.",
            "",
        ]
    lines += [
        "## Limitations",
        "",
        f"Accuracy is measured on the {split} images named above only; a classifier fine-tuned on few"
        " labels is only as good as those labels' coverage of the classes. The encoder's own card"
        " lists its pretraining data and limits.",
        "",
    ]
    return "\n".join(lines)
