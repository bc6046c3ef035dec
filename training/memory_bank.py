"""A memory bank: one embedding per training image, updated with momentum (Wu et al. 2018).

Unlike :class:`zoo.training.queue.FeatureQueue` (the most recent keys, first in first out),
the bank is indexed by the sample's position in the training split: NPID's
non-parametric classifier, CMC's and CRD's contrast memories. It is a buffer of the module,
so checkpoints carry it and ``--resume`` is exact.
"""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.distributed import gather_no_grad


class MemoryBank(nn.Module):
    """``size`` L2-normalised ``dim``-dimensional entries, initialised as random unit vectors.

    :meth:`update` sets ``v_i <- normalize(m v_i + (1 - m) f_i)`` for the batch's indices
    (NPID, sec. 3.1: "the memory bank ... updated with momentum"; m = 0.5). Under DDP every
    rank applies the updates of *every* rank (indices and features are gathered), so all
    banks stay identical.
    """

    bank: torch.Tensor

    def __init__(self, size: int, dim: int, momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be >= 1, got size={size}, dim={dim}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("bank", nn.functional.normalize(torch.randn(size, dim, generator=g), dim=1))

    def __len__(self) -> int:
        return len(self.bank)

    def noise(self, batch: int, m: int, *, shared: bool) -> torch.Tensor:
        """Indices of m noise entries drawn uniformly (P_n = 1/n): (m,) shared by the batch or
        (batch, m), m per sample. Torch's global generator, which checkpoints restore."""
        return torch.randint(0, len(self.bank), (m,) if shared else (batch, m), device=self.bank.device)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """Entries at ``indices`` (any shape) -> (*indices.shape, dim), detached copies."""
        return self.bank[indices].detach().clone()

    @torch.no_grad()
    def fill(self, features: torch.Tensor) -> None:
        """Set every entry to ``features`` (size, dim), normalised here (a warm start)."""
        if features.shape != self.bank.shape:
            raise ValueError(f"expected features {tuple(self.bank.shape)}, got {tuple(features.shape)}")
        self.bank.copy_(nn.functional.normalize(features.float(), dim=1).to(self.bank.dtype))

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor) -> None:
        """Momentum update of the entries at ``indices`` (N,) with ``features`` (N, dim)
        (normalised here), gathered from every rank first."""
        indices = gather_no_grad(indices.detach())
        features = nn.functional.normalize(gather_no_grad(features.detach()).float(), dim=1)
        mixed = self.bank[indices] * self.momentum + features.to(self.bank.dtype) * (1 - self.momentum)
        self.bank[indices] = nn.functional.normalize(mixed, dim=1)
