"""Batch-norm statistics: of the images an encoder will embed, and of groups of a batch.

A backbone trained on patches or tiles (relative patch location, jigsaw) keeps the running
statistics of what it saw in training: 24 px crops with two colour channels blanked, say,
not the whole images that kNN, the linear probe and every user embed. Evaluated in eval mode,
each normalisation layer then shifts and scales whole-image activations by the wrong amounts.
Re-estimating the statistics on whole training images (a forward pass, no labels, no gradient)
fixes that without touching a learned weight: with the relative-patch recipe at 32 px it
lifted kNN by 5.5 points (benchmarks/pretext_shortcuts.py, training/README.md).

MoCo in one process needs the opposite: statistics over groups of the batch, not the whole of
it (:class:`SplitBatchNorm2d`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

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
        if isinstance(m, SplitBatchNorm2d):
            m.num_splits = 1  # statistics of whole batches, whatever their size
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


def recalibration_indices(
    num_images: int, n: int, seed: int, batch_size: int = 256
) -> tuple[torch.Tensor, int]:
    """Which training images re-estimate the statistics, and in batches of how many: the first
    ``n`` of a ``seed``-ed permutation, cut to whole batches of ``min(batch_size, n)`` so that
    each batch weighs equally in :func:`recalibrated`'s average. The trainer
    (``run.bn_recalibration_images``) and ``zoo.training.recalibrate_knn`` both draw them here,
    so they re-estimate on the same images."""
    if n < 1:
        raise ValueError(f"the number of images to re-estimate on must be >= 1, not {n}")
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))
    batch = min(batch_size, n, num_images)
    return order[: min(n, num_images) // batch * batch], batch


class SplitBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that, in training, normalises ``num_splits`` groups of the batch each by its
    own statistics, as that many processes would; in eval mode it is plain batch norm on the
    running statistics, so the weights, the state dict and the exported model are unchanged.

    MoCo needs this in one process (He et al. 2020, sec. 3.3): when the query and key encoders
    each normalise a batch of views of the same images, the positive key shares the query's
    batch statistics and the queue's keys do not, a shortcut that lowers the InfoNCE loss
    without better features. Several GPUs break it with shuffling BN (each normalises its own
    share, the keys are shuffled across them); MoCo's CIFAR-10 demo and lightly's CIFAR-10
    benchmark emulate that in one process with 8 groups and a shuffled key batch.
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.num_splits
        if not self.training or s == 1:
            return super().forward(x)
        n = len(x)
        if n % s:
            raise ValueError(
                f"a batch of {n} does not split into {s} batch-norm groups; use a batch divisible by {s}"
            )
        # One batch_norm call per group of consecutive samples: the groups are views of the
        # batch, so nothing is copied but the output (reshaping the groups into channels, as
        # MoCo's demo does, copies in and out and cost 26% of a step in channels-last).
        means = [self.running_mean.clone() for _ in range(s)]
        variances = [self.running_var.clone() for _ in range(s)]
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
        out = torch.cat(
            [
                nn.functional.batch_norm(g, m, v, self.weight, self.bias, True, momentum, self.eps)
                for g, m, v in zip(x.chunk(s), means, variances, strict=True)
            ]
        )
        with torch.no_grad():
            self.running_mean.copy_(torch.stack(means).mean(0))
            self.running_var.copy_(torch.stack(variances).mean(0))
            self.num_batches_tracked += 1
        return out


def split_batch_norm(module: nn.Module, num_splits: int) -> nn.Module:
    """``module`` with each ``BatchNorm2d`` replaced, in place, by a :class:`SplitBatchNorm2d`
    holding the same parameters and statistics (the state dict keeps its keys)."""
    if num_splits == 1:
        return module
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d and child.track_running_stats:
            split = SplitBatchNorm2d(
                child.num_features, num_splits, eps=child.eps, momentum=child.momentum, affine=child.affine
            )
            split.load_state_dict(child.state_dict())
            setattr(module, name, split.to(child.running_mean.device))
        else:
            split_batch_norm(child, num_splits)
    return module
