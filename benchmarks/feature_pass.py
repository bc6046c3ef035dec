"""The frozen-feature pass of ``zoo eval`` with glibc's malloc as it starts and with
:mod:`zoo.memory`'s thresholds: what page faults cost an evaluation.

    python benchmarks/feature_pass.py [--model moco-v2-r18h-cifar10] [--images 1500] [--threads 2]
        [--rounds 2] [--backends torch onnx] [--out benchmarks/results/feature_pass.json]

Each measurement is a fresh process (glibc's thresholds cannot be put back once raised), held
to ``--threads`` CPUs (its affinity: torch's threads and ONNX Runtime's, one per core, follow),
that loads the encoder, reads ``--images`` CIFAR-10 test images (all classes) from
``../shared/data`` and computes their features as ``zoo eval`` does
(``zoo.evaluate.features(..., cache=False)``: decode, preprocess, forward, batch after batch),
after a warm-up pass over 64 of them. It reports images/s, minor page faults and system CPU
seconds of the timed pass. The two settings alternate ``--rounds`` times per backend, so a
machine whose load drifts affects both alike; the ratio is taken between medians of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

from zoo.folder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "test"
SETTINGS = ("default", "keep")


def measure(model: str, backend: str, images: int, threads: int, setting: str) -> dict:
    """One timed feature pass in this process (the child side)."""
    import numpy as np
    import torch

    import zoo
    from zoo.evaluate import features, image_folder
    from zoo.memory import keep_freed_memory

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < threads:
        raise SystemExit(f"--threads {threads}: this process may run on {len(allowed)} CPUs")
    os.sched_setaffinity(0, allowed[:threads])
    torch.set_num_threads(threads)
    if setting == "keep" and not keep_freed_memory():
        raise SystemExit("glibc refused the thresholds (not Linux/glibc?)")
    encoder = zoo.load(model)
    files, labels, _ = image_folder(DATA)
    per = -(-images // 10)  # the first images/10 of every class
    chosen = [files[i] for c in range(10) for i in np.flatnonzero(labels == c)[:per]][:images]
    features(encoder, chosen[:64], backend=backend, cache=False)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    features(encoder, chosen, backend=backend, cache=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "images_per_s": len(chosen) / seconds,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "system_s": after.ru_stime - before.ru_stime,
        "user_s": after.ru_utime - before.ru_utime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="moco-v2-r18h-cifar10")
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "feature_pass.json"))
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = measure(args.model, args.backends[0], args.images, args.threads, args.child)
        print(json.dumps(row))
        return

    import torch

    torch.set_num_threads(args.threads)  # as the children run, for describe()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("GLIBC_TUNABLES", None)  # "default" is glibc as it starts
    runs: dict[str, dict[str, list[dict]]] = {b: {s: [] for s in SETTINGS} for b in args.backends}
    for backend in args.backends:
        for _ in range(args.rounds):
            for setting in SETTINGS:
                cmd = [
                    sys.executable, __file__, "--child", setting, "--model", args.model,
                    "--backends", backend, "--images", str(args.images), "--threads", str(args.threads),
                ]  # fmt: skip
                child = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if child.returncode:
                    raise SystemExit(f"{backend} {setting}: the measuring process failed:\n{child.stderr}")
                row = json.loads(child.stdout.strip().splitlines()[-1])
                runs[backend][setting].append(row)
                print(
                    f"{backend:<6} {setting:<8} {row['images_per_s']:7.1f} img/s"
                    f" {row['minor_faults']:>9,} minor faults  sys {row['system_s']:.1f} s",
                    flush=True,
                )
    summary = {}
    for backend, by_setting in runs.items():
        med = {s: statistics.median(r["images_per_s"] for r in rows) for s, rows in by_setting.items()}
        faults = {s: statistics.median(r["minor_faults"] for r in rows) for s, rows in by_setting.items()}
        summary[backend] = {
            "images_per_s": med,
            "minor_faults": faults,
            "keep_over_default": med["keep"] / med["default"],
        }
        print(f"{backend}: keep / default = {summary[backend]['keep_over_default']:.3f}")
    results = {
        "machine": describe(),
        "model": args.model,
        "images": args.images,
        "threads": args.threads,
        "rounds": args.rounds,
        "summary": summary,
        "runs": runs,
    }
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
