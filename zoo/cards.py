"""Model cards rendered from registry records.

A card is a Hugging Face model README: YAML front matter (licence, ``library_name: zoo``,
tags, datasets, metrics and a ``model-index`` holding every number of the evaluation table),
then the method, how to load the encoder (zoo, torch.hub, timm where the architecture is
timm's, ONNX Runtime), the evaluation table with how each number was obtained, for the
encoders zoo trained the few-labels section (fine-tuned on 1% and 10% of the labels, against the
same architecture trained from scratch on the same labels) and the transfer section (the numbers
on the other dataset), the training budget, limitations and citation. ``model_cards/<name>.md``
are these renders, checked in; a test keeps them equal to the registry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from zoo.errors import ZooError
from zoo.registry import (
    PATH_FIELDS,
    Metric,
    ModelEntry,
    Preprocess,
    RecordError,
    check_relative_path,
    get_arch,
)

#: The repository checkout the package sits in: recipes under training/, figures under model_cards/.
_REPO = Path(__file__).resolve().parents[1]
#: Largest recipe or progress file a card reads: both are a few kilobytes; a record naming a
#: huge file must not make a card render read it all.
_READ_MAX = 1 << 20


class CardError(ZooError, ValueError):
    """A file a card quotes (the training recipe, a progress figure's ``.json``) that a record
    names by an unsafe path, or that is not what its name says."""


def _repo_file(relative: str, field: str) -> Path | None:
    """The checkout's file at ``relative`` when there is one, else None. ``relative`` comes from
    a record and is checked again here: an entry built in code never went through validate_record.

    Raises:
        CardError: the path could leave the checkout (absolute, ``..``) or has the wrong suffix.
    """
    try:
        check_relative_path(relative, f"training.{field}", PATH_FIELDS[field])
    except RecordError as e:
        raise CardError(f"cannot render the card: {e}; fix the record's training.{field}") from None
    path = _REPO / relative
    return path if relative and path.is_file() else None


def _read_text(path: Path, what: str) -> str:
    """The text of a file a card quotes, or a CardError saying why it cannot be."""
    try:
        with open(path, "rb") as f:
            data = f.read(_READ_MAX + 1)
        if len(data) > _READ_MAX:
            raise CardError(
                f"{path}: {what} is over {_READ_MAX:,} bytes; is the record naming the right file?"
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CardError(f"{path}: cannot read {what} ({e}); is the record naming the right file?") from None

METHOD_NOTES = {
    "supervised": (
        "Supervised classification: the network was trained with human labels (cross-entropy"
        " on ImageNet-1k classes) and its classifier removed. zoo keeps such encoders as"
        " baselines that the self-supervised ones are compared with."
    ),
    "simclr": (
        "SimCLR: contrastive learning between two augmented views of each image (random crop, colour"
        " distortion, blur), with a projection MLP and the NT-Xent loss over a large batch; the"
        " other images of the batch are the negatives."
    ),
    "moco-v1": (
        "MoCo: contrastive learning against a queue of 65536 keys produced by a momentum (moving"
        " average) copy of the encoder, so that negatives need not come from the same batch."
    ),
    "moco-v2": (
        "MoCo v2: MoCo with SimCLR's improvements, an MLP projection head, stronger augmentation"
        " (blur) and a cosine learning-rate schedule."
    ),
    "moco-v3": (
        "MoCo v3: contrastive learning between two views with a momentum encoder and a predictor,"
        " negatives from the same (large) batch and no queue; stabilised for Vision Transformers by"
        " freezing the random patch projection."
    ),
    "byol": (
        "BYOL: an online network with a predictor learns to predict a momentum (target) network's"
        " projection of another view of the same image; no negative pairs."
    ),
    "simsiam": (
        "SimSiam: two views through one encoder and a predictor, with a stop-gradient on one"
        " branch; no negatives, no momentum encoder, no large batches."
    ),
    "swav": (
        "SwAV: online clustering; the cluster (prototype) assignment of one view, balanced with"
        " Sinkhorn-Knopp, is predicted from another view, with multi-crop augmentation."
    ),
    "deepcluster-v2": (
        "DeepCluster-v2: k-means pseudo-labels over the whole dataset, predicted by the network"
        " through prototypes, with SwAV's projection head and multi-crop (SwAV paper, appendix)."
    ),
    "sela-v2": (
        "SeLa-v2: self-labelling by optimal transport (balanced pseudo-labels from Sinkhorn-Knopp)"
        " with SwAV's projection head and multi-crop (SwAV paper, appendix)."
    ),
    "dino": (
        "DINO: self-distillation with no labels; a student matches the centred, sharpened output"
        " distribution of a momentum teacher across global and local crops."
    ),
    "barlowtwins": (
        "Barlow Twins: the cross-correlation matrix between the embeddings of two views is pushed"
        " towards the identity, which aligns views and decorrelates feature dimensions."
    ),
    "vicreg": (
        "VICReg: variance, invariance and covariance regularisation of the embeddings of two views,"
        " which prevents collapse without negatives, momentum encoders or predictors."
    ),
    # The seeds' methods (zoo-trained; each card's training section names the recipe, whose
    # comment and method module say what zoo changes from the paper).
    "npid": (
        "Instance discrimination (InstDisc / NPID): every training image is its own class; a memory"
        " bank holds one embedding per image (updated with momentum 0.5) and a non-parametric softmax,"
        " estimated by NCE against 4096 noise images, pulls each image towards its own entry."
    ),
    "deepcluster": (
        "DeepCluster: before each epoch the features of the whole training set are PCA-whitened and"
        " clustered by k-means; the network learns to predict its images' cluster ids with a freshly"
        " initialised classifier, empty clusters reassigned and pseudo-classes sampled uniformly."
    ),
    "sela": (
        "SeLa: self-labelling by optimal transport; pseudo-labels of the whole training set are"
        " re-estimated at a schedule under an equipartition constraint (Sinkhorn-Knopp) and several"
        " classifier heads learn to predict them."
    ),
    "pcl": (
        "Prototypical contrastive learning: MoCo's instance InfoNCE plus ProtoNCE, which contrasts each"
        " image with the k-means prototypes of several granularities, each with its own concentration."
    ),
    "iic": (
        "Invariant information clustering: the mutual information between the cluster assignments of two"
        " views of an image is maximised, with a main head of as many clusters as classes, an"
        " over-clustering head and several sub-heads; the clusterer is itself the output."
    ),
    "cmc": (
        "Contrastive multiview coding: the L and ab channels of an image (Lab colour space) are two views"
        " encoded by two halves of the network, contrasted against memory banks; the encoder is the"
        " concatenation of both halves."
    ),
    "cpc-v2": (
        "Contrastive predictive coding v2: the image is a grid of overlapping patches encoded one by one;"
        " a masked context network predicts the embeddings of patches below from those above, each"
        " against the other patches of the batch (InfoNCE). Trained on patches, the backbone can read an"
        " image as its training grid of patches, features averaged (Kolesnikov et al. 2019; zoo's tag"
        " `.grid7x8`, the default, better frozen features), or as one whole image, a scale it never saw in"
        " training (`.whole`, which fine-tunes better); the architecture row says which this one does."
    ),
    "dim": (
        "Deep InfoMax (local-global): the global feature of an image is contrasted with the local"
        " feature-map positions of the same image and of other images (InfoNCE estimator)."
    ),
    "amdim": (
        "AMDIM: Deep InfoMax across two augmented views and several scales: global and local features"
        " of one view predict the local features of the other (InfoNCE)."
    ),
    "supcon": (
        "Supervised contrastive learning: SupCon's loss pulls together all images of the same *labelled*"
        " class. It uses the labels, so it is zoo's supervised upper bound for the contrastive methods,"
        " not a self-supervised encoder."
    ),
    "crd": (
        "Contrastive representation distillation: a smaller student learns the embedding of a frozen"
        " zoo teacher by contrasting each image's student and teacher embeddings against memory banks"
        " of other images' (NCE, or the softmax over the sampled negatives that zoo's recipe uses),"
        " rather than by regressing the features."
    ),
    "feature-regression": (
        "Feature-regression distillation (FitNets' hint loss): a smaller student regresses a frozen"
        " zoo teacher's features through a linear map; the baseline beside CRD."
    ),
    "rotnet": (
        "RotNet: every image is shown at 0, 90, 180 and 270 degrees and the network classifies the"
        " rotation, which needs knowing where the top of an object is."
    ),
    "relative-patch": (
        "Context prediction (relative patch location): the network sees a centre patch and a neighbour"
        " from the 3x3 grid around it, each on its own, and classifies where the neighbour sits (zoo's"
        " recipe pairs the centre with all 8 neighbours of every image); gaps, jitter and colour dropping"
        " keep low-level shortcuts out."
    ),
    "jigsaw": (
        "Jigsaw puzzles: 3x3 tiles of an image, shuffled by one of a fixed set of permutations (chosen for"
        " a large minimum Hamming distance), go through the network separately; it classifies the"
        " permutation."
    ),
    "colorization": (
        "Colourization: the network sees the L channel of an image and predicts its quantised ab colours"
        " per pixel, with class-rebalancing weights from the training set's colour histogram."
    ),
    "inpainting": (
        "Context-encoder inpainting: a block of the image is removed and a decoder on the network's"
        " feature map reconstructs it (L2 on the removed pixels)."
    ),
    "super-resolution": (
        "Super-resolution as a pretext task: the network sees a downsampled copy of an image and a"
        " decoder reconstructs the full-resolution image."
    ),
    "dcgan": (
        "DCGAN discriminator features: a generator and a discriminator are trained adversarially on the"
        " images; the discriminator's convolutional trunk is the encoder."
    ),
    "mae": (
        "Masked autoencoder: 75% of a ViT's patches are removed and a light decoder reconstructs their"
        " normalised pixels from the visible ones; the encoder without the decoder is what ships."
    ),
}

VERIFICATION_NOTES = {
    "sha256": "checked against its full sha256 `{sha256}` on every read",
    "sha256-prefix": (
        "checked after download against the sha256 prefix `{sha256_prefix}` that upstream publishes;"
        " the full sha256 is pinned on first download"
    ),
    "md5-prefix": (
        "checked after download against the md5 prefix `{md5_prefix}` that upstream publishes;"
        " the full sha256 is pinned on first download"
    ),
    "trust-on-first-use": (
        "upstream publishes no hash: the sha256 of the first download is pinned in the cache"
        " (trust on first use) and every later read is checked against it"
    ),
}

DATASET_NAMES = {
    "imagenet-1k": "ImageNet-1k",
    "imagenette-val": "Imagenette (val split)",
    "cifar10-test": "CIFAR-10 (test split)",
    "cifar10-train": "CIFAR-10 (train split)",
    "imagenette-train": "Imagenette (train split)",
    "cifar10": "CIFAR-10",
    "imagenette": "Imagenette",
}

PROTOCOL_NAMES = {
    "linear": "linear probe top-1",
    "knn": "weighted kNN top-1",
    "knn-k20": "weighted kNN top-1 (k=20, T=0.07)",
    "knn-k200": "weighted kNN top-1 (k=200, T=0.1)",
    "top1": "top-1",
    "nmi": "k-means NMI",
    "finetune-1pct": "fine-tuned top-1, 1% of the labels",
    "finetune-10pct": "fine-tuned top-1, 10% of the labels",
    # Per-block linear probes (python -m zoo.training.pretext.probe NAME DATA --record).
    **{
        f"linear-{b}": f"linear probe top-1, pooled {b} output"
        for b in ("stem", "layer1", "layer2", "layer3", "layer4")
    },
}


def hub_entrypoint(name: str) -> str:
    """The ``hubconf.py`` function name of a registry entry (``swav-r50.ep400`` -> ``swav_r50_ep400``)."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", name)


def _metrics(entry: ModelEntry) -> list[tuple[str, Metric]]:
    """The entry's own numbers. ``scratch-*`` rows are left out: they measure the architecture
    from random initialisation (the baseline of the few-labels section), not these weights."""
    from zoo.leaderboard import SCRATCH

    measured = [("measured", m) for m in entry.measured if not m.protocol.startswith(SCRATCH)]
    return [("reported", m) for m in entry.reported] + measured


def headline_metrics(entry: ModelEntry) -> list[Metric]:
    """The numbers that describe the encoder in one line (hubconf's docstrings): its reported
    and measured numbers, without the random-init baselines and the method's own task."""
    return [m for _, m in _metrics(entry) if _section(entry, m) != "pretext"]


#: Protocol prefix of a method's own task numbers (rotation accuracy, reconstruction error, ...).
TASK = "task-"
#: The heading of a card's own-task section where the task is not a pretext task.
TASK_TITLES = {"iic": "Clustering task"}


def _section(entry: ModelEntry, m: Metric) -> str:
    """Where a number goes in the card: ``few-labels``, ``transfer``, ``pretext`` (the method's
    own task) or the ``evaluation`` table."""
    from zoo.leaderboard import column_of, is_transfer

    if m.protocol.startswith(TASK):
        return "pretext"
    if (column_of(m.protocol) or "").startswith("finetune_"):
        return "few-labels"
    return "transfer" if is_transfer(entry, m.dataset) else "evaluation"


def front_matter(entry: ModelEntry) -> dict[str, Any]:
    """The YAML header as a dict (also what the card test compares with the registry)."""
    arch = get_arch(entry.arch)
    results = []
    for kind, m in _metrics(entry):
        if _section(entry, m) == "pretext":  # not an image-classification result
            continue
        results.append(
            {
                "task": {"type": "image-classification", "name": PROTOCOL_NAMES.get(m.protocol, m.protocol)},
                "dataset": {"name": DATASET_NAMES.get(m.dataset, m.dataset), "type": m.dataset},
                "metrics": [
                    {
                        "type": "nmi" if m.protocol == "nmi" else "accuracy",
                        "value": m.value,
                        "name": f"{PROTOCOL_NAMES.get(m.protocol, m.protocol)} ({kind})",
                    }
                ],
            }
        )
    meta: dict[str, Any] = {
        "license": entry.license,
        "library_name": "zoo",
        "pipeline_tag": "image-feature-extraction",
        "tags": ["zoo", "image-feature-extraction", entry.method, entry.arch]
        + (["timm"] if arch.source == "timm" else []),
        "datasets": [entry.dataset],
    }
    if results:
        meta["metrics"] = sorted({r["metrics"][0]["type"] for r in results})
        meta["model-index"] = [{"name": entry.name, "results": results}]
    return meta


def input_text(pre: Preprocess) -> str:
    """The card's ``input`` row: resize, crop, normalisation and, where set, the mirror average."""
    text = (
        f"{pre.input_size} px: resize shorter side to {pre.resize_size} ({pre.interpolation}),"
        f" centre crop {pre.input_size}, mean {list(pre.mean)}, std {list(pre.std)}"
    )
    if pre.flip_average:
        text += "; features: mean of the image's and its mirror image's (2 forward passes)"
    return text


def _arch_note(arch) -> str:
    """``: <first paragraph of the builder's docstring>`` (what the network is, and for wrappers
    such as a patch-grid read-out how it reads images), or nothing for a builder without one."""
    doc = (arch.builder.__doc__ or "").strip().split("\n\n")[0]
    return f": {' '.join(doc.split())}" if doc else ""


def render_card(entry: ModelEntry) -> str:
    """The full README.md of ``entry``."""
    arch = get_arch(entry.arch)
    pre = entry.preprocess
    fn = hub_entrypoint(entry.name)
    lines = [
        "---",
        yaml.safe_dump(front_matter(entry), sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {entry.name}",
        "",
        entry.description,
        "",
        "| | |",
        "|---|---|",
        f"| method | {entry.method} |",
        f"| architecture | `{entry.arch}` ({arch.source}), {arch.embed_dim}-d pooled features,"
        f" no classifier{_arch_note(arch)} |",
        f"| pretraining data | {DATASET_NAMES.get(entry.dataset, entry.dataset)} |",
        f"| input | {input_text(pre)} |",
        f"| licence | {entry.license} |",
        f"| paper | {entry.paper} |",
        _weights_row(entry),
        "",
        "## Method",
        "",
        METHOD_NOTES.get(entry.method, f"Pretrained with {entry.method}."),
        "",
        "## How to use",
        "",
        "```python",
        "import zoo",
        "",
        f'encoder = zoo.load("{entry.name}")          # eval mode, carries its preprocessing',
        'features = encoder.embed(["cat.jpg", "dog.png"])  # float32 array (2, ' + f"{arch.embed_dim})",
        "```",
        "",
        "With torch.hub, from a checkout of zoo:",
        "",
        "```python",
        "import torch",
        "",
        f'encoder = torch.hub.load("path/to/zoo", "{fn}", source="local")',
        "```",
        "",
    ]
    export = f"`zoo export {entry.name} --out DIR`"
    if arch.timm_name:
        lines += [
            f"With timm, from an exported folder ({export}):",
            "",
            "```python",
            "import timm",
            "",
            f'model = timm.create_model("{arch.timm_name}", pretrained=True, num_classes=0,',
            '                          pretrained_cfg_overlay=dict(file="DIR/model.safetensors"))',
            "```",
            "",
            *(
                [
                    "timm's model gives the plain features; this encoder's are the mean of"
                    " `model(x)` and `model(x.flip(-1))`.",
                    "",
                ]
                if pre.flip_average
                else []
            ),
        ]
    mean, std = (", ".join(f"{v:g}" for v in values) for values in (pre.mean, pre.std))
    lines += [
        f"With ONNX Runtime, from an exported folder ({export} writes `DIR/model.onnx`). Input"
        f" `images`: float32 N x 3 x {pre.input_size} x {pre.input_size}: each image scaled to [0, 1],"
        f" its shorter side resized to {pre.resize_size} ({pre.interpolation}), centre-cropped to"
        f" {pre.input_size} and normalised with mean ({mean}) and std ({std}), which is what"
        " `encoder.transform` does; output `features`"
        + (
            " (the graph runs the encoder on the batch and on its mirror image and averages the two):"
            if pre.flip_average
            else ":"
        ),
        "",
        "```python",
        "import numpy as np",
        "import onnxruntime as ort",
        "",
        'batch = np.stack([encoder.transform(p).numpy() for p in ["cat.jpg", "dog.png"]])',
        'session = ort.InferenceSession("DIR/model.onnx")',
        'features = session.run(["features"], {"images": batch})[0]',
        "```",
        "",
        "## Evaluation",
        "",
    ]
    metrics = [(kind, m) for kind, m in _metrics(entry) if _section(entry, m) == "evaluation"]
    if metrics:
        lines += [
            "| dataset | protocol | value | how it was measured | source |",
            "|---|---|---|---|---|",
        ]
        for kind, m in metrics:
            lines.append(
                f"| {DATASET_NAMES.get(m.dataset, m.dataset)} | {PROTOCOL_NAMES.get(m.protocol, m.protocol)}"
                f" | {m.value:.2f} | {m.how} | {kind}: {_source(m.source)} |"
            )
        lines += _random_init_lines(entry, [m for _, m in metrics])
    else:
        lines.append("No evaluation has been recorded for this encoder yet.")
    lines += _pretext_section(entry) + _few_labels_section(entry) + _transfer_section(entry)
    if entry.training is not None:
        lines += ["", *_training_section(entry)]
    lines += ["", "## Limitations", "", entry.limitations or "Not documented yet.", ""]
    if entry.citation:
        lines += ["## Citation", "", "```bibtex", entry.citation, "```", ""]
    return "\n".join(lines)


def _random_init_lines(entry: ModelEntry, metrics: list[Metric]) -> list[str]:
    """The evaluation beside the same network with random weights (the leaderboard's random-init
    row of this architecture, input size and data), so a reader sees what pretraining bought; nothing
    when the leaderboard has no such row (upstream encoders, or one read at another size)."""
    from zoo.leaderboard import BASELINES
    from zoo.registry import model_info

    def network(e: ModelEntry) -> tuple:
        return (e.arch, repr(e.arch_kwargs), e.preprocess)

    baseline = next((b for b in BASELINES if network(model_info(b.like)) == network(entry)), None)
    if baseline is None:
        return []
    floor = {(f.dataset, f.protocol): f for f in baseline.metrics()}
    pairs = [(m, floor[m.dataset, m.protocol]) for m in metrics if (m.dataset, m.protocol) in floor]
    if not pairs:
        return []
    lines = [
        "",
        "Beside it, the same network with random weights (built after `torch.manual_seed(0)`; the"
        " leaderboard's random-init row), measured the same way: what the pretraining bought.",
        "",
        "| dataset | protocol | this encoder | random init | difference | random init, reproduced by |",
        "|---|---|---|---|---|---|",
    ]
    like = f"zoo eval {baseline.like} "  # the same network: this entry's name gives the same number
    for m, f in pairs:
        lines.append(
            f"| {DATASET_NAMES.get(m.dataset, m.dataset)} | {PROTOCOL_NAMES.get(m.protocol, m.protocol)}"
            f" | {m.value:.2f} | {f.value:.2f} | {m.value - f.value:+.2f}"
            f" | {_source(f.source.replace(like, f'zoo eval {entry.name} ', 1))} |"
        )
    return lines


def _few_labels_section(entry: ModelEntry) -> list[str]:
    """Fine-tuned on a few labels, beside the same architecture trained from scratch on the same
    labels: what the self-supervised pretraining is worth when labels are scarce."""
    from zoo.leaderboard import COLUMNS, column_of, scratch_metrics
    from zoo.registry import iter_models

    tuned = [m for kind, m in _metrics(entry) if kind == "measured" and _section(entry, m) == "few-labels"]
    if not tuned:
        return []
    order = [c.key for c in COLUMNS]
    tuned.sort(key=lambda m: order.index(column_of(m.protocol) or order[-1]))  # 1% before 10%
    lines = [
        "",
        "## Few labels",
        "",
        "The semi-supervised protocol: the whole network fine-tuned on a class-balanced share of the"
        " training labels, top-1 on the test split; beside it the same architecture trained from random"
        " initialisation on the same labelled images with the same recipe, so that only the"
        " initialisation differs.",
        "",
        "| dataset | labels | initialisation | top-1 | how it was measured | command |",
        "|---|---|---|---|---|---|",
    ]
    missing: dict[str, list[str]] = {}
    for data in dict.fromkeys(m.dataset for m in tuned):
        # This record's own rows first (it may not be the registry's, e.g. before it is registered).
        others = (e for e in iter_models() if e.name != entry.name)
        # The baseline must read the same input size: a 48 px fine-tune beside a 32 px scratch
        # run would differ in more than the initialisation.
        size = entry.preprocess.input_size
        scratch = scratch_metrics(entry.arch, data, [entry, *others], size)
        where = DATASET_NAMES.get(data, data)
        for m in (m for m in tuned if m.dataset == data):
            share = PROTOCOL_NAMES.get(m.protocol, m.protocol).split(", ")[-1].removesuffix(" of the labels")
            lines.append(
                f"| {where} | {share} | this encoder | {m.value:.2f} | {m.how} | {_source(m.source)} |"
            )
            b = scratch.get(column_of(m.protocol) or "")
            if b is not None:
                scratch_cells = f"{b.value:.2f} | {b.how} | {_source(b.source)}"
                lines.append(f"| {where} | {share} | random (from scratch) | {scratch_cells} |")
            else:
                missing.setdefault(where, []).append(share)
    if missing:
        which = "; ".join(f"{where}, {' and '.join(shares)}" for where, shares in missing.items())
        lines += [
            "",
            f"No from-scratch baseline at {entry.preprocess.input_size} px is recorded yet ({which}):"
            " add `--from-scratch --record` to the commands above to measure it.",
        ]
    return lines


def _pretext_section(entry: ModelEntry) -> list[str]:
    """How well the method learned its own task (a pretext method's accuracy or reconstruction
    error), beside the downstream numbers above: a task solved well with features that transfer
    badly is the pretext-task failure mode the literature warns about."""
    task = [m for kind, m in _metrics(entry) if kind == "measured" and _section(entry, m) == "pretext"]
    if not task:
        return []
    lines = [
        "",
        f"## {TASK_TITLES.get(entry.method, 'Pretext task')}",
        "",
        "| measure | value | how it was measured | command |",
        "|---|---|---|---|",
    ]
    for m in task:
        what = m.protocol.removeprefix(TASK).replace("-", " ")
        lines.append(f"| {what} | {m.value:.4g} | {m.how} | {_source(m.source)} |")
    return lines


def _transfer_section(entry: ModelEntry) -> list[str]:
    """The frozen-feature numbers on another dataset than the one zoo trained the encoder on."""
    moved = [m for kind, m in _metrics(entry) if kind == "measured" and _section(entry, m) == "transfer"]
    if not moved:
        return []
    home = DATASET_NAMES.get(entry.dataset, entry.dataset)
    lines = [
        "",
        "## Transfer",
        "",
        f"How far the features travel: the encoder, trained on {home} only, evaluated frozen on another"
        f" dataset, each image through its own preprocessing (to {entry.preprocess.input_size} px).",
        "",
        "| dataset | protocol | value | how it was measured | command |",
        "|---|---|---|---|---|",
    ]
    for m in moved:
        lines.append(
            f"| {DATASET_NAMES.get(m.dataset, m.dataset)} | {PROTOCOL_NAMES.get(m.protocol, m.protocol)}"
            f" | {m.value:.2f} | {m.how} | {_source(m.source)} |"
        )
    return lines


def _training_section(entry: ModelEntry) -> list[str]:
    """How zoo trained the encoder: budget, the command that reproduces it, the curves."""
    t = entry.training
    assert t is not None
    # A run whose train.epochs changed on resume is retraced by one command per stretch (joined by
    # `&&` in the record): shown one per line, in order.
    commands = t.command.split(" && ") if " --resume" in t.command else [t.command]
    how = "Reproduce the weights with:"
    if len(commands) > 1:
        how = (
            "Its `train.epochs` changed on resume, and the schedules (learning rate, momentum) with it;"
            " reproduce the weights with these commands, one after the other:"
        )
    lines = [
        "## Training",
        "",
        f"Trained by zoo from random initialisation with the recipe `{t.recipe}`: {t.epochs} epochs"
        f" ({t.steps:,} steps of batch {t.batch_size}) in {t.minutes:.0f} minutes on {t.hardware}. {how}",
        "",
        "```bash",
        *commands,
        "```",
        "",
        *_read_at_another_size(entry),
        *_recipe_notes(t.recipe),
    ]
    if t.curves:
        lines += [
            f"![training loss and online kNN monitor]({t.curves})",
            "",
            "Training loss per step and the online kNN monitor of the run (the per-step values are in"
            f" `{t.curves.rsplit('.', 1)[0]}.metrics.csv` and `.knn.csv` beside the plot).",
        ]
    if t.progress:
        lines += ["", *_progress_section(t.progress)]
    return lines


def _progress_section(figure: str) -> list[str]:
    """A long run's cost and curve: CPU-hours and kNN against them beside the published reference,
    from the figure's ``.json`` (``python -m zoo.training.progress RUN --out F.png --json F.json``)
    in ``model_cards/``. Only the figure where the file is not beside the package."""
    lines = ["### Compute", ""]
    _repo_file(figure, "progress")  # checked before anything is joined to it
    path = _REPO / "model_cards" / PurePosixPath(figure).with_suffix(".json")
    if path.is_file():
        try:
            progress = json.loads(_read_text(path, "the progress figure's data"))
            last, ref = progress["points"][-1], progress["reference"]
            ref_epoch, ref_top1 = ref["points"][-1]
            ref_cost = (
                f" in {ref_epoch * ref['hours_per_epoch']:.1f} hours of {ref['device']}"
                if ref.get("hours_per_epoch")
                else ""
            )
            # Formatted here, inside the try: a wrong type shows as a TypeError or ValueError.
            summary = (
                f"{last['cpu_hours']:.1f} CPU-hours to epoch {last['epoch']} (process CPU time of all its"
                " threads, summed over the run's logged steps: waiting for a busy machine is not counted,"
                f" resumed sessions add up). The online kNN monitor (k={last['k']},"
                f" T={last['temperature']:g}, {last['train_images']:,} train images) read"
                f" {last['top1']:.2f} there; the reference, {ref['label']}, reads {ref_top1:.2f} at epoch"
                f" {ref_epoch}{ref_cost} ({ref['source']})."
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as e:
            raise CardError(
                f"{path}: not a progress figure's data as `python -m zoo.training.progress --json`"
                f" writes it ({type(e).__name__}: {e}); write it again with that command"
            ) from None
        lines += [summary, ""]
    lines.append(f"![online kNN against epochs and against CPU-hours, next to the reference]({figure})")
    return lines


def _read_at_another_size(entry: ModelEntry) -> list[str]:
    """Where the shipped encoder reads images at another size than its recipe trained on (a
    test resolution chosen after training), how that size was chosen and how to ship a run so."""
    t = entry.training
    assert t is not None
    path = _repo_file(t.recipe, "recipe")
    if path is None:
        return []
    try:
        recipe = yaml.safe_load(_read_text(path, "the training recipe")) or {}
    except (yaml.YAMLError, RecursionError) as e:
        raise CardError(f"{path}: the training recipe is not valid YAML ({e})") from None
    augment = recipe.get("augment") if isinstance(recipe, dict) else None
    if not isinstance(recipe, dict) or not isinstance(augment or {}, dict):
        raise CardError(
            f"{path}: not a training recipe (a YAML mapping with an 'augment' mapping);"
            " is the record's training.recipe naming the right file?"
        )
    trained = (augment or {}).get("size")
    override = re.search(r"(?:^|\s)augment\.size=(\d+)", t.command)
    trained = int(override.group(1)) if override else trained
    size = entry.preprocess.input_size
    flip = entry.preprocess.flip_average
    if (not isinstance(trained, int) or trained == size) and not flip:
        return []
    # Where `zoo train` writes the run: the recipe's run.out_dir (a flagship's own folder), else
    # the trainer's default.
    settings = recipe.get("run")
    out_dir = settings.get("out_dir") if isinstance(settings, dict) else None
    run = (out_dir if isinstance(out_dir, str) and out_dir else "runs/{name}").replace(
        "{name}", str(recipe.get("name", path.stem))
    )
    test_size = f"{entry.preprocess.resize_size}/{size}" + ("+flip" if flip else "")
    if not isinstance(trained, int) or trained == size:
        read = (
            "The shipped encoder averages the features of each image and of its mirror image, a choice"
            " made after training on held-out training images"
        )
        how = "read so"
    else:
        read = (
            f"The recipe trains on {trained} px views; the shipped encoder reads images at {size} px"
            + (", features averaged with the mirror image's" if flip else "")
            + ", the test resolution chosen after training on held-out training images"
        )
        how = "read at that size"
    return [
        f"{read} (`python -m zoo.training.test_resolution {run}/export --data DATA --candidates ...`;"
        f" training/README.md gives the figures). To ship a run {how}, as this file was:",
        "",
        "```bash",
        f"python -m zoo.training.ship {run} --name {entry.name} --test-size {test_size}",
        "```",
        "",
    ]


def _recipe_notes(recipe: str) -> list[str]:
    """The recipe file's header comment, quoted: what it sets and what it changes from the paper
    (each recipe says so there). Empty where the file is not beside the package (an install
    without the repository's ``training/`` folder)."""
    path = _repo_file(recipe, "recipe")
    if path is None:
        return []
    notes = []
    for line in _read_text(path, "the training recipe").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text and not text.startswith("Run:"):  # the command is in the block above
            notes.append(text)
    if not notes:
        return []
    return [
        "The recipe's notes (its header comment; settings and changes from the paper):",
        "",
        "> " + " ".join(notes),
        "",
    ]


def _weights_row(entry: ModelEntry) -> str:
    """The card's weights row: where the file comes from and how it is verified."""
    w = entry.weights
    where = w.origin_url or w.url
    if w.verification == "sha256":
        # Kept as it was for entries with a full hash (the bundled default's card).
        return (
            f"| weights | sha256 `{w.sha256}` ({w.format} format)"
            + (f", from {where}" if where else "")
            + " |"
        )
    files = ", ".join(f"<{u}>" for u in (w.url, *w.companion_urls) if u)
    check = VERIFICATION_NOTES[w.verification].format(**vars(w))
    return f"| weights | {w.format} format, downloaded from {files} and converted strictly; {check} |"


def _source(source: str) -> str:
    return source if source.startswith("http") else f"`{source}`"


def render_plain_card(arch: str) -> str:
    """The README of a folder holding weights that no registry entry describes."""
    return (
        "---\nlibrary_name: zoo\npipeline_tag: image-feature-extraction\n"
        f"tags:\n- zoo\n- {arch}\n---\n\n# {arch}\n\n"
        f"An encoder of architecture `{arch}` saved by zoo. No registry record describes how it"
        " was trained, so this card has no evaluation; load it with `zoo.load(DIR)`.\n"
    )
