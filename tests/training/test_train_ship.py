"""Shipping a finished run: fp16 weights measured like ``zoo eval``, curves beside the cards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from _train_recipes import tiny_recipe
from zoo.training.loop import Trainer
from zoo.training.recipe import recipe_from_dict
from zoo.training.ship import measure, recipe_of, run_minutes, ship

import zoo
from zoo.evaluate import evaluate
from zoo.folder import read_safetensors


def test_run_minutes_spans_the_log_to_the_last_step_across_midnight(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[23:50:00] byol-r18q-cifar10: byol on resnet18_cifar_quarter\n"
        "a warning without a time\n"
        "[23:55:30] epoch 0 step 20/40 loss 4.1\n"
        "[00:10:00] epoch 1 step 40/40 loss 3.9\n"
        "[00:12:00] exported runs/x/export: knn 40.00\n"
    )
    assert run_minutes(log) == 20.0


def test_recipe_of_a_command() -> None:
    assert (
        recipe_of("zoo train simclr_r18q_cifar10 train.epochs=8")
        == "training/recipes/simclr_r18q_cifar10.yaml"
    )
    assert recipe_of("zoo train my/recipe.yaml") == "my/recipe.yaml"


def test_a_shipped_run_records_the_numbers_of_the_file_it_ships(
    tmp_path: Path, cifar_root: Path, tiny_dataset: Path
) -> None:
    run = tmp_path / "run"
    recipe = recipe_from_dict(tiny_recipe(run, cifar_root, "simclr", run__export=True))
    Trainer(recipe, command=f"zoo train simclr_r18q_cifar10 run.out_dir={run} train.epochs=2").fit()
    (tmp_path / "run.log").write_text("[10:00:00] start\n[10:03:00] epoch 1 step 30/30 loss 3.0\n")
    data = tiny_dataset

    summary = ship(
        run,
        "simclr-r18q-tiny",
        data=str(data),
        weights_dir=tmp_path / "weights",
        cards_dir=tmp_path / "cards",
    )

    weights = tmp_path / "weights" / "simclr-r18q-tiny.safetensors"
    assert summary["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert summary["training"]["command"] == "zoo train simclr_r18q_cifar10 train.epochs=2"
    assert summary["training"]["recipe"] == "training/recipes/simclr_r18q_cifar10.yaml"
    assert summary["training"]["minutes"] == 3.0
    assert summary["training"]["steps"] > 0
    assert set(summary["measured"]) == {"knn-k20", "knn-k200", "linear", "nmi"}
    tensors, _ = read_safetensors(weights)
    dtype = torch.float16 if summary["precision"] == "fp16" else torch.float32
    assert tensors["conv1.weight"].dtype == dtype
    assert summary["precision"] == "fp16" or summary["fp16_max_change"] > 0.2
    assert (tmp_path / "cards" / "curves" / "simclr-r18q-tiny.metrics.csv").is_file()

    # Loading the shipped file (header record + fp16 values in fp32 modules) gives back the
    # numbers the summary records, as `zoo eval` would measure them.
    shipped = zoo.load(weights)
    assert shipped.entry.name == "simclr-r18q-tiny" and shipped.entry.method == "simclr"
    assert next(shipped.backbone.parameters()).dtype == torch.float32
    again = measure(shipped, str(data), "test")
    assert {k: v["value"] for k, v in again.items()} == {
        k: v["value"] for k, v in summary["measured"].items()
    }
    knn = evaluate(shipped, data, k=20, temperature=0.07)
    assert knn["top1"] == pytest.approx(summary["measured"]["knn-k20"]["value"])
