"""Convolution backward in bf16 against its weight gradient taken in fp32, per stage of the
CIFAR ResNet-18 that zoo's CIFAR recipes train.

    python benchmarks/conv_backward.py [--width quarter|half] [--batch 256] [--repeats 20]
                                       [--threads 1] [--out benchmarks/results/conv_backward.json]

Why: on CPUs without AMX (the AMD EPYC), oneDNN computes the bf16 weight gradient with an older
kernel that transposes channels-last input and output gradient on every call, while bf16
forward and data-gradient convolutions and the fp32 weight gradient run faster kernels
(benchmarks/README.md). If so, a convolution whose weight gradient is taken from fp32 copies
(the casts included) beats the all-bf16 backward at the narrow stages. Timed per stage, each a
3x3 convolution, stride 1, channels-last, as the network's blocks hold them:

* ``forward``: bf16 forward, for scale;
* ``bf16``: data and weight gradient in bf16 (what autocast runs today);
* ``split``: data gradient in bf16, weight gradient in fp32 from cast copies (casts timed);
* ``fp32``: data and weight gradient in fp32.

Medians over ``--repeats`` calls after warm-up, in ms, and ``split / bf16``; the weight
gradients of ``split`` and ``bf16`` are compared (they differ by bf16 rounding only). Run it on
an otherwise idle machine; the result file names the CPU and oneDNN's version.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

from zoo.folder import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
#: (channels, spatial size) of the four stages at 32 px input, per width.
STAGES = {
    "quarter": ((16, 32), (32, 16), (64, 8), (128, 4)),
    "half": ((32, 32), (64, 16), (128, 8), (256, 4)),
}


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def _backward(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, mask: list[bool]) -> tuple:
    # aten's convolution_backward: stride 1, padding 1, dilation 1, not transposed, 1 group.
    return torch.ops.aten.convolution_backward(
        g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [*mask, False]
    )


def stage(channels: int, size: int, batch: int, repeats: int) -> dict[str, float]:
    """Times of one stage's convolution, in ms, and the weight gradients' largest difference."""
    gen = torch.Generator().manual_seed(0)
    shape = (batch, channels, size, size)
    x = torch.randn(shape, generator=gen).to(memory_format=torch.channels_last)
    g = torch.randn(shape, generator=gen).to(memory_format=torch.channels_last)
    w = (torch.randn(channels, channels, 3, 3, generator=gen) * 0.1).to(memory_format=torch.channels_last)
    xb, gb, wb = x.bfloat16(), g.bfloat16(), w.bfloat16()

    def split() -> tuple:
        data = _backward(gb, xb, wb, [True, False])[0]
        weight = _backward(gb.float(), xb.float(), w, [False, True])[1]
        return data, weight

    out = {
        "forward": _median_ms(lambda: torch.conv2d(xb, wb, padding=1), repeats),
        "bf16": _median_ms(lambda: _backward(gb, xb, wb, [True, True]), repeats),
        "split": _median_ms(split, repeats),
        "fp32": _median_ms(lambda: _backward(g, x, w, [True, True]), repeats),
    }
    reference = _backward(gb, xb, wb, [True, True])[1].float()
    diff = (split()[1] - reference).abs().max() / reference.abs().max()
    return {
        **out,
        "split_over_bf16": round(out["split"] / out["bf16"], 3),
        "weight_grad_rel_diff": float(diff),
    }


def onednn_version() -> str:
    m = re.search(r"(?:oneDNN|MKL-DNN) v([\d.]+)", torch.__config__.show())  # renamed over versions
    return m.group(1) if m else "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", choices=sorted(STAGES), default="quarter")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "conv_backward.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Whether the machine was idle, as for budget.py: the 1-minute load average before and after
    # (the after reading counts this benchmark's own thread as 1). Beside other work only the
    # ratios hold.
    load_before = os.getloadavg()[0]
    stages = {f"{c} ch, {s} px": stage(c, s, args.batch, args.repeats) for c, s in STAGES[args.width]}
    result = {
        "machine": describe(onednn=onednn_version()),
        "width": args.width,
        "batch": args.batch,
        "repeats": args.repeats,
        "stages": stages,
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"{'stage':<16} {'forward':>8} {'bf16':>8} {'split':>8} {'fp32':>8} {'split/bf16':>10}  (ms)")
    for name, t in stages.items():
        print(
            f"{name:<16} {t['forward']:8.2f} {t['bf16']:8.2f} {t['split']:8.2f} {t['fp32']:8.2f}"
            f" {t['split_over_bf16']:10.3f}"
        )
    print(result["machine"]["cpu"], f"oneDNN {result['machine']['onednn']}", f"load {result['load_1min']}")
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
