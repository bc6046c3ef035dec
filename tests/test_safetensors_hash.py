"""Saving the same weights twice gives the same bytes: a registry sha256 or a pushed file's hash
must not depend on the order a hash map happened to keep the header metadata in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

import zoo
from zoo.folder import read_safetensors, save_safetensors


def test_saves_of_the_same_weights_are_byte_identical_and_load_back(tmp_path: Path) -> None:
    entry = zoo.model_info("simclr-r18q-cifar10")
    state = zoo.create_model(entry.arch).backbone.state_dict()
    digests = {
        hashlib.sha256(save_safetensors(state, tmp_path / f"{i}.safetensors", entry).read_bytes()).hexdigest()
        for i in range(20)
    }
    assert len(digests) == 1
    tensors, metadata = read_safetensors(tmp_path / "0.safetensors")
    assert tensors.keys() == state.keys()
    assert all(torch.equal(tensors[k], state[k]) for k in state)
    assert zoo.load(tmp_path / "0.safetensors").entry.arch == entry.arch
    assert '"zoo"' in (tmp_path / "0.safetensors").read_bytes()[:4096].decode("utf-8", "replace")
    assert set(metadata) == {"format", "zoo"}
