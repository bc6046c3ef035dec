"""ProtoNCE, PCL's instance + prototype contrastive loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.losses.info_nce import InfoNCELoss
from zoo.training.precision import full_precision


class ProtoNCELoss(nn.Module):
    """ProtoNCE (Li, Zhou, Xiong & Hoi 2021, eq. 11):

        "L_ProtoNCE = sum_i -( log exp(v_i . v'_i / tau) / sum_{j=0..r} exp(v_i . v'_j / tau)
                     + 1/M sum_m log exp(v_i . c^m_s / phi^m_s) / sum_{j=0..r} exp(v_i . c^m_j / phi^m_j) )"

    the InfoNCE of MoCo (query against its key and the queue's negatives) plus, for each of the
    M clusterings, the cross-entropy of the query's similarities to every prototype, each
    scaled by its own concentration phi, with the query's own cluster s as the target.
    Averaged over the batch. All prototypes are used (the paper samples r of them when k is
    large).

    Shapes: ``forward(query (N, D), key (N, D), negatives (K, D), prototypes)`` with
    ``prototypes`` a list of M ``(centroids (k_m, D), concentration (k_m,), assignments (N,))``
    (empty during warm-up: the instance term alone). Queries are L2-normalised here; returns
    a scalar.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.instance = InfoNCELoss(temperature)

    @full_precision
    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        negatives: torch.Tensor,
        prototypes: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        loss = self.instance(query, key, negatives)
        if not prototypes:
            return loss
        q = F.normalize(query, dim=1)
        proto = [
            F.cross_entropy(q @ centroids.float().T / concentration.float(), assignments)
            for centroids, concentration, assignments in prototypes
        ]
        return loss + sum(proto) / len(proto)
