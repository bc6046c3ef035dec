"""Model cards rendered from registry records.

A card is a Hugging Face model README: YAML front matter (licence, ``library_name: zoo``,
tags, datasets, metrics and a ``model-index`` holding every number of the evaluation table),
then the method, how to load the encoder (zoo, torch.hub, timm where the architecture is
timm's, ONNX Runtime), the evaluation table with how each number was obtained,
limitations and citation. ``model_cards/<name>.md`` are these renders, checked in; a test
keeps them equal to the registry.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from zoo.registry import Metric, ModelEntry, get_arch

METHOD_NOTES = {
    "supervised": (
        "Supervised classification: the network was trained with human labels (cross-entropy"
        " on ImageNet-1k classes) and its classifier removed. zoo keeps such encoders as"
        " baselines that the self-supervised ones are compared with."
    ),
}

DATASET_NAMES = {
    "imagenet-1k": "ImageNet-1k",
    "imagenette-val": "Imagenette (val split)",
    "cifar10-test": "CIFAR-10 (test split)",
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
}


def hub_entrypoint(name: str) -> str:
    """The ``hubconf.py`` function name of a registry entry (``swav-r50.ep400`` -> ``swav_r50_ep400``)."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", name)


def _metrics(entry: ModelEntry) -> list[tuple[str, Metric]]:
    return [("reported", m) for m in entry.reported] + [("measured", m) for m in entry.measured]


def front_matter(entry: ModelEntry) -> dict[str, Any]:
    """The YAML header as a dict (also what the card test compares with the registry)."""
    arch = get_arch(entry.arch)
    results = []
    for kind, m in _metrics(entry):
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
        " no classifier |",
        f"| pretraining data | {DATASET_NAMES.get(entry.dataset, entry.dataset)} |",
        f"| input | {pre.input_size} px: resize shorter side to {pre.resize_size} ({pre.interpolation}),"
        f" centre crop {pre.input_size}, mean {list(pre.mean)}, std {list(pre.std)} |",
        f"| licence | {entry.license} |",
        f"| paper | {entry.paper} |",
        f"| weights | sha256 `{entry.weights.sha256}` ({entry.weights.format} format)"
        + (
            f", from {entry.weights.origin_url or entry.weights.url}"
            if (entry.weights.origin_url or entry.weights.url)
            else ""
        )
        + " |",
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
        "With torch.hub, from a checkout of zoo (or `github_owner/zoo` once published):",
        "",
        "```python",
        f'encoder = torch.hub.load("path/to/zoo", "{fn}", source="local")',
        "```",
        "",
    ]
    if arch.timm_name:
        lines += [
            "With timm, from an exported folder (`zoo export " + entry.name + " --out DIR`):",
            "",
            "```python",
            "import timm",
            "",
            f'model = timm.create_model("{arch.timm_name}", pretrained=True, num_classes=0,',
            '                          pretrained_cfg_overlay=dict(file="DIR/model.safetensors"))',
            "```",
            "",
        ]
    lines += [
        "With ONNX Runtime, from the same exported folder (input `images`: normalised float32"
        f" N x 3 x {pre.input_size} x {pre.input_size}; output `features`):",
        "",
        "```python",
        "import onnxruntime as ort",
        "",
        'session = ort.InferenceSession("DIR/model.onnx")',
        'features = session.run(["features"], {"images": batch})[0]',
        "```",
        "",
        "## Evaluation",
        "",
    ]
    metrics = _metrics(entry)
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
    else:
        lines.append("No evaluation has been recorded for this encoder yet.")
    lines += ["", "## Limitations", "", entry.limitations or "Not documented yet.", ""]
    if entry.citation:
        lines += ["## Citation", "", "```bibtex", entry.citation, "```", ""]
    return "\n".join(lines)


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
