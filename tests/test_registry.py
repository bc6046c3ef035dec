"""The registry: schema of every entry, lookups, suggestions, and every architecture's shape."""

from __future__ import annotations

import re

import pytest
import torch

import zoo
from zoo import registry
from zoo.cards import METHOD_NOTES
from zoo.registry import Metric, ModelEntry, Preprocess, Training, Weights

NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+(\.[a-z0-9_]+)?$")
# Every method an entry names has its paragraph in the cards (zoo.cards.METHOD_NOTES).
KNOWN_METHODS = set(METHOD_NOTES)
KNOWN_PROTOCOLS = {"linear", "knn", "knn-k20", "knn-k200", "top1", "nmi"} | {
    f"{kind}-{pct}pct" for kind in ("finetune", "scratch-finetune") for pct in (1, 10)
}
# A pretext method's own task (task-rotation-acc ...) and the per-block linear probes.
KNOWN_PROTOCOL_FAMILIES = re.compile(r"^(task-[a-z0-9-]+|linear-(stem|layer[1-4]))$")


@pytest.mark.parametrize("name", zoo.list_models())
def test_entry_schema(name: str) -> None:
    """torchvision-style metadata check: every published entry is complete and consistent."""
    e = zoo.model_info(name)
    assert NAME.match(e.name), "names are <method>-<arch>[-<dataset>][.tag] in lower case"
    assert e.name.startswith(e.method + "-")
    assert e.method in KNOWN_METHODS
    assert e.arch in zoo.list_archs()
    w = e.weights
    assert w.has_source
    if w.file or w.hf_hub_id:
        assert re.fullmatch(r"[0-9a-f]{64}", w.sha256), "package and Hub weights carry their full sha256"
    else:
        # Upstream files: the true https URL, verified by the strongest hash upstream publishes
        # (full sha256, a sha256 or md5 prefix) or else pinned on first download.
        assert w.url and w.url.startswith("https://")
        assert all(u.startswith("https://") for u in w.companion_urls)
        assert w.verification in ("sha256", "sha256-prefix", "md5-prefix", "trust-on-first-use")
        if w.sha256_prefix:  # torchvision-style: the prefix is part of the published file name
            assert f"-{w.sha256_prefix}." in w.url.rsplit("/", 1)[-1]
    assert e.license and e.paper.startswith("http") and e.description and e.limitations
    assert e.weights.format == "zoo" or e.weights.format in __import__("zoo.convert").convert.list_formats()
    for m in e.reported + e.measured:
        assert m.protocol in KNOWN_PROTOCOLS or KNOWN_PROTOCOL_FAMILIES.match(m.protocol), m.protocol
        assert 0 <= m.value <= 100
        assert m.how and m.source, "every number says how it was measured and where it comes from"
    for m in e.measured:
        assert m.source.startswith("zoo ") or m.source.startswith("python "), (
            "measured numbers give a command"
        )


def test_list_models_filters() -> None:
    assert zoo.DEFAULT_MODEL in zoo.list_models()
    assert zoo.list_models("supervised-*") == [n for n in zoo.list_models() if n.startswith("supervised-")]
    assert zoo.list_models("no-such-*") == []


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(zoo.UnknownModelError, match="Did you mean: supervised-efficientnet-lite0"):
        zoo.model_info("supervised-efficientnet-lite")
    with pytest.raises(zoo.UnknownModelError, match="zoo list"):
        zoo.load("definitely-not-a-model")


def test_unknown_arch_suggests() -> None:
    with pytest.raises(zoo.UnknownModelError, match="resnet50"):
        zoo.create_model("resnet5")


def _entry(name: str, **kw) -> ModelEntry:
    base = dict(
        name=name,
        arch="resnet18",
        method="simclr",
        license="mit",
        paper="https://x",
        description="d",
        weights=Weights(sha256="0" * 64, url="http://127.0.0.1/x.safetensors"),
    )
    return ModelEntry(**{**base, **kw})


def test_register_rejects_duplicates_and_bad_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_DEFAULT_TAGS", dict(registry._DEFAULT_TAGS))
    monkeypatch.setattr(registry, "_EXPLICIT_DEFAULTS", set(registry._EXPLICIT_DEFAULTS))
    registry.register_model(_entry("simclr-r18-test.ep100"))
    registry.register_model(_entry("simclr-r18-test.ep200"), default=True)
    assert registry.resolve_name("simclr-r18-test") == "simclr-r18-test.ep200"
    with pytest.raises(ValueError, match="two default tags"):
        registry.register_model(_entry("simclr-r18-test.ep300"), default=True)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model(_entry("simclr-r18-test.ep100"))
    with pytest.raises(ValueError, match="unregistered architecture"):
        registry.register_model(_entry("simclr-x-test", arch="nope"))
    with pytest.raises(ValueError, match="lower case"):
        _entry("SimCLR_R18")
    with pytest.raises(ValueError, match="sha256"):
        Weights(sha256="abc", url="http://x")
    with pytest.raises(ValueError, match="resize_size"):
        Preprocess(input_size=224, resize_size=200)


def test_entry_round_trips_through_dict() -> None:
    e = _entry("simclr-r18-test", reported=(Metric("imagenet-1k", "linear", 69.1, "how", "src"),))
    assert ModelEntry.from_dict(e.to_dict()) == e
    trained = _entry(
        "simclr-r18-test",
        training=Training(
            "training/recipes/x.yaml", "zoo train x", 8, 1560, 256, "1 CPU core", 19.5, "c.png"
        ),
    )
    assert ModelEntry.from_dict(trained.to_dict()) == trained


@pytest.mark.parametrize("arch", zoo.list_archs())
def test_arch_outputs_pooled_features(arch: str) -> None:
    """Each backbone maps images to (N, embed_dim) with no classifier head."""
    enc = zoo.create_model(arch)
    size = enc.preprocess.input_size
    with torch.inference_mode():
        out = enc(torch.randn(2, 3, size, size))
    assert out.shape == (2, enc.embed_dim)
    keys = enc.backbone.state_dict().keys()
    assert not any(k.startswith(("fc.", "head.", "classifier.")) for k in keys)


def test_cifar_stem() -> None:
    enc = zoo.create_model("resnet18_cifar")
    assert enc.backbone.conv1.kernel_size == (3, 3) and enc.backbone.conv1.stride == (1, 1)
    assert isinstance(enc.backbone.maxpool, torch.nn.Identity)
    assert enc.preprocess.input_size == 32
