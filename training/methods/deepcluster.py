"""DeepCluster (Caron, Bojanowski, Joulin & Douze 2018), https://arxiv.org/abs/1807.05520.

Alternates clustering and classification: before each epoch the features of the whole
training split are PCA-whitened (256 dimensions) and L2-normalised, clustered with k-means
into k pseudo-classes, and the network is trained for the epoch to predict each image's
cluster with a classifier re-initialised after each clustering ("we re-assign empty
clusters ... sample images based on a uniform distribution over the classes").

What zoo and the CIFAR recipe change from the paper: the epoch pass embeds centre crops
with the trainer's batched embedding (the paper: the whole set, centre crops too); k-means
is FAISS's when it is installed, as the paper's, and zoo's own in PyTorch otherwise
(:mod:`zoo.training.kmeans`: the same iterations and empty-cluster rule;
``method.kmeans_backend: torch`` forces it); uniform sampling over pseudo-classes is
replaced by its expectation, per-sample weights ``1 / |cluster|`` (batches stay a pure
function of the step, for exact resume); no Sobel filter (colour jitter and grayscale in
the views instead, as DeepCluster-v2); a linear classifier on the pooled ResNet features
(the paper's ResNet variant) and k = 100 for CIFAR-10 (10x the classes, as the paper's
10,000 for ImageNet's 1,000).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.kmeans import kmeans, pca_whiten, resolve_backend
from zoo.training.losses.pseudo_label import PseudoLabelLoss
from zoo.training.methods.base import DataInfo, Method, MethodConfig, MethodInputError, Needs, register_method


@dataclass(frozen=True)
class DeepClusterConfig(MethodConfig):
    #: k ("k = 10000" on ImageNet).
    num_clusters: int = 10000
    #: "PCA-reduced to 256 dimensions" (or the feature size, if smaller).
    pca_dim: int = 256
    kmeans_iterations: int = 20
    #: ``auto``: FAISS's k-means when ``import faiss`` works, else zoo's; ``faiss`` (an error
    #: without it) or ``torch`` (zoo's own, e.g. to compare with a run that had no FAISS).
    kmeans_backend: Literal["auto", "faiss", "torch"] = "auto"
    #: Per-sample weights 1 / |cluster| (uniform over pseudo-classes in expectation).
    balanced: bool = True


def _seeded(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7919 + salt) % 2**63)


@register_method
class DeepCluster(Method):
    """k-means pseudo-labels of the whole split each epoch, a fresh linear classifier on
    them; one view per image."""

    name = "deepcluster"
    Config = DeepClusterConfig
    needs = Needs(indices=True, epoch_pass=True)

    labels: torch.Tensor
    counts: torch.Tensor

    def __init__(self, backbone: nn.Module, embed_dim: int, config: DeepClusterConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        if config.num_clusters < 2 or config.pca_dim < 1 or config.kmeans_iterations < 1:
            raise ValueError("num_clusters must be >= 2, pca_dim and kmeans_iterations >= 1")
        resolve_backend(config.kmeans_backend)  # FAISS asked for but not installed: fail now
        self.classifier = nn.Linear(embed_dim, config.num_clusters)
        self.loss = PseudoLabelLoss(balanced=config.balanced)
        self.seed = 0

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1)

    def setup_data(self, info: DataInfo) -> None:
        k = self.config.num_clusters
        if k > info.num_samples:
            raise MethodInputError(
                f"{self.name}: num_clusters {k} is more than the {info.num_samples} training images;"
                " lower method.num_clusters"
            )
        self.seed = info.seed
        self.register_buffer("labels", torch.zeros(info.num_samples, dtype=torch.long))
        self.register_buffer("counts", torch.zeros(k, dtype=torch.long))

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> Iterable[nn.Parameter]:
        c = self.config
        g = _seeded(self.seed, epoch)
        result = kmeans(
            pca_whiten(features, c.pca_dim),
            c.num_clusters,
            iterations=c.kmeans_iterations,
            generator=g,
            backend=c.kmeans_backend,
        )
        self.labels.copy_(result.assignments)
        self.counts.copy_(result.counts)
        # "the classifier is re-initialised" (its optimiser state is dropped by the trainer).
        with torch.no_grad():
            bound = 1 / self.embed_dim**0.5  # nn.Linear's default init, from our generator
            for p in self.classifier.parameters():
                p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=g))
        return list(self.classifier.parameters())

    def training_step(self, views: list[torch.Tensor], indices: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.backbone(views[0]))
        loss = self.loss(logits, self.labels[indices], self.counts)
        return {"loss": loss, "clusters_used": (self.counts > 0).sum().float()}
