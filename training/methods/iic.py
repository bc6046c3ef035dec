"""IIC: invariant information clustering (Ji, Henriques & Vedaldi 2019), https://arxiv.org/abs/1807.06653.

Heads map each image to a distribution over C clusters; the loss maximises the mutual
information between the clusters of two views of the same image (:class:`IICLoss`), which
rewards confident, balanced and view-invariant assignments without any reconstruction or
negatives. As the paper: a main head with C = the number of classes and an
over-clustering head (C = 70 on CIFAR-10) that helps learn finer features, each with 5
sub-heads (independent linear + softmax layers); the main sub-head with the lowest running
loss is the clusterer, scored by Hungarian accuracy (:func:`cluster_accuracy`; the paper's
table 1 gives 61.7% on CIFAR-10, with a ResNet-34).

What zoo and the CIFAR recipe change: the quarter-width CIFAR ResNet-18 and zoo's SimCLR-style
view pairs (the paper: its own transforms, each pair repeated several times per batch); both
heads' losses are summed every step (the paper alternates the heads); cosine SGD; the sub-head
is chosen by its running training loss (no labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from zoo.training.losses.iic import IICLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method

if TYPE_CHECKING:
    from zoo.training.loop import Trainer


@dataclass(frozen=True)
class IICConfig(MethodConfig):
    #: Clusters of the main head (CIFAR-10: 10).
    num_clusters: int = 10
    #: Clusters of the over-clustering head (CIFAR-10: 70; 0 = none).
    overcluster: int = 70
    num_subheads: int = 5
    lamb: float = 1.0
    #: Momentum of each main sub-head's running loss (selects the clusterer).
    loss_momentum: float = 0.99


@register_method
class IIC(Method):
    """Mutual information between the two views' cluster assignments, main + over-clustering
    heads with sub-heads."""

    name = "iic"
    Config = IICConfig

    subhead_loss: torch.Tensor

    def __init__(self, backbone: nn.Module, embed_dim: int, config: IICConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        if c.num_clusters < 2 or c.overcluster == 1 or c.overcluster < 0 or c.num_subheads < 1:
            raise ValueError("num_clusters >= 2, overcluster 0 or >= 2, num_subheads >= 1 needed")
        self.main = nn.ModuleList(nn.Linear(embed_dim, c.num_clusters) for _ in range(c.num_subheads))
        self.over = nn.ModuleList(
            nn.Linear(embed_dim, c.overcluster) for _ in range(c.num_subheads if c.overcluster else 0)
        )
        self.loss = IICLoss(c.lamb)
        self.register_buffer("subhead_loss", torch.zeros(c.num_subheads))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def _head_losses(self, heads: nn.ModuleList, h0: torch.Tensor, h1: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.loss(torch.softmax(head(h0).float(), 1), torch.softmax(head(h1).float(), 1))
            for head in heads
        ]

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"IIC takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        main = self._head_losses(self.main, h0, h1)
        loss = sum(main) / len(main)
        out = {"main": loss.detach()}
        if self.over:
            over = self._head_losses(self.over, h0, h1)
            over_loss = sum(over) / len(over)
            loss = loss + over_loss
            out["overcluster"] = over_loss.detach()
        with torch.no_grad():
            current = torch.stack([m.detach() for m in main])
            m = self.config.loss_momentum if int(self.steps) else 0.0
            self.subhead_loss.mul_(m).add_(current, alpha=1 - m)
            self.steps += 1
        return {"loss": loss, **out}

    @torch.no_grad()
    def predict_clusters(self, features: torch.Tensor) -> torch.Tensor:
        """Cluster of each backbone feature row (N, D) under the best main sub-head."""
        best = int(self.subhead_loss.argmin())
        head = self.main[best]
        return head(features.to(head.weight.dtype).to(head.weight.device)).argmax(1).cpu()


def cluster_accuracy(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Unsupervised clustering accuracy (%): the best one-to-one mapping of clusters to
    classes (Hungarian algorithm, the IIC paper's metric)."""
    from zoo.evaluate import cluster_accuracy as _accuracy

    return _accuracy(np.asarray(labels), np.asarray(clusters))


def cluster_accuracy_on_test_split(trainer: Trainer) -> float:
    """Hungarian accuracy (%) of a trained IIC run's best main sub-head on the whole test split
    (fp32 features, centre crops), the number the paper reports (61.7 on CIFAR-10)."""
    method = trainer.method
    if not isinstance(method, IIC):
        raise TypeError(f"an IIC run is needed, got {type(method).__name__}")
    images, labels = trainer.test_split()
    features = torch.from_numpy(trainer.embed(images, autocast=False))
    return cluster_accuracy(method.predict_clusters(features).numpy(), labels.numpy())
