"""Batch-norm statistics of the images an encoder will embed.

A backbone trained on patches or tiles (relative patch location, jigsaw) keeps the running
statistics of what it saw in training: 24 px crops with two colour channels blanked, say,
not the whole images that kNN, the linear probe and every user embed. Evaluated in eval mode,
each normalisation layer then shifts and scales whole-image activations by the wrong amounts.
Re-estimating the statistics on whole training images (a forward pass, no labels, no gradient)
fixes that without touching a learned weight: with the relative-patch recipe at 32 px it
lifted kNN by 5.5 points (benchmarks/pretext_shortcuts.py, training/README.md).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrated(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """A float32 copy of ``model`` in eval mode whose batch-norm running statistics are the
    average of those of ``batches`` (give batches of equal size); ``model`` is left as it was.
    Only the normalisation layers see training mode, so dropout and the like stay off."""
    out = copy.deepcopy(model).float().eval()
    norms = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("the model has no batch-norm layer to re-estimate")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches, not an exponential one
        m.train()
    seen = 0
    for x in batches:
        out(x)
        seen += len(x)
    if not seen:
        raise ValueError("no images to re-estimate the batch-norm statistics on")
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return out.eval()
