"""Embedding throughput and latency: zoo's backends next to plain torchvision, same inputs.

    python benchmarks/embed.py [--batches 4] [--out benchmarks/results/embed.json]

For ResNet-50 and ResNet-18 at 224 px and the CIFAR ResNet-18 at 32 px (random weights:
speed does not depend on their values), the same real images (Imagenette val / CIFAR-10
test from ../shared/data, preprocessed once) go through

* torchvision eager fp32 (``torchvision.models.resnetXX()`` under ``torch.no_grad``), the
  reference every ratio is taken against;
* each zoo backend: ``torch`` (fp32, inference mode, channels-last), ``onnx`` (fp32 ONNX
  Runtime), and the opt-in fast modes ``torch-bf16`` and ``onnx-int8``.

It reports images/s at batch 64 (median of ``--batches`` timed batches after a warm-up), batch-1
latency (median of 20), and the max abs feature difference to the reference (fp32 backends
must stay below 1e-4). Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

import zoo

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

from zoo.folder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BACKENDS = ("torch", "onnx", "torch-bf16", "onnx-int8")
CASES = (
    ("resnet50", "resnet50", 224, "imagenette/val"),
    ("resnet18", "resnet18", 224, "imagenette/val"),
    ("resnet18_cifar", "resnet18", 32, "cifar10/test"),
)


def real_images(split: str, n: int) -> list[Path]:
    classes = sorted((DATA / split).iterdir())
    per = -(-n // len(classes))
    files = [f for c in classes for f in sorted(c.iterdir())[:per]]
    return files[:n]


def timed(fn, x, repeats: int) -> float:
    """Median seconds of ``fn(x)`` over ``repeats`` runs, after one warm-up run."""
    fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=4, help="timed batches of 64 per measurement")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embed.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {
        "machine": describe(),
        "batch_size": 64,
        "models": {},
    }
    for arch, tv_name, size, split in CASES:
        enc = zoo.create_model(arch)
        files = real_images(split, 64)
        # int8 is calibrated on other images than the ones timed/compared.
        calib = real_images(split.replace("val", "train").replace("test", "train"), 256)
        batch = torch.stack([enc.transform(f) for f in files])
        reference = getattr(torchvision.models, tv_name)()
        if arch.endswith("_cifar"):
            reference.conv1, reference.maxpool = enc.backbone.conv1, torch.nn.Identity()
        reference.fc = torch.nn.Identity()
        reference.load_state_dict(enc.backbone.state_dict())
        reference.eval()

        def tv(x, model=reference):
            with torch.no_grad():
                return model(x).numpy()

        ref_feats = tv(batch)
        row = {"input": f"{size}px", "images": split, "torchvision_eager_fp32": {}}
        row["torchvision_eager_fp32"] = {
            "images_per_s": 64 / timed(tv, batch, args.batches),
            "latency_ms_b1": 1000 * timed(tv, batch[:1], 20),
        }
        for backend in BACKENDS:
            run = enc.runner(backend, calibration=calib)
            feats = run(batch)
            diff = float(np.abs(feats - ref_feats).max())
            cos = float(
                (
                    (feats / np.linalg.norm(feats, axis=1, keepdims=True))
                    * (ref_feats / np.linalg.norm(ref_feats, axis=1, keepdims=True))
                )
                .sum(1)
                .mean()
            )
            row[backend] = {
                "images_per_s": 64 / timed(run, batch, args.batches),
                "latency_ms_b1": 1000 * timed(run, batch[:1], 20),
                "max_abs_diff": diff,
                "mean_cosine_to_fp32": cos,
            }
            row[backend]["speedup_vs_torchvision"] = (
                row[backend]["images_per_s"] / row["torchvision_eager_fp32"]["images_per_s"]
            )
        results["models"][arch] = row
        print(f"\n{arch} @ {size}px ({split}), batch 64")
        print(f"  {'backend':<24}{'img/s':>9}{'x tv':>7}{'b1 ms':>9}{'max|diff|':>12}{'cos':>9}")
        for name, r in row.items():
            if not isinstance(r, dict):
                continue
            print(
                f"  {name:<24}{r['images_per_s']:>9.1f}{r.get('speedup_vs_torchvision', 1.0):>7.2f}"
                f"{r['latency_ms_b1']:>9.1f}{r.get('max_abs_diff', 0.0):>12.2e}"
                f"{r.get('mean_cosine_to_fp32', 1.0):>9.4f}"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
