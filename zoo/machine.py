"""What a measurement ran on: the CPU model, recorded beside training logs and benchmark figures.

The machines zoo runs on change (AMD EPYC with AVX-512 bf16, Intel Xeon with AMX, Intel Xeon
without bf16 instructions), and their speed differs, so a time is worth only as much as the
note of where it was taken; whether bf16 pays depends on them too (:func:`cpu_has_bf16`).
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


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX-512 BF16 or AMX), where bf16 autocast pays.

    With them oneDNN runs bf16 convolutions natively. Without them it still accepts bf16
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported`` is true on any AVX-512 CPU) but converts to
    and from fp32 around every kernel: on an Intel Xeon Ice Lake (family 6, model 106) the
    half-width CIFAR flagship trained at 58 views/s in bf16 against 150 in fp32 (2 threads,
    eager; benchmarks/README.md, "A CPU without bf16 instructions"). ``auto`` precisions choose
    with this.
    """
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: torch's only probes
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def cpu_precision(precision: str) -> str:
    """A CPU run's ``precision`` as it runs here: ``auto`` is bf16 with bf16 instructions, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if cpu_has_bf16() else "fp32"
