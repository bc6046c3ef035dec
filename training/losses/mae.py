"""MAE's reconstruction loss (He et al. 2022), https://arxiv.org/abs/2111.06377."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.precision import full_precision


class MAELoss(nn.Module):
    """Mean squared error on the *masked* patches only, against each patch's pixels
    normalised by that patch's own mean and variance (section 3, "normalized pixels as
    the reconstruction target improves representation quality"):

        target = (x_p - mean(x_p)) / sqrt(var(x_p) + 1e-6);  loss = sum_masked MSE_p / #masked

    Shapes: ``pred`` and ``patches`` (N, L, P) (P = patch pixels x channels), ``mask``
    (N, L) True where a patch was hidden from the encoder. Returns a scalar.
    """

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_pix, self.eps = norm_pix, eps

    def target(self, patches: torch.Tensor) -> torch.Tensor:
        if not self.norm_pix:
            return patches
        mean = patches.mean(dim=-1, keepdim=True)
        var = patches.var(dim=-1, keepdim=True)  # unbiased, as MAE's reference code
        return (patches - mean) / (var + self.eps) ** 0.5

    @full_precision
    def forward(self, pred: torch.Tensor, patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if pred.shape != patches.shape or mask.shape != pred.shape[:2]:
            raise ValueError(
                f"expected pred, patches (N, L, P) and mask (N, L); got {tuple(pred.shape)},"
                f" {tuple(patches.shape)}, {tuple(mask.shape)}"
            )
        per_patch = ((pred - self.target(patches)) ** 2).mean(dim=-1)
        m = mask.float()
        return (per_patch * m).sum() / m.sum().clamp_min(1.0)
