"""Same wall clock, same data: zoo's SimCLR recipe against lightly's, then kNN accuracy.

    python benchmarks/budget.py [--minutes 30] [--threads 1] [--recipe simclr_r18q_cifar10]
                                [--set KEY=VALUE ...] [--out benchmarks/results/budget.json]

Run it with lightly importable (see ``benchmarks/train_throughput.py`` for its separate
environment); without lightly only zoo's side runs. The issue's protocol: each side trains for
``--minutes`` of wall clock on the real CIFAR-10 train split, one after the other, on an
otherwise idle machine, then both backbones are evaluated the same way.

* zoo: ``zoo train`` on the recipe (default ``simclr_r18q_cifar10``: quarter-width CIFAR
  ResNet-18, batch 256, bf16 and torch.compile where they pay, channels-last) with the overrides
  that tune it for a half hour (``BUDGET_OVERRIDES``: 20 px views, LARS; ``--set`` replaces
  them, and the JSON records which were used), its cosine schedule fitted to the budget: a
  60-step calibration run measures the step rate and the start-up time (decoding, compilation),
  and the real run gets as many steps as fit (``train.max_steps``, with ``train.epochs`` rounded
  up so the cosine ends within a fraction of an epoch of the last step).
* lightly: its CIFAR-10 benchmark's SimCLR on the same backbone (``SimCLRTransform`` per
  sample on PIL images in a ``DataLoader``, projection head 128-512-128, NT-Xent T 0.5, SGD
  0.06 x batch/128, momentum 0.9, weight decay 5e-4, cosine), fp32 as its default, batch 256.
  Its cosine is fitted to the budget the same way (its set-up time and the rate of 30 timed
  steps).

Each side's budget counts everything from its start to its last step; the calibration runs
are outside it. Evaluation, identical for both: centre 32 px, ImageNet normalisation, eval
mode, weighted kNN (k=200, T=0.1, cosine; lightly's protocol) of the 10,000 test images
from 10,000 train images. Target (issue 9): zoo >= lightly + 20 points.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import train_throughput as tt
from machine import describe

from zoo.folder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
CALIBRATION_STEPS = 60
#: lightly's steps are ~4x slower than zoo's; 30 of them (about a minute) time it to a few percent,
#: where 10 left its run 10% over budget (session 18: 32.9 minutes of 30).
LIGHTLY_CALIBRATION_STEPS = 30
#: zoo's SimCLR as tuned for a 30-minute budget (session 18, training/README.md "SimCLR for a
#: 30-minute budget"): views at 20 px run ~2.2x the views/s of 32 px, so the half hour holds ~2x the
#: epochs, and a network trained on smaller views reads the whole 32 px test image well (the
#: train-test resolution discrepancy, Touvron et al. 2019); LARS as solo-learn's CIFAR SimCLR.
BUDGET_OVERRIDES = (
    "augment.size=20",
    "optim.name=lars",
    "optim.lr=0.4",
    "optim.weight_decay=1e-5",
    "optim.warmup_epochs=0.25",
)


def _zoo_recipe(name: str, out_dir: Path, threads: int, extra: list[str]):
    from zoo.training.recipe import load_recipe

    overrides = [
        f"data.path={CIFAR}",
        f"train.threads={threads}",
        f"run.out_dir={out_dir}",
        "run.knn_every_epochs=0",
        "run.export=false",
        "run.log_every_steps=10",
        "run.checkpoint_every_steps=1000000",  # the benchmark times training, not saving
        *extra,
    ]
    return load_recipe(name, overrides)


def zoo_side(
    recipe_name: str, seconds: float, threads: int, workdir: Path, overrides: Sequence[str] = ()
) -> dict:
    """Calibrate, then train zoo's recipe (with ``overrides``) for ``seconds`` of wall clock."""
    from zoo.training.loop import Trainer, read_csv, view_configs

    start = time.perf_counter()
    short = [*overrides, f"train.max_steps={CALIBRATION_STEPS}"]
    calibration = Trainer(_zoo_recipe(recipe_name, workdir / "calibration", threads, short), progress=False)
    calibration.fit()
    calibration_s = time.perf_counter() - start
    rows = read_csv(workdir / "calibration" / "metrics.csv")
    recipe = calibration.recipe
    views_per_step = recipe.train.batch_size * len(view_configs(recipe))
    # Median of the 10-step windows after the first (compilation): one window is noisy on a CPU.
    steps_per_s = statistics.median(float(r["views_per_s"]) for r in rows[1:]) / views_per_step
    startup_s = max(0.0, calibration_s - CALIBRATION_STEPS / steps_per_s)
    steps = max(1, math.floor((seconds - startup_s) * steps_per_s))
    spe = calibration.steps_per_epoch
    epochs = max(1, math.ceil(steps / spe))
    budget = [f"train.epochs={epochs}", f"train.max_steps={steps}"]
    recipe = _zoo_recipe(recipe_name, workdir / "run", threads, [*overrides, *budget])
    start = time.perf_counter()
    trainer = Trainer(recipe, progress=False)
    trainer.fit()
    wall = time.perf_counter() - start
    return {
        "recipe": recipe_name,
        "overrides": list(overrides),
        "steps": steps,
        "views": steps * views_per_step,
        "epochs": round(steps / spe, 2),
        "seconds": round(wall, 1),
        "calibration": {"steps_per_s": round(steps_per_s, 3), "startup_s": round(startup_s, 1)},
        "backbone": trainer.method.backbone,
    }


def lightly_side(seconds: float, batch: int = 256) -> dict:
    """Calibrate, then train lightly's SimCLR for ``seconds`` of wall clock."""
    lr = 0.06 * batch / 128  # lightly's CIFAR-10 benchmark
    t0 = time.perf_counter()
    calibration = tt.lightly_setup("simclr", batch, 0, lr=lr, weight_decay=5e-4)
    for _ in range(3):  # warm-up: first-call allocations
        calibration.step(next(calibration.batches))
    t1 = time.perf_counter()
    for _ in range(LIGHTLY_CALIBRATION_STEPS):
        calibration.step(next(calibration.batches))
    steps_per_s = LIGHTLY_CALIBRATION_STEPS / (time.perf_counter() - t1)
    # Its set-up (the data set as PIL images, the model) and warm-up are inside its budget, as
    # zoo's start-up is: the steps are what fits after them.
    startup_s = max(0.0, (t1 - t0) - 3 / steps_per_s)

    # A fresh start for the timed run, with the cosine over the steps that fit.
    start = time.perf_counter()
    run = tt.lightly_setup("simclr", batch, 0, lr=lr, weight_decay=5e-4)
    steps = max(1, math.floor((seconds - startup_s) * steps_per_s))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(run.optimizer, steps)
    for _ in range(steps):
        run.step(next(run.batches))
        schedule.step()
    wall = time.perf_counter() - start
    return {
        "steps": steps,
        "views": steps * 2 * batch,
        "epochs": round(steps * batch / 50000, 2),
        "seconds": round(wall, 1),
        "calibration": {"steps_per_s": round(steps_per_s, 3), "startup_s": round(startup_s, 1)},
        "backbone": run.backbone,
    }


@torch.no_grad()
def knn_top1(backbone: torch.nn.Module, train_images: int = 10000) -> float:
    from zoo.training.data import evaluation_batches, load_split, subset_per_class

    from zoo.evaluate import knn_predict
    from zoo.registry import IMAGENET_MEAN, IMAGENET_STD

    backbone = backbone.float().eval()
    train, y_train, classes = load_split(CIFAR / "train", 32)
    test, y_test, _ = load_split(CIFAR / "test", 32)
    idx = subset_per_class(y_train, train_images)

    def embed(images: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        batches = evaluation_batches(images, 32, IMAGENET_MEAN, IMAGENET_STD, indices=indices)
        return torch.cat([backbone(x.contiguous()) for x in batches]).numpy()

    pred = knn_predict(
        embed(train, idx), y_train[idx].numpy(), embed(test), k=200, temperature=0.1, num_classes=len(classes)
    )
    return round(100.0 * float((pred == y_test.numpy()).mean()), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipe", default="simclr_r18q_cifar10", help="zoo's side (a recipe name or file)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="a recipe override for zoo's side (repeatable); replaces the 30-minute tuning, "
        f"default: {' '.join(BUDGET_OVERRIDES)}; --set none trains the recipe as it is",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "budget.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds = args.minutes * 60
    result = {
        "benchmark": "budget",
        "minutes": args.minutes,
        "threads": args.threads,
        "arch": tt.ARCH,
        "machine": describe(),
    }
    try:
        import lightly

        result["lightly_version"] = lightly.__version__
    except ImportError:
        print("lightly is not installed here: training zoo only (see train_throughput.py)")
    with tempfile.TemporaryDirectory(prefix="zoo-budget-") as tmp:
        overrides = BUDGET_OVERRIDES if args.overrides is None else [o for o in args.overrides if o != "none"]
        sides = {"zoo": lambda: zoo_side(args.recipe, seconds, args.threads, Path(tmp), overrides)}
        if "lightly_version" in result:
            sides["lightly"] = lambda: lightly_side(seconds)
        for name, run_side in sides.items():  # one after the other, as the issue asks
            load_before = os.getloadavg()[0]
            run = run_side()
            # The issue asks for an otherwise idle machine: the 1-minute load average before and
            # after each side (this benchmark's own thread counts as 1) shows whether it was.
            run["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            run["knn_top1"] = knn_top1(run.pop("backbone"))
            result[name] = run
            print(name, json.dumps(run), flush=True)
    if "lightly" in result:
        result["knn_gap_points"] = round(result["zoo"]["knn_top1"] - result["lightly"]["knn_top1"], 2)
        print(f"zoo - lightly: {result['knn_gap_points']:+.2f} kNN points after {args.minutes:g} min each")
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
