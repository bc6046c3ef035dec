"""InfoNCE with explicit negatives (MoCo) or in-batch keys (MoCo v3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.distributed import gather_with_grad, rank
from zoo.training.losses.checks import check_pair
from zoo.training.precision import full_precision


class InfoNCELoss(nn.Module):
    """InfoNCE (van den Oord et al. 2018), in MoCo's form (He et al. 2020, eq. 1):

        "L_q = -log exp(q . k+ / tau) / sum_{i=0..K} exp(q . k_i / tau)"

    i.e. the cross-entropy of the logits ``[q . k+, q . n_1, ..., q . n_K] / tau`` with the
    positive at index 0. Queries and keys are L2-normalised here.

    * ``forward(query, key, negatives)`` (MoCo v1/v2): ``negatives`` (K, D) from a queue;
    * ``forward(query, key)`` (MoCo v3, Chen et al. 2021, alg. 1): the other keys of the
      batch are the negatives (logits ``q @ k.T``, label ``i`` for row ``i``). With
      ``gather_distributed`` the keys of every rank are used.

    Args:
        temperature: tau (MoCo v2: 0.2; MoCo v3: 1.0 for ResNets, 0.2 for ViTs).
        scale_by_temperature: multiply by ``2 tau`` as MoCo v3 does, so the gradient scale
            does not depend on tau.
        gather_distributed: (in-batch form only) use every rank's keys.

    Shapes: query, key (N, D); negatives (K, D); returns a scalar.
    """

    def __init__(
        self,
        temperature: float = 0.2,
        *,
        scale_by_temperature: bool = False,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 1e-8:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.scale = 2 * temperature if scale_by_temperature else 1.0
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(
        self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair(query, key)
        q, k = F.normalize(query.float(), dim=1), F.normalize(key.float(), dim=1)
        if negatives is not None:
            neg = F.normalize(negatives.float(), dim=1)
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ neg.T], dim=1) / self.temperature
            labels = torch.zeros(len(q), dtype=torch.long, device=q.device)
        else:
            keys = gather_with_grad(k) if self.gather_distributed else k
            offset = rank() * len(q) if self.gather_distributed else 0
            logits = q @ keys.T / self.temperature
            labels = torch.arange(len(q), device=q.device) + offset
        return F.cross_entropy(logits, labels) * self.scale
