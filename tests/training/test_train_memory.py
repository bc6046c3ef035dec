"""zoo.memory in training: a CPU run keeps a step's freed activations for the next step."""

from __future__ import annotations

from pathlib import Path

import pytest
from _train_recipes import tiny_recipe
from zoo.training.loop import Trainer
from zoo.training.recipe import recipe_from_dict

from zoo import memory


def test_a_cpu_run_keeps_freed_memory(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    Trainer(recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, train__max_steps=1))).fit()
    assert calls == [1]
