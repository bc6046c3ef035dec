"""What a measurement ran on: the CPU model, recorded beside training logs and benchmark figures.

The machines zoo runs on change (AMD EPYC with AVX-512 bf16, Intel Xeon with AMX), and their
speed differs, so a time is worth only as much as the note of where it was taken.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


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


def device_name(device: str = "cpu") -> str:
    """The CPU model, or for ``cuda`` the GPU's name."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()
