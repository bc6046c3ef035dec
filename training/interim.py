"""Read a run's checkpoint, finished or not, the way its encoder would ship: full splits.

The kNN monitor of a long run scores a subset (``run.knn_train_images`` of the training split)
at the training resolution with the online backbone. What ships is read otherwise: the whole
training split as the bank, and after training a test reading (resolution, mirror average) and
a backbone (online or momentum) chosen on held-out training images. This reads a checkpoint
that way, mid-run, so a long run's projection rests on the protocol that decides it:

    python -m zoo.training.interim runs/flagship/moco_v2_r18h_cifar10 \\
        --candidates 32/32 48/48 48/48+flip --backbones online momentum -k 200 --temperature 0.1

For each backbone and ``RESIZE/CROP[+flip]`` candidate it prints weighted-kNN top-1 on the
test split (a reading, as the monitor's: choose nothing on it) and on held-out training images
(:func:`zoo.training.test_resolution.holdout_knn`: a tenth of each class against the rest, the
data to choose on). ``--out`` writes the same as JSON. The checkpoint is read as the trainer
reads it (tensors only); the run itself is not touched.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from zoo import memory
from zoo.errors import ZooError

BACKBONES = ("online", "momentum")


def read_run(
    run_dir: str | Path,
    candidates: list[str] | None = None,
    *,
    backbones: tuple[str, ...] = ("online",),
    data: str | None = None,
    k: int = 200,
    temperature: float = 0.1,
) -> dict[str, Any]:
    """Test-split and held-out kNN top-1 (%) of the run's checkpoint for each backbone and
    candidate (default: the training size): ``{"step", "epoch", "readings": [{"backbone",
    "candidate", "test", "held_out_train"}, ...]}``."""
    from zoo.training.loop import load_run
    from zoo.training.publish import exported_arch
    from zoo.training.test_resolution import at_test_size, holdout_knn, parse_candidate

    from zoo.encoder import Encoder
    from zoo.evaluate import evaluate
    from zoo.registry import Preprocess

    parsed = [parse_candidate(c) for c in candidates or ()]  # bad text fails before the run loads
    unknown = sorted(set(backbones) - set(BACKBONES))
    if unknown or not backbones:
        raise ValueError(f"backbones must be among {', '.join(BACKBONES)}, got {list(backbones)}")
    trainer, progress = load_run(run_dir, None, data=data)
    if "momentum" in backbones and trainer.method.momentum_backbone() is None:
        raise ZooError(f"{run_dir}: {trainer.recipe.method_name} keeps no momentum backbone; read online")
    root = trainer.recipe.data.path
    size = trainer.recipe.augment.size
    if not candidates:
        candidates = [f"{size}/{size}"]
        parsed = [parse_candidate(candidates[0])]
    readings = []
    for which in backbones:
        # The trainer's own evaluation backbone for that choice (batch-norm recalibration included).
        trainer.recipe = dataclasses.replace(
            trainer.recipe, run=dataclasses.replace(trainer.recipe.run, export_backbone=which)
        )
        backbone = copy.deepcopy(trainer.evaluation_backbone()).float().cpu().eval()
        backbone.to(memory_format=torch.contiguous_format)
        pre = Preprocess(input_size=size, resize_size=size, mean=trainer.mean, std=trainer.std)
        base = Encoder(backbone, exported_arch(trainer), pre)
        for text, candidate in zip(candidates, parsed, strict=True):
            encoder = at_test_size(base, candidate.resize, candidate.crop, candidate.flip)
            test = evaluate(encoder, root, protocol="knn", k=k, temperature=temperature, backend="torch")
            held = holdout_knn(base, root, [text], k=k, temperature=temperature)
            readings.append(
                {"backbone": which, "candidate": text, "test": test["top1"], "held_out_train": held[text]}
            )
    return {
        "run": str(run_dir),
        "step": progress.step,
        "epoch": progress.epoch,
        "protocol": f"weighted kNN k={k} T={temperature}, cosine; bank: the whole training split (test),"
        " nine tenths of each class (held out: the other tenth queries)",
        "readings": readings,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.interim", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run_dir", help="a `zoo train` run.out_dir with recipe.yaml and checkpoint.pt")
    parser.add_argument(
        "--candidates", nargs="+", default=None, help="RESIZE/CROP[+flip] (default: the training size)"
    )
    parser.add_argument("--backbones", nargs="+", default=["online"], choices=BACKBONES)
    parser.add_argument("--data", default=None, help="dataset root (default: the recipe's data.path)")
    parser.add_argument("-k", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    args = parser.parse_args(argv)
    memory.keep_freed_memory()  # batch after batch of features
    try:
        result = read_run(
            args.run_dir,
            args.candidates,
            backbones=tuple(args.backbones),
            data=args.data,
            k=args.k,
            temperature=args.temperature,
        )
    except (ZooError, ValueError, OSError) as e:
        parser.exit(2, f"zoo: error: {' '.join(str(e).split())}\n")
    text = json.dumps(result, indent=2)
    if args.out:
        from zoo.folder import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
