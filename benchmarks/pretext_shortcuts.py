"""Relative patch location with and without the paper's defences against shortcuts.

    python benchmarks/pretext_shortcuts.py [--steps 300] [--images 0] [--knn-train 10000]
        [--knn-test 10000] [--pairs 10000] [--variants defended,no_gap,...]
        [--out benchmarks/results/pretext_shortcuts]

Doersch, Gupta & Efros (2015) guard context prediction against trivial solutions with gaps
between the patches (no continuing edges or textures), a random jitter of each patch (no
aligned lines) and colour dropping (no chromatic aberration). Their claim: without them the
task is easier and the features worse. This trains ``relative_patch_r18q_cifar10`` (8 px
patches of 32 px CIFAR-10 views, gap 2, jitter 1, colour dropping) through zoo's trainer from
the same seed, the same number of steps and the same schedule, once per variant (recipe
overrides), on 1 thread, and reports for each:

* ``train_patch_acc``: the mean ``patch_acc`` (%) of the last ``--last`` training steps
  (metrics.csv, one row per step; each step's accuracy is on its own 256 fresh pairs);
* ``heldout_patch_acc``: the position accuracy on ``--pairs`` fixed random pairs cut from
  CIFAR-10 *test* images (one pair per image, whole 32 px image, eval mode, fp32) with the
  variant's own settings: the task the variant learnt, measured on images it never saw;
* ``heldout_patch_acc_defended``: the same pairs cut with the recipe's defences on (gap 2,
  jitter 1, colour dropping): what the variant solves once its cues are taken away;
* ``knn_top1``: weighted kNN (k=200, T=0.1, cosine) of the backbone's pooled features,
  ``--knn-train`` train images voting for ``--knn-test`` test images (spread over classes);
* ``knn_top1_bn_recal``: the same after re-estimating the backbone's batch-norm statistics on
  2,048 whole train images (training saw only 8 px patches, colour-dropped in most variants).

A ``random_init`` row (the same seeded network, untrained) gives chance and the kNN floor.
Writes ``<out>.json`` and ``<out>.md`` (table, machine, command).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from zoo.training.batch_norm import recalibrated

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
RECIPE = "relative_patch_r18q_cifar10"

#: Variant name -> recipe overrides (the recipe itself has every defence on).
VARIANTS: dict[str, tuple[str, ...]] = {
    "defended": (),
    "no_gap": ("method.gap=0",),
    "no_jitter": ("method.jitter=0",),
    "no_color_drop": ("method.color_drop=false",),
    "none": ("method.gap=0", "method.jitter=0", "method.color_drop=false"),
}
DESCRIPTIONS = {
    "random_init": "untrained (same seed)",
    "defended": "gap + jitter + colour drop (the recipe)",
    "no_gap": "no gap",
    "no_jitter": "no jitter",
    "no_color_drop": "no colour drop",
    "none": "no defences",
}
#: Seed of the fixed held-out pairs (their positions, jitter and dropped channels).
PAIR_SEED = 20150505


def _recipe(
    variant: str, *, steps: int, images: int, batch_size: int, seed: int, data_root: Path, out_dir: Path
):
    """The recipe of one variant: the published one, its cosine schedule over the fewest whole
    epochs that hold ``steps`` steps, stopped after ``steps``; logging every step, no
    checkpoints on the way, no monitor, no export."""
    from zoo.training.data import steps_per_epoch
    from zoo.training.recipe import load_recipe

    n_train = images or 50_000
    per_epoch = max(1, steps_per_epoch(n_train, batch_size, 1))
    overrides = [
        f"train.batch_size={batch_size}",
        f"data.path={data_root}",
        f"data.limit_per_class={images // 10 if images else 0}",
        f"train.epochs={math.ceil(steps / per_epoch)}",
        f"train.max_steps={steps}",
        f"train.seed={seed}",
        "train.threads=1",
        "run.log_every_steps=1",
        f"run.checkpoint_every_steps={steps + 1}",
        "run.knn_every_epochs=0",
        "run.export=false",
        f"run.out_dir={out_dir}",
        *VARIANTS[variant],
    ]
    return load_recipe(RECIPE, overrides), overrides


def heldout_pairs(
    images: torch.Tensor, mean, std, *, patch: int, gap: int, jitter: int, color_drop: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One ``(centre, neighbour, label)`` pair per image (uint8 (N, 3, S, S), normalised as the
    encoder sees it), drawn from a fixed seed: every variant gets the same images and the
    same positions (labels are drawn first), its own gap / jitter / colour drop."""
    from zoo.training.data import evaluation_batches
    from zoo.training.pretext.patches import patch_pairs

    x = torch.cat(list(evaluation_batches(images, images.shape[-1], mean, std)))
    generator = torch.Generator().manual_seed(PAIR_SEED)
    return patch_pairs(x, generator, patch=patch, gap=gap, jitter=jitter, color_drop=color_drop)


@torch.no_grad()
def pair_accuracy(method: torch.nn.Module, pairs: tuple[torch.Tensor, ...], batch: int = 1024) -> float:
    """Position accuracy (%) of a relative-patch method on fixed pairs (eval mode, fp32)."""
    centre, other, labels = pairs
    was_training = method.training
    method.eval()
    correct = 0
    for c, o, y in zip(centre.split(batch), other.split(batch), labels.split(batch), strict=True):
        f_c, f_o = method.backbone(torch.cat([c, o])).float().chunk(2)
        correct += int((method.head(torch.cat([f_c, f_o], dim=1)).argmax(1) == y).sum())
    method.train(was_training)
    return round(100.0 * correct / len(labels), 2)


def _knn(trainer: Any, knn_data: dict[str, torch.Tensor], encoder: torch.nn.Module | None = None) -> float:
    from zoo.evaluate import knn_predict

    train = trainer.embed(knn_data["train_images"], autocast=False, encoder=encoder)
    test = trainer.embed(knn_data["test_images"], autocast=False, encoder=encoder)
    pred = knn_predict(train, knn_data["train_labels"].numpy(), test, k=200, temperature=0.1, num_classes=10)
    return round(100.0 * float((pred == knn_data["test_labels"].numpy()).mean()), 2)


def run_benchmark(
    variants: list[str],
    *,
    steps: int = 300,
    images: int = 0,
    batch_size: int = 256,
    knn_train: int = 10_000,
    knn_test: int = 10_000,
    pairs: int = 10_000,
    last: int = 50,
    bn_images: int = 2048,
    seed: int = 0,
    data_root: Path = CIFAR,
    work_dir: Path | None = None,
    log: Callable[[str], Any] = print,
    on_row: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Train every variant ``steps`` steps and measure it (see the module docstring); the
    result dict is what ``<out>.json`` holds. ``on_row(result so far)`` is called after each
    variant (the CLI writes the files then: a run cut short keeps the variants it finished)."""
    from zoo.training.data import evaluation_batches, load_split, subset_per_class
    from zoo.training.loop import Trainer, read_csv

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if images and images % 10:
        raise ValueError(f"--images must be a multiple of 10 (10 classes), got {images}")
    torch.set_num_threads(1)
    data_root = Path(data_root).resolve()

    # Only the first images of each class are needed (what subset_per_class picks), and
    # reading fewer files keeps small runs fast.
    def per_class(n: int) -> int:
        return math.ceil(n / 10) if n else 0

    train_images, train_labels, _ = load_split(data_root / "train", 32, limit_per_class=per_class(knn_train))
    test_images, test_labels, _ = load_split(
        data_root / "test",
        32,
        limit_per_class=0 if not (knn_test and pairs) else per_class(max(knn_test, pairs)),
    )
    tr, te = subset_per_class(train_labels, knn_train), subset_per_class(test_labels, knn_test)
    knn_data = {
        "train_images": train_images[tr],
        "train_labels": train_labels[tr],
        "test_images": test_images[te],
        "test_labels": test_labels[te],
    }
    pair_images = test_images[subset_per_class(test_labels, pairs)]
    # Batch-norm re-estimation: the first ``bn_images`` kNN train images, in a fixed shuffled order.
    calib_idx = torch.randperm(len(tr), generator=torch.Generator().manual_seed(PAIR_SEED))[:bn_images]
    temp = tempfile.TemporaryDirectory(prefix="pretext_shortcuts-") if work_dir is None else None
    work = Path(temp.name) if temp else Path(work_dir)
    result: dict[str, Any] = {
        "benchmark": "pretext_shortcuts",
        "recipe": RECIPE,
        "overrides": [],
        "steps": steps,
        "schedule_steps": 0,
        "batch_size": batch_size,
        "train_images": 0,
        "last_steps_averaged": last,
        "knn": {"k": 200, "temperature": 0.1, "train_images": len(tr), "test_images": len(te)},
        "heldout_pairs": len(pair_images),
        "pair_seed": PAIR_SEED,
        "bn_recal_images": len(calib_idx),
        "seed": seed,
        "threads": 1,
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "variants": list(variants),
        "rows": [],
    }
    defended_pairs = None
    try:
        for variant in ["random_init", *variants]:
            name = "defended" if variant == "random_init" else variant
            recipe, overrides = _recipe(
                name,
                steps=steps,
                images=images,
                batch_size=batch_size,
                seed=seed,
                data_root=data_root,
                out_dir=work / variant,
            )
            common = overrides[: len(overrides) - len(VARIANTS[name])]
            result["overrides"] = [o for o in common if not o.startswith("run.out_dir=")]
            trainer = Trainer(recipe, progress=False)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            row: dict[str, Any] = {"variant": variant, "description": DESCRIPTIONS[variant]}
            m = recipe.method
            row.update(gap=m.gap, jitter=m.jitter, color_drop=m.color_drop, overrides=list(VARIANTS[name]))
            if variant == "random_init":
                # The trainer's own set-up (data, seeding, model, method) without a step: the
                # network every variant starts from.
                trainer._setup()
                row.update(steps=0, train_patch_acc=None)
            else:
                fitted = trainer.fit()
                metrics = read_csv(work / variant / "metrics.csv")
                accs = [float(r["patch_acc"]) for r in metrics[-last:]]
                row.update(
                    steps=fitted.steps,
                    train_patch_acc=round(statistics.fmean(accs), 2),
                    train_loss=round(statistics.fmean(float(r["loss"]) for r in metrics[-last:]), 4),
                    train_cpu_s=round(sum(float(r["cpu_s"]) for r in metrics), 1),
                )
            mean, std = trainer.mean, trainer.std
            own = heldout_pairs(
                pair_images,
                mean,
                std,
                patch=m.patch_size,
                gap=m.gap,
                jitter=m.jitter,
                color_drop=m.color_drop,
            )
            if defended_pairs is None:  # the first row is the recipe's settings
                defended_pairs = own
            result.update(
                schedule_steps=trainer.total_steps,
                train_images=len(trainer.images),
                precision=trainer.precision,  # the recipe's auto: bf16 or fp32 by CPU
            )
            row["heldout_pairs"] = len(own[2])
            row["heldout_patch_acc"] = pair_accuracy(trainer.method, own)
            row["heldout_patch_acc_defended"] = pair_accuracy(trainer.method, defended_pairs)
            row["knn_top1"] = _knn(trainer, knn_data)
            calibration = list(
                evaluation_batches(knn_data["train_images"][calib_idx], 32, mean, std, batch_size=256)
            )
            row["knn_top1_bn_recal"] = _knn(
                trainer, knn_data, recalibrated(trainer.method.backbone, calibration)
            )
            row["cpu_s"] = round(time.process_time() - cpu0, 1)
            row["wall_s"] = round(time.perf_counter() - wall0, 1)
            log(json.dumps(row))
            result["rows"].append(row)
            if on_row is not None:
                on_row(result)
    finally:
        if temp:
            temp.cleanup()
    return result


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _autocast(precision: str) -> str:
    return "fp32" if precision == "fp32" else f"{precision} autocast"


def markdown(result: dict[str, Any], command: str) -> str:
    """The results table with what was run, where and how."""
    knn = result["knn"]
    lines = [
        "# Relative patch location: task accuracy with and without the shortcut defences",
        "",
        f"`{result['recipe']}` (quarter-width CIFAR ResNet-18, 8 px patches of 32 px views),"
        f" {result['steps']} steps of batch {result['batch_size']} on {result['train_images']:,} CIFAR-10"
        f" train images per variant, seed {result['seed']}, the recipe's SGD with a cosine schedule"
        + (
            f" over the {result['steps']} steps"
            if result["schedule_steps"] == result["steps"]
            else f" of {result['schedule_steps']} steps stopped at step {result['steps']}"
        )
        + f", {result['threads']} thread,"
        f" {_autocast(result.get('precision', 'bf16'))} (zoo's trainer, recipe overrides below).",
        "",
        "| variant | gap | jitter | colour drop | train patch acc (last"
        f" {result['last_steps_averaged']} steps) | held-out patch acc (own task) | held-out patch acc"
        f" (defended task) | kNN top-1 (k={knn['k']}) | kNN top-1, BN re-estimated | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['description']} | {r['gap']} | {r['jitter']} | {'yes' if r['color_drop'] else 'no'} |"
            f" {_cell(r['train_patch_acc'])} | {_cell(r['heldout_patch_acc'])} |"
            f" {_cell(r['heldout_patch_acc_defended'])} | {_cell(r['knn_top1'])} |"
            f" {_cell(r.get('knn_top1_bn_recal'))} | {_cell(r['cpu_s'])} |"
        )
    missing = [v for v in result.get("variants", ()) if v not in {r["variant"] for r in result["rows"]}]
    if missing:
        lines += [
            "",
            f"**Partial: not run yet: {', '.join(missing)}** (the file is rewritten after each variant).",
        ]
    lines += [
        "",
        "Accuracies in %; chance on the 8-way task is 12.5. Held-out: one fixed random pair per CIFAR-10"
        f" test image ({result['heldout_pairs']:,} pairs, seed {result['pair_seed']}; same images and"
        " positions for every variant), whole 32 px image, eval mode, fp32. *Own task*: cut with the"
        " variant's own gap / jitter / colour drop; *defended task*: cut with the recipe's (gap 2, jitter 1,"
        f" colour drop). kNN: weighted, cosine, T={knn['temperature']}, {knn['train_images']:,} train ->"
        f" {knn['test_images']:,} test images, backbone pooled features (fp32, eval mode). *BN"
        " re-estimated*: the same kNN after the backbone's batch-norm statistics are recomputed on"
        f" {result.get('bn_recal_images', '-')} whole train images (its own come from the 8 px training"
        " patches). CPU s: process CPU time of the variant (training + evaluation).",
        "",
        f"Machine: {result['cpu']}, torch {result['torch']}; shared with other jobs while it ran.",
        "",
        f"Command: `{command}`",
        "",
        "Overrides of every variant: `"
        + " ".join(result["overrides"])
        + "`; the variants add "
        + "; ".join(f"{r['variant']}: `{' '.join(r['overrides'])}`" for r in result["rows"] if r["overrides"])
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_results(result: dict[str, Any], out: str | Path, command: str) -> str:
    """``<out>.json`` and ``<out>.md`` (atomically); returns the Markdown."""
    from zoo.folder import atomic_write_text

    result = {**result, "command": command}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_name(out.name + ".json"), json.dumps(result, indent=2) + "\n")
    md = markdown(result, command)
    atomic_write_text(out.with_name(out.name + ".md"), md)
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per variant")
    parser.add_argument("--images", type=int, default=0, help="train images (0 = all 50,000)")
    parser.add_argument("--batch", type=int, default=256, help="batch size (the recipe's: 256)")
    parser.add_argument("--knn-train", type=int, default=10_000)
    parser.add_argument("--knn-test", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=10_000, help="held-out pairs (one per test image)")
    parser.add_argument("--last", type=int, default=50, help="training steps the train accuracy averages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--data", type=Path, default=CIFAR, help="CIFAR-10 ImageFolder root")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pretext_shortcuts")
    args = parser.parse_args(argv)
    command = "python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/pretext_shortcuts.py", *(sys.argv[1:] if argv is None else argv)]
    )
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or (args.images and args.images % 10):
        parser.error(
            f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}"
            if unknown
            else f"--images must be a multiple of 10 (10 classes), got {args.images}"
        )
    result = run_benchmark(
        variants,
        on_row=lambda partial: write_results(partial, args.out, command),
        steps=args.steps,
        images=args.images,
        batch_size=args.batch,
        knn_train=args.knn_train,
        knn_test=args.knn_test,
        pairs=args.pairs,
        last=args.last,
        seed=args.seed,
        data_root=args.data,
    )
    print(write_results(result, args.out, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
