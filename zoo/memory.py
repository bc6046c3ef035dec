"""Keep freed memory in the heap for the next batch (glibc's malloc, Linux).

A CPU training step allocates its activations and frees them at the end; the next step
allocates the same sizes again, and so does each batch of a frozen-feature pass. glibc serves
blocks above its mmap threshold (128 KiB at first, raised up to 32 MiB as such blocks are freed)
with fresh ``mmap`` calls and returns freed heap tops to the OS above its trim threshold, so
every step page-faults and zeroes much of its memory anew. On the AMD EPYC of session 27, zoo's
SimCLR step (quarter-width CIFAR ResNet-18, batch 256, 1 thread) took 10,500-10,900 minor page
faults and 17-19 ms of system time per step, and ran at 650-661 views/s; with the thresholds
raised it took none and ran at 702 (``python benchmarks/step_anatomy.py``, run under
``GLIBC_TUNABLES=...``, see its docstring). The commands that compute features (``zoo eval``,
``zoo embed``, ``zoo index build``, ...) gain the same way: figures in ``benchmarks/README.md``.
The cost is that the process keeps its peak memory instead of handing it back between steps,
which is why the library leaves glibc alone and only zoo's commands call this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): blocks above it are
#: mapped anyway; a step's activations at CIFAR sizes are well under it.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes a C int


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if glibc accepted both
    (False elsewhere: macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
