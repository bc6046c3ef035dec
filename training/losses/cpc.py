"""CPC's InfoNCE over a grid of patch embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class CPCLoss(nn.Module):
    """CPC v2 (Hénaff et al. 2020, eq. 1-3): the context of patch (i, j) predicts the
    embedding k rows below, ``z_hat_{i+k,j} = W_k c_{i,j}``, and must tell it apart from
    "negative samples {z_l} ... taken from other locations in the image and from other
    images in the mini-batch":

        "L_CPC = -sum_{i,j,k} log p(z_{i+k,j} | z_hat_{i+k,j}, {z_l}),
         p = exp(z_hat^T z_{i+k,j}) / (exp(z_hat^T z_{i+k,j}) + sum_l exp(z_hat^T z_l))"

    Every patch of the batch other than the target is a negative. Averaged over the
    predicted positions of each offset k, then over the offsets.

    Shapes: ``forward(predictions, z, first_offset)`` with ``z`` (N, G, G, D) the patch
    embeddings and ``predictions`` a list over k = first_offset, first_offset + 1, ... of
    (N, G - k, G, D) (row i predicts row i + k); returns a scalar.
    """

    @full_precision
    def forward(
        self, predictions: list[torch.Tensor], z: torch.Tensor, first_offset: int = 1
    ) -> torch.Tensor:
        if z.ndim != 4 or z.shape[1] != z.shape[2]:
            raise ValueError(f"expected z (N, G, G, D), got {tuple(z.shape)}")
        n, g, _, d = z.shape
        last = first_offset + len(predictions) - 1
        if not predictions or first_offset < 1 or last >= g:
            raise ValueError(
                f"offsets {first_offset}..{last} do not fit a {g}x{g} grid (1 <= first, last <= {g - 1})"
            )
        candidates = z.reshape(n * g * g, d)
        index = torch.arange(n * g * g, device=z.device).view(n, g, g)
        total = 0.0
        for k, pred in enumerate(predictions, start=first_offset):
            if pred.shape != (n, g - k, g, d):
                raise ValueError(
                    f"offset {k}: expected predictions {(n, g - k, g, d)}, got {tuple(pred.shape)}"
                )
            logits = pred.reshape(-1, d) @ candidates.T
            total = total + F.cross_entropy(logits, index[:, k:, :].reshape(-1))
        return total / len(predictions)
