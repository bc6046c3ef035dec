"""benchmarks/budget.py: zoo's side on a few seconds of real CIFAR-10 images (the overrides that
tune it for the budget reach the recipe it trains, and its cosine is fitted to the steps that
fit), and lightly's side charging its set-up to its budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from zoo.training.loop import read_csv

ROOT = Path(__file__).resolve().parents[1]
# A small, uncompiled run: 200 images, 5 steps per epoch.
SMALL = ["data.limit_per_class=20", "train.batch_size=40", "train.compile=false"]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("budget", ROOT / "benchmarks" / "budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_side_trains_the_tuned_recipe_for_the_seconds_given(data_root: Path, tmp_path: Path) -> None:
    # data_root: the real data beside the repository, where budget.py reads CIFAR-10.
    budget = _load_benchmark()
    overrides = [*budget.BUDGET_OVERRIDES, *SMALL]
    run = budget.zoo_side("simclr_r18q_cifar10", 8.0, 1, tmp_path, overrides)

    assert run["overrides"] == overrides
    recipe = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert recipe["augment"]["size"] == 20 and recipe["optim"]["name"] == "lars"
    assert recipe["optim"]["weight_decay"] == 1e-5  # written 1e-5, which YAML 1.1 reads as text
    # The calibration's rate decides the steps; the run takes exactly those, and its cosine,
    # fitted to them (epochs rounded up), has nearly annealed by the last one.
    steps = run["steps"]
    assert recipe["train"]["max_steps"] == steps > 1
    assert run["views"] == steps * 40 * 2
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert int(rows[-1]["step"]) == steps
    assert float(rows[-1]["lr"]) < 0.25 * recipe["optim"]["lr"] * 40 / 256
    assert sum(p.numel() for p in run["backbone"].parameters()) > 0


def test_lightly_side_spends_its_set_up_inside_its_budget(monkeypatch) -> None:
    # lightly itself is not installed here: a stand-in with lightly's interface and a clock that
    # advances 120 s per set-up and 2 s per step. Session 18's run, timed from 10 steps after
    # the set-up, overran its 30 minutes by 2.9; now the set-up is charged like zoo's start-up.
    import itertools

    import torch

    budget = _load_benchmark()
    now = [0.0]

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return now[0]

    class Run:
        def __init__(self) -> None:
            now[0] += 120.0
            self.backbone = torch.nn.Linear(2, 2)
            self.optimizer = torch.optim.SGD(self.backbone.parameters(), lr=0.1)
            self.batches = itertools.repeat(None)
            self.steps = 0

        def step(self, batch: object) -> None:
            now[0] += 2.0
            self.steps += 1

    runs: list[Run] = []
    monkeypatch.setattr(budget, "time", Clock)
    monkeypatch.setattr(budget.tt, "lightly_setup", lambda *a, **k: runs.append(Run()) or runs[-1])
    result = budget.lightly_side(1800.0)

    assert result["calibration"] == {"steps_per_s": 0.5, "startup_s": 120.0}
    assert result["steps"] == runs[-1].steps == (1800 - 120) // 2
    assert result["seconds"] == 1800.0
