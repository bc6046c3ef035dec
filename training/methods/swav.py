"""SwAV (Caron, Misra, Mairal, Goyal, Bojanowski & Joulin 2020), https://arxiv.org/abs/2006.09882."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.distributed import rank, world_size
from zoo.training.heads import SwAVProjectionHead, SwAVPrototypes
from zoo.training.losses import SwAVLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method
from zoo.training.queue import FeatureQueue


@dataclass(frozen=True)
class SwAVConfig(MethodConfig):
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 128
    num_prototypes: int = 3000
    temperature: float = 0.1
    sinkhorn_epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    #: "we freeze the prototypes during the first epoch of training".
    freeze_prototypes_epochs: int = 1
    #: Past embeddings per global crop joining the Sinkhorn batch (0 = none; the paper
    #: uses 3840 for batches of 256), from epoch ``queue_start_epoch`` once filled.
    queue_size: int = 0
    queue_start_epoch: int = 15


@register_method
class SwAV(Method):
    """Online clustering: each global crop's embedding is assigned balanced soft codes
    over K prototypes (Sinkhorn-Knopp), and every other crop must predict those codes.
    Expects multi-crop views: the first two are the global crops.

    Unlike the authors' main_swav.py, whose SGD (wrapped in LARC) decays every parameter,
    ours (:meth:`Method.param_groups`) excludes biases and norm layers from weight decay.
    """

    name = "swav"
    Config = SwAVConfig
    multicrop = True

    queue_seen: torch.Tensor

    def __init__(self, backbone: nn.Module, embed_dim: int, config: SwAVConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        self.projection = SwAVProjectionHead(embed_dim, c.proj_hidden_dim, c.proj_out_dim)
        self.prototypes = SwAVPrototypes(c.proj_out_dim, c.num_prototypes)
        self.loss = SwAVLoss(c.temperature, c.sinkhorn_epsilon, c.sinkhorn_iterations)
        self.queues = nn.ModuleList(
            [FeatureQueue(c.queue_size, c.proj_out_dim) for _ in range(2)] if c.queue_size else []
        )
        self.register_buffer("queue_seen", torch.zeros((), dtype=torch.long))
        # Set by schedule(): a bool that flips once (one recompile under torch.compile), where
        # the epoch number it derives from would change every epoch (Method.logged).
        self.use_queue = bool(self.queues) and config.queue_start_epoch <= 0

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) < 2:
            raise ValueError(f"SwAV takes 2 global (+ local) views, got {len(views)}")
        # Each crop is projected on its own, so the head's BatchNorm normalises every crop with
        # its own batch statistics; the authors' code projects all crops' features in one call
        # (one BN batch over global and local crops). A known difference; the shipped SwAV
        # encoders were trained this way.
        embeddings = [
            nn.functional.normalize(self.projection(h), dim=1) for h in forward_crops(self.backbone, views)
        ]
        scores = [self.prototypes(z) for z in embeddings]
        queue_scores = None
        if self.use_queue:
            # Only a full queue holds real embeddings (it starts as random vectors).
            if int(self.queue_seen) >= self.config.queue_size:
                with torch.no_grad():
                    # Every rank holds the same whole queue (keys of all ranks) while Sinkhorn
                    # sums over ranks: each rank adds its own share, so the queue counts once,
                    # as in the authors' code (queue_length // world_size entries per rank).
                    share = [torch.tensor_split(q(), world_size())[rank()] for q in self.queues]
                    queue_scores = [self.prototypes(s) for s in share]
            for q, z in zip(self.queues, embeddings[:2], strict=True):
                q.enqueue(z.detach())
            self.queue_seen += len(embeddings[0]) * world_size()  # the queue holds every rank's keys
        return {"loss": self.loss(scores[:2], scores[2:], queue_scores)}

    def schedule(self, step: int, total_steps: int, epoch: int) -> None:
        self.use_queue = bool(self.queues) and epoch >= self.config.queue_start_epoch

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.config.freeze_prototypes_epochs:
            for p in self.prototypes.parameters():
                p.grad = None

    def after_optimizer_step(self) -> None:
        self.prototypes.normalize()
