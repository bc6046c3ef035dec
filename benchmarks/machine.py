"""What a benchmark ran on, recorded next to its figures.

The CPU model changes between the machines these benchmarks run on (AMD EPYC with AVX-512 bf16,
Intel Xeon with AMX), so every result file names it: compare ratios measured in one run, never
absolute figures across runs.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from zoo.machine import cpu_model

__all__ = ["cpu_model", "describe"]


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
