"""Where one zoo training step's time goes: the step of ``train_throughput.py`` (same network,
data, batch and precision), timed with its page faults and system time, then profiled op by op.

    python benchmarks/step_anatomy.py [--method simclr] [--steps 6] [--threads 1] [--out ...json]

Reported, per step (median wall time over ``--steps`` after 3 warm-up steps):

* wall, user and system CPU seconds and minor page faults. System time is mostly the kernel
  handing the step's freed activations back and zeroing fresh pages for the next step's
  (glibc returns large blocks to the OS). ``--malloc keep`` raises glibc's thresholds first,
  as ``zoo train`` does on CPU (:mod:`zoo.memory`), so they stay in the heap;
  ``--malloc default`` leaves glibc as it starts (or as ``GLIBC_TUNABLES`` set it);
* the share of profiled CPU time by family (convolution forward, convolution backward, batch
  norm forward / backward, ReLU forward / backward, the rest) and the ``--top`` ops by input
  shape, so a slow layer (e.g. the 16-channel stage at 32 px) shows by name.

Run it on an otherwise idle machine: the shares hold under load, the times do not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe
from train_throughput import zoo_setup

from zoo.folder import atomic_write_text
from zoo.machine import cpu_precision

ROOT = Path(__file__).resolve().parents[1]
#: aten op name -> family, for the shares (anything else is "other").
FAMILIES = {
    "aten::mkldnn_convolution": "conv forward",
    "aten::convolution_backward": "conv backward",
    "aten::native_batch_norm": "batch norm forward",
    "aten::native_batch_norm_backward": "batch norm backward",
    "aten::clamp_min_": "relu forward",
    "aten::clamp_min": "relu forward",
    "aten::relu_": "relu forward",
    "aten::threshold_backward": "relu backward",
}


def timed_steps(setup, steps: int) -> dict[str, float]:
    """Median wall seconds per step, and user / system seconds and minor faults per step."""
    walls = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        start = time.perf_counter()
        setup.step(next(setup.batches))
        walls.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": round(statistics.median(walls), 4),
        "user_s": round((after.ru_utime - before.ru_utime) / steps, 4),
        "system_s": round((after.ru_stime - before.ru_stime) / steps, 4),
        "minor_faults": round((after.ru_minflt - before.ru_minflt) / steps),
    }


def profiled_ops(setup, steps: int, top: int) -> tuple[dict[str, float], list[dict]]:
    """Shares of self CPU time by family (%) and the ``top`` ops by name and input shapes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            setup.step(next(setup.batches))
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    families: dict[str, float] = {}
    for e in events:
        family = FAMILIES.get(e.key, "other")
        families[family] = families.get(family, 0.0) + e.self_cpu_time_total
    shares = {k: round(100 * v / total, 1) for k, v in sorted(families.items(), key=lambda kv: -kv[1])}
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    rows = [
        {
            "op": e.key,
            "shapes": str(e.input_shapes)[:120],
            "calls_per_step": e.count / steps,
            "ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 2),
            "share": round(100 * e.self_cpu_time_total / total, 1),
        }
        for e in ranked
    ]
    return shares, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=["simclr", "byol"], default="simclr")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", choices=["on", "off"], default="off")
    parser.add_argument(
        "--precision", choices=["auto", "bf16", "fp32"], default="auto", help="as train_throughput.py"
    )
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--malloc", choices=["keep", "default"], default="keep", help="glibc thresholds (see above)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "step_anatomy.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kept = False
    if args.malloc == "keep":
        from zoo.memory import keep_freed_memory

        kept = keep_freed_memory()
    bf16 = cpu_precision(args.precision) == "bf16"
    setup = zoo_setup(args.method, args.batch, use_compile=args.compile == "on", bf16=bf16)
    for _ in range(3):  # compilation, first-call allocations, kernel selection
        setup.step(next(setup.batches))
    step = timed_steps(setup, args.steps)
    shares, ops = profiled_ops(setup, args.profile_steps, args.top)
    result = {
        "benchmark": "step_anatomy",
        "method": args.method,
        "batch": args.batch,
        "threads": args.threads,
        "compile": args.compile == "on",
        "precision": "bf16" if bf16 else "fp32",
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "malloc_kept": kept,
        "machine": describe(),
        "step": {**step, "views_per_s": round(2 * args.batch / step["wall_s"], 1)},
        "shares": shares,
        "top_ops": ops,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    s = result["step"]
    print(
        f"{args.method}, batch {args.batch}, {args.threads} thread(s): {s['wall_s'] * 1000:.0f} ms/step"
        f" ({s['views_per_s']:.0f} views/s); user {s['user_s'] * 1000:.0f} ms, system"
        f" {s['system_s'] * 1000:.0f} ms, {s['minor_faults']} minor faults per step"
    )
    print("share of CPU time: " + ", ".join(f"{k} {v}%" for k, v in shares.items()))
    for r in ops:
        print(f"{r['share']:5.1f}% {r['ms_per_step']:8.1f} ms  {r['op']:32} {r['shapes']}")


if __name__ == "__main__":
    main()
