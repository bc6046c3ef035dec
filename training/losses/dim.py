"""Deep InfoMax's local-global InfoNCE estimator."""

from __future__ import annotations

import torch
from torch import nn
from zoo.training.precision import full_precision


class DIMLoss(nn.Module):
    """Deep InfoMax (Hjelm et al. 2019, eq. 5 with the local objective of eq. 6), InfoNCE form:
    the global feature of image i must score its own local feature at location p above the
    local features of every other image at every location,

        "I_infoNCE(X; Y) = E_P[ T(x, y) - E_P~[ log sum_x' exp T(x', y) ] ]"

    with ``T(y_i, m^p) = phi(y_i) . psi(m^p)`` (the "encoder-and-dot" critic), averaged over
    images and locations (the loss is its negative). ``clip`` > 0 soft-clips the scores to
    (-clip, clip) with ``clip tanh(s / clip)``, AMDIM's stabiliser (Bachman et al. 2019:
    "tanh-based clipping ... at 20"); 0 leaves them as they are. AMDIM's code
    (Philip-Bachman/amdim-public, ``costs.py``) also multiplies the scores by ``scale``
    (``1 / sqrt(critic_dim)``) and adds ``penalty * mean(score^2)`` over every score, before the
    clipping (its ``lgt_reg``, weight 0.05): both keep the critic's raw scores from growing
    until the clipping flattens them and the gradient vanishes.

    Shapes: ``forward(global_ (N, F), local (N, F, L))`` (already projected); returns a scalar.
    """

    def __init__(self, clip: float = 20.0, scale: float = 1.0, penalty: float = 0.0) -> None:
        super().__init__()
        if clip < 0 or scale <= 0 or penalty < 0:
            raise ValueError(f"need clip >= 0, scale > 0 and penalty >= 0, got {clip}, {scale}, {penalty}")
        self.clip, self.scale, self.penalty = clip, scale, penalty

    @full_precision
    def forward(self, global_: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        if global_.ndim != 2 or local.ndim != 3 or local.shape[:2] != global_.shape:
            raise ValueError(
                "expected global (N, F) and local (N, F, L), got"
                f" {tuple(global_.shape)}, {tuple(local.shape)}"
            )
        n, _, loc = local.shape
        scores = torch.einsum("if,jfp->ijp", global_, local) * self.scale  # (N images, N images, L)
        regulariser = self.penalty * scores.square().mean() if self.penalty else 0.0
        if self.clip:
            scores = self.clip * torch.tanh(scores / self.clip)
        eye = torch.eye(n, dtype=torch.bool, device=scores.device)
        positives = scores[eye]  # (N, L): image i with its own locations
        negatives = scores.masked_fill(eye.unsqueeze(2), float("-inf")).reshape(n, n * loc)  # other images
        # For each (i, p): log-softmax of the positive against all of image i's negatives,
        # which are the same for every p (so their log-sum-exp is computed once per image).
        negative_lse = torch.logsumexp(negatives, dim=1, keepdim=True)  # (N, 1)
        return -(positives - torch.logaddexp(positives, negative_lse)).mean() + regulariser
