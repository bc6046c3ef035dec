"""Full precision where mixed precision hurts: losses, prototype scores, Sinkhorn.

The backbone trains under bf16 autocast (fast on CPUs with AVX-512 bf16 / AMX), but a
similarity matrix divided by a temperature of 0.1 or 0.04 is where bf16's 8-bit mantissa
shows: a logit of 10 is only resolved to 0.04, and the cross-correlation of Barlow Twins is
summed over thousands of terms. ``.float()`` on the inputs is not enough, since autocast
casts a matmul's inputs back to bf16; :func:`full_precision` switches autocast off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def _fp32(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fp32(o) for o in obj)
    return obj


def _device_type(args: tuple[Any, ...]) -> str:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
        if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
            return a[0].device.type
    return "cpu"


def full_precision(fn: F) -> F:
    """Decorator: run ``fn`` with autocast disabled and its floating-point tensor arguments
    (also inside lists and tuples) in fp32. Gradients flow through the casts unchanged."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_fp32(a) for a in args)
        kwargs = {k: _fp32(v) for k, v in kwargs.items()}
        with torch.autocast(_device_type((*args, *kwargs.values())), enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
