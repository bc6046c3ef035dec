"""Momentum (EMA) encoders: the slowly moving targets of MoCo, BYOL and DINO."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` to serve as its EMA target (no gradients)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """``target = momentum * target + (1 - momentum) * online`` for every parameter.

    Buffers (BN running statistics) are left alone: the target runs in training mode on
    its own batches, as in MoCo and BYOL, so only parameters are averaged.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    online_params = [p.detach() for p in online.parameters()]
    target_params = list(target.parameters())
    if len(online_params) != len(target_params):
        raise ValueError("online and target modules have different parameters")
    torch._foreach_lerp_(target_params, online_params, 1.0 - momentum)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's schedule (Grill et al. 2020, sec. 3.2): "tau = 1 - (1 - tau_base) (cos(pi k / K)
    + 1) / 2", rising from ``base`` at step 0 to ``final`` at the last step."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    progress = min(max(step / total_steps, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2
