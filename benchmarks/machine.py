"""What a benchmark ran on, recorded next to its figures.

The CPU model changes between the machines these benchmarks run on (AMD EPYC with AVX-512 bf16,
Intel Xeon with AMX), so every result file names it: compare ratios measured in one run, never
absolute figures across runs.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """``/proc/cpuinfo``'s model name with its family and model numbers (some virtual
    machines name only the vendor line, e.g. "AMD EPYC"), and the logical CPU count."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{name}, {os.cpu_count()} logical CPUs"


def describe(**versions: str) -> dict[str, Any]:
    """The machine block of a result file: CPU model, platform, Python, torch, and any other
    package ``versions`` the benchmark depends on (e.g. ``faiss="1.9.0"``)."""
    import torch

    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        **versions,
    }
