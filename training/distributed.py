"""torch.distributed in one place: process-group set-up and the collectives methods use.

Launch with ``torchrun --nproc-per-node N -m zoo.training RECIPE``: torchrun sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``, and :func:`init_from_env` joins the
group (NCCL when the run trains on CUDA, else gloo). Every helper is the identity in a single
process, so methods call them unconditionally.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment; ``False`` when there is
    none (a plain single-process run)."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=collective_timeout())
    return True


def collective_timeout() -> timedelta:
    """How long a rank waits in a collective: ``ZOO_DIST_TIMEOUT_MINUTES``, default 180.

    Rank 0 alone runs the kNN monitor and the final evaluation and export (embedding the whole
    training split: 1.28 M images for the ImageNet recipes) while the other ranks wait in a
    barrier; NCCL's default of 10 minutes would abort them, and torchrun then rank 0 with them.
    """
    raw = os.environ.get("ZOO_DIST_TIMEOUT_MINUTES", "180")
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ValueError(f"ZOO_DIST_TIMEOUT_MINUTES must be a positive number of minutes, got {raw!r}")
    return timedelta(minutes=minutes)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, *keeping the gradient path*.

    ``torch.distributed.nn.all_gather`` back-propagates (a reduce-scatter of the incoming
    gradients), so a loss that uses other ranks' embeddings as negatives sends gradients to
    the ranks that produced them: with DDP's gradient averaging the result equals one
    process over the global batch.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), 0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0 (no gradient: queues, statistics)."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over ranks (in place, returned for chaining)."""
    if is_distributed():
        dist.all_reduce(x)
        x /= world_size()
    return x


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(x)
    return x


@torch.no_grad()
def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum of ``x`` over ranks (in place, returned for chaining)."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


@torch.no_grad()
def batch_shuffle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MoCo's shuffling BN (He et al. 2020, sec. 3.3): the key encoder sees a batch whose
    samples come from other ranks, so its BN statistics cannot leak which key is the query's
    positive. Returns this rank's shuffled chunk and the permutation to undo it with
    :func:`batch_unshuffle`. In one process the batch is shuffled in place of ranks, which
    matters where batch norm normalises groups of it
    (:class:`zoo.training.batch_norm.SplitBatchNorm2d`) and changes nothing where it sees all of it."""
    if not is_distributed():
        perm = torch.randperm(len(x), device=x.device)
        return x[perm], perm
    full = gather_no_grad(x)
    perm = torch.randperm(len(full), device=x.device)
    dist.broadcast(perm, src=0)  # every rank must apply the same permutation
    chunk = len(x)
    return full[perm[rank() * chunk : (rank() + 1) * chunk]], perm


@torch.no_grad()
def batch_unshuffle(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Put the key encoder's outputs back in this rank's original sample order."""
    if not is_distributed():
        return x[torch.argsort(perm)]
    full = gather_no_grad(x)
    chunk = len(x)
    return full[torch.argsort(perm)][rank() * chunk : (rank() + 1) * chunk]
