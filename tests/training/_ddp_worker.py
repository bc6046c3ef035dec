"""One process of the distributed-equivalence test (run by tests/training/test_train_distributed.py).

With WORLD_SIZE=1 it computes the reference on the whole global batch; under RANK /
WORLD_SIZE / MASTER_ADDR / MASTER_PORT (as torchrun sets them) each rank takes its slice
through DDP over gloo. Rank 0 saves, per case, the global loss (mean over ranks) and the
gradients DDP leaves on the parameters.

    python _ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn
from zoo.training import distributed as D
from zoo.training.losses import BarlowTwinsLoss, InfoNCELoss, NTXentLoss, VICRegLoss
from zoo.training.losses.pseudo_label import PseudoLabelLoss
from zoo.training.losses.supcon import SupConLoss
from zoo.training.methods import get_method

GLOBAL_BATCH = 16
CASES = (
    "simclr",
    "barlow_twins",
    "vicreg",
    "moco_v3_infonce",
    "swav_queue",
    "simclr_v2_memory",
    "iic",
    "deepcluster_balanced",
    "supcon",
)


def tiny_backbone() -> nn.Module:
    # GroupNorm, not BatchNorm: per-rank batch statistics would differ from the global ones
    # (torch's SyncBatchNorm has no CPU kernel).
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


class PairLoss(nn.Module):
    """A linear embedding of flattened views scored by a two-view loss (with ``memory``, a
    fixed bank of extra negatives, the same on every rank)."""

    def __init__(self, loss: nn.Module, memory: int = 0) -> None:
        super().__init__()
        self.embed = nn.Linear(3 * 8 * 8, 12)
        self.loss = loss
        self.memory = torch.randn(memory, 12) if memory else None

    def forward(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        z0, z1 = (self.embed(v.flatten(1)) for v in views)
        extra = () if self.memory is None else (self.memory,)
        return {"loss": self.loss(z0, z1, *extra)}


class BalancedPseudoLabels(nn.Module):
    """DeepCluster's class-balanced cross-entropy on fixed pseudo-labels of the global batch:
    rank 0's half holds a singleton cluster's image, so the two halves weigh differently."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3 * 8 * 8, 4)
        self.loss = PseudoLabelLoss(balanced=True)
        self.labels = torch.tensor([3] + [0] * 11 + [1] * 4)
        self.counts = torch.bincount(self.labels, minlength=4)

    def forward(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        n = len(views[0])
        labels = self.labels[D.rank() * n : (D.rank() + 1) * n]
        return {"loss": self.loss(self.embed(views[0].flatten(1)), labels, self.counts)}


class SupConPair(nn.Module):
    """SupCon over the gathered views and labels: each class has images on both ranks, so
    half of every anchor's positives live on the other rank."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3 * 8 * 8, 12)
        self.loss = SupConLoss(0.1, gather_distributed=True)
        self.labels = torch.arange(4).repeat(4)

    def forward(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        n = len(views[0])
        labels = self.labels[D.rank() * n : (D.rank() + 1) * n]
        z0, z1 = (self.embed(v.flatten(1)) for v in views)
        return {"loss": self.loss(z0, z1, labels)}


def swav_with_a_full_queue() -> nn.Module:
    """SwAV whose Sinkhorn batch joins a full queue of 24 embeddings; a linear projector (no
    BatchNorm, whose per-rank statistics would differ from the global ones)."""
    cls = get_method("swav")
    config = cls.Config(proj_out_dim=8, num_prototypes=6, queue_size=24, queue_start_epoch=0)
    swav = cls(tiny_backbone(), 8, config)
    swav.projection = nn.Linear(8, 8)
    for q in swav.queues:
        q.queue.copy_(nn.functional.normalize(torch.randn(24, 8), dim=1))
    swav.queue_seen.fill_(24)
    return swav


def build(case: str) -> nn.Module:
    torch.manual_seed(0)
    if case == "simclr":
        cls = get_method("simclr")
        config = cls.Config(proj_hidden_dim=16, proj_out_dim=8, proj_batch_norm=False, temperature=0.2)
        return cls(tiny_backbone(), 8, config)
    if case == "swav_queue":
        return swav_with_a_full_queue()
    if case == "deepcluster_balanced":
        return BalancedPseudoLabels()
    if case == "supcon":
        return SupConPair()
    if case == "iic":  # the mutual information of the global batch's joint distribution
        cls = get_method("iic")
        return cls(tiny_backbone(), 8, cls.Config(num_clusters=3, overcluster=5, num_subheads=2))
    if case == "simclr_v2_memory":
        return PairLoss(NTXentLoss(0.2, gather_distributed=True), memory=20)
    losses = {
        "barlow_twins": BarlowTwinsLoss(gather_distributed=True),
        "vicreg": VICRegLoss(gather_distributed=True),
        "moco_v3_infonce": InfoNCELoss(0.2, scale_by_temperature=True, gather_distributed=True),
    }
    return PairLoss(losses[case])


def main(out_dir: Path) -> None:
    D.init_from_env("gloo")
    rank, world = D.rank(), D.world_size()
    local = GLOBAL_BATCH // world
    for case in CASES:
        module = build(case)
        g = torch.Generator().manual_seed(1)
        views = [torch.randn(GLOBAL_BATCH, 3, 8, 8, generator=g) for _ in range(2)]
        mine = [v[rank * local : (rank + 1) * local] for v in views]
        model = nn.parallel.DistributedDataParallel(module) if world > 1 else module
        loss = model(mine)["loss"]
        loss.backward()
        global_loss = D.all_reduce_mean(loss.detach().clone())
        if rank == 0:
            grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
            torch.save({"loss": global_loss, "grads": grads}, out_dir / f"{case}-{world}.pt")
    # MoCo v2 under DDP: shuffle-BN round trip and queues kept identical on every rank.
    torch.manual_seed(0)
    x = torch.arange(GLOBAL_BATCH, dtype=torch.float32).view(-1, 1)[rank * local : (rank + 1) * local]
    shuffled, perm = D.batch_shuffle(x)
    cls = get_method("moco_v2")
    torch.manual_seed(0)
    moco = cls(tiny_backbone(), 8, cls.Config(proj_hidden_dim=16, proj_out_dim=8, queue_size=64))
    model = nn.parallel.DistributedDataParallel(moco) if world > 1 else moco
    model(mine)["loss"].backward()
    torch.save(
        {
            "local": x,
            "shuffled": shuffled,
            "unshuffled": D.batch_unshuffle(shuffled, perm),
            "queue": moco.queue.queue.clone(),
            "pointer": moco.queue.pointer.clone(),
        },
        out_dir / f"moco-{world}-rank{rank}.pt",
    )
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
    os._exit(0)  # skip gloo's slow teardown
