"""CMC's two-view contrastive objective with memory banks."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.losses.nce import memory_loss
from zoo.training.precision import full_precision


class CMCLoss(nn.Module):
    """CMC (Tian, Krishnan & Isola 2020, eq. 2-3 with the NCE approximation of sec. 3.2):

        "L(V1, V2) = L_contrast^{V1,V2} + L_contrast^{V2,V1}"

    each view's embedding (anchor) must pick the *other* view's stored embedding of the same
    image against m noise entries of that other view's memory bank, estimated with NCE
    (:class:`NCELoss`, their code's default; T 0.07; ``normaliser_momentum`` as there). CRD's
    objective is the same with the student and teacher as the two views.

    Shapes: ``forward(z1 (N, D), z2 (N, D), memory1, memory2)`` with each memory a pair
    ``(own entries (N, D), noise entries (N, m, D) or (m, D))`` of that view's bank; returns a scalar.
    """

    def __init__(
        self,
        num_data: int,
        temperature: float = 0.07,
        estimator: str = "nce",
        normaliser_momentum: float = 0.0,
    ) -> None:
        super().__init__()
        # One module per direction: NCE's normalising constant is estimated for each view.
        self.view1_anchor = memory_loss(estimator, num_data, temperature, normaliser_momentum)
        self.view2_anchor = memory_loss(estimator, num_data, temperature, normaliser_momentum)

    @full_precision
    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        memory1: tuple[torch.Tensor, torch.Tensor],
        memory2: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        return self.view1_anchor(z1, *memory2) + self.view2_anchor(z2, *memory1)
