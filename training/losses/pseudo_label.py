"""Cross-entropy against per-sample pseudo-labels (DeepCluster, DeepCluster-v2, SeLa)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.distributed import all_reduce_mean
from zoo.training.precision import full_precision


class PseudoLabelLoss(nn.Module):
    """``-1/N sum_i w_{y_i} log softmax(s_i / tau)_{y_i}`` normalised by ``sum_i w_{y_i}``.

    * DeepCluster (Caron et al. 2018, sec. 3.3): pseudo-labels from k-means, and "sampling
      images based on a uniform distribution over the classes, or pseudo-labels". zoo draws
      batches uniformly over images, so ``balanced=True`` weights each sample by
      ``1 / |cluster|``: in expectation the same gradient as uniform sampling over clusters
      (empty clusters get no weight, having no samples).
    * DeepCluster-v2 (Caron et al. 2020, appendix): logits are cosine similarities to the
      centroids divided by tau = 0.1.
    * SeLa (Asano et al. 2020, eq. 1): plain cross-entropy (tau 1), the labels already
      equipartitioned.

    Shapes: ``forward(logits (N, K), labels (N,), counts=None)`` with ``counts`` (K,) the
    cluster sizes over the whole split (needed when balanced); returns a scalar.
    """

    def __init__(self, temperature: float = 1.0, balanced: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.balanced = balanced

    @full_precision
    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor | None = None
    ) -> torch.Tensor:
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits (N, K) and labels (N,), got {tuple(logits.shape)}, {tuple(labels.shape)}"
            )
        per_sample = F.cross_entropy(logits / self.temperature, labels, reduction="none")
        if not self.balanced:
            return per_sample.mean()
        if counts is None or counts.shape != logits.shape[1:]:
            raise ValueError("balanced pseudo-label loss needs the (K,) cluster sizes")
        weights = 1.0 / counts.float().clamp(min=1)[labels]
        # Normalised by the global batch's weight (the mean over ranks of each rank's sum, as DDP
        # averages the gradients): a rank's own sum would let one rare cluster's sample carry most
        # of its rank's loss, and the result would depend on how samples fall across ranks.
        total = all_reduce_mean(weights.sum().detach().clone())
        return (weights * per_sample).sum() / total
