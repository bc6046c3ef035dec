"""DeepCluster-v2 (Caron, Misra, Mairal, Goyal, Bojanowski & Joulin 2020, appendix of SwAV),
https://arxiv.org/abs/2006.09882.

DeepCluster with SwAV's improvements: a projection head whose L2-normalised output is
clustered with spherical k-means into several sets of prototypes (3 x 3000 on ImageNet);
each view of an image must predict the image's cluster in every set, with logits the
cosine similarities to the centroids divided by tau = 0.1. The prototypes are the
centroids themselves (no classifier to re-initialise), so there is no drift between
clusterings.

What zoo and the CIFAR recipe change: the centroids come from a pass over centre crops at
the start of each epoch (the paper clusters the previous epoch's stored training-crop
embeddings); two views instead of multi-crop; 3 x 500 prototypes on CIFAR-10; zoo's k-means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import Normalized, SwAVProjectionHead
from zoo.training.kmeans import kmeans
from zoo.training.losses.pseudo_label import PseudoLabelLoss
from zoo.training.methods.base import (
    DataInfo,
    Method,
    MethodConfig,
    MethodInputError,
    Needs,
    forward_crops,
    register_method,
)
from zoo.training.methods.deepcluster import _seeded
from zoo.training.precision import full_precision


@dataclass(frozen=True)
class DeepClusterV2Config(MethodConfig):
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 128
    #: k of each prototype set ("3 x 3000").
    num_prototypes: tuple[int, int, int] = (3000, 3000, 3000)
    temperature: float = 0.1
    kmeans_iterations: int = 10


@full_precision
def _cosine_logits(z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, D) @ (K, D).T in fp32: the logits are divided by tau = 0.1 next."""
    return z @ centroids.T


@register_method
class DeepClusterV2(Method):
    """Spherical k-means of the projected embeddings each epoch; every view predicts its
    image's cluster in each prototype set."""

    name = "deepcluster_v2"
    Config = DeepClusterV2Config
    needs = Needs(indices=True, epoch_pass=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: DeepClusterV2Config) -> None:
        super().__init__(backbone, embed_dim, config)
        if min(config.num_prototypes) < 2 or config.temperature <= 0:
            raise ValueError("num_prototypes must all be >= 2 and temperature > 0")
        self.projection = SwAVProjectionHead(embed_dim, config.proj_hidden_dim, config.proj_out_dim)
        self.loss = PseudoLabelLoss(config.temperature)
        self.seed = 0

    def setup_data(self, info: DataInfo) -> None:
        c = self.config
        if max(c.num_prototypes) > info.num_samples:
            raise MethodInputError(
                f"{self.name}: num_prototypes {list(c.num_prototypes)} asks for more clusters than the"
                f" {info.num_samples} training images; lower method.num_prototypes"
            )
        self.seed = info.seed
        for j, k in enumerate(c.num_prototypes):
            self.register_buffer(f"centroids{j}", torch.zeros(k, c.proj_out_dim))
            self.register_buffer(f"labels{j}", torch.zeros(info.num_samples, dtype=torch.long))

    def epoch_encoder(self) -> nn.Module:
        return Normalized(self.backbone, self.projection)

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> None:
        for j, k in enumerate(self.config.num_prototypes):
            g = _seeded(self.seed, epoch, salt=j)
            result = kmeans(
                features, k, iterations=self.config.kmeans_iterations, generator=g, spherical=True
            )
            getattr(self, f"centroids{j}").copy_(result.centroids)
            getattr(self, f"labels{j}").copy_(result.assignments)

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        z = [
            nn.functional.normalize(self.projection(h).float(), dim=1)
            for h in forward_crops(self.backbone, views)
        ]
        total = 0.0
        heads = len(self.config.num_prototypes)
        for j in range(heads):
            centroids, labels = getattr(self, f"centroids{j}"), getattr(self, f"labels{j}")[indices]
            for zv in z:
                total = total + self.loss(_cosine_logits(zv, centroids), labels)
        return {"loss": total / (heads * len(z))}
