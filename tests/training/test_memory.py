"""zoo.training.memory: glibc keeps a CPU step's freed activations for the next step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _train_recipes import tiny_recipe
from zoo.training import memory
from zoo.training.loop import Trainer
from zoo.training.recipe import recipe_from_dict


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_thresholds() -> None:
    assert memory.keep_freed_memory() is True


def test_a_cpu_run_keeps_freed_memory(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(1) or True)
    Trainer(recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, train__max_steps=1))).fit()
    assert calls == [1]
