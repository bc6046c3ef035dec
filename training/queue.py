"""A first-in-first-out bank of past embeddings (MoCo's negatives, Wu et al. 2018's memory)."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.distributed import gather_no_grad


class FeatureQueue(nn.Module):
    """A ring buffer of the ``size`` most recent ``dim``-dimensional embeddings.

    It is a buffer of the module, so it is saved in checkpoints (exact resume) and moves
    with ``.to(device)``. Under DDP each rank enqueues the keys of *every* rank, so all
    queues stay identical. It starts with random unit vectors, as MoCo's does.
    """

    queue: torch.Tensor
    pointer: torch.Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be >= 1, got size={size}, dim={dim}")
        self.size = size
        self.register_buffer("queue", nn.functional.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries with ``keys`` (N, dim), gathered from all ranks."""
        keys = gather_no_grad(keys.detach()).to(self.queue.dtype)
        if len(keys) > self.size:
            keys = keys[-self.size :]
        start = int(self.pointer)
        idx = (torch.arange(len(keys), device=keys.device) + start) % self.size
        self.queue[idx] = keys
        self.pointer.fill_((start + len(keys)) % self.size)

    def forward(self) -> torch.Tensor:
        """The stored embeddings (size, dim), detached."""
        return self.queue.detach().clone()
