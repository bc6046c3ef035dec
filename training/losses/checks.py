"""Input checks shared by the losses that compare two views, row by row."""

from __future__ import annotations

import torch
from zoo.training.distributed import gather_with_grad


def check_pair(a: torch.Tensor, b: torch.Tensor, layout: str = "(N, D)") -> None:
    """Refuse anything but two 2-D tensors of one shape, row i of each from the same image: a
    broadcast or a mismatched batch would give a wrong loss without an error."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two {layout} tensors, got {tuple(a.shape)} and {tuple(b.shape)}")


def global_batch(
    z0: torch.Tensor, z1: torch.Tensor, *, gather: bool, loss: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both views over every process's batch when ``gather`` (gradients flow back to each), after
    :func:`check_pair`. Losses of batch statistics (a correlation or covariance over the batch)
    need at least two samples in it."""
    check_pair(z0, z1)
    if gather:
        z0, z1 = gather_with_grad(z0), gather_with_grad(z1)
    if len(z0) < 2:
        raise ValueError(f"{loss} needs a batch of at least 2 samples")
    return z0, z1
