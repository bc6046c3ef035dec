"""k-means over a whole training split, and PCA-whitening: the epoch passes of DeepCluster,
DeepCluster-v2 and PCL.

Plain PyTorch on the features :meth:`Trainer.embed` returns (N up to a few 100k, D a few
hundred, k up to a few 1000 on CIFAR-10): distances are computed in chunks of rows, so
memory stays at ``chunk x k``. Every random choice draws from the ``generator`` passed in
(seeded by the run's seed and the epoch), so a resumed run clusters exactly as the
uninterrupted one did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_CHUNK = 8192


@dataclass(frozen=True)
class Clustering:
    """The result of :func:`kmeans`: ``centroids`` (k, D), ``assignments`` (N,) int64,
    ``counts`` (k,) int64 and ``distances`` (N,) to the own centroid (squared Euclidean, or
    1 - cosine when spherical)."""

    centroids: torch.Tensor
    assignments: torch.Tensor
    counts: torch.Tensor
    distances: torch.Tensor


def _assign(x: torch.Tensor, centroids: torch.Tensor, spherical: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row, and the distance to it."""
    labels, dists = [], []
    c_sq = centroids.pow(2).sum(1)
    for chunk in x.split(_CHUNK):
        sim = chunk @ centroids.T
        if spherical:
            best, idx = sim.max(1)
            dist = 1 - best
        else:
            d = chunk.pow(2).sum(1, keepdim=True) - 2 * sim + c_sq
            dist, idx = d.min(1)
            dist = dist.clamp(min=0)
        labels.append(idx)
        dists.append(dist)
    return torch.cat(labels), torch.cat(dists)


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iterations: int = 20,
    generator: torch.Generator,
    spherical: bool = False,
) -> Clustering:
    """Lloyd's k-means of the rows of ``x`` (N, D), initialised with k distinct random rows.

    Empty clusters are reassigned as FAISS does (and DeepCluster relies on): an empty
    cluster takes the centroid of a cluster drawn with probability proportional to its size,
    and the two are pushed apart by a small symmetric perturbation, so the large cluster is
    split at the next assignment. ``spherical=True`` clusters directions: rows and centroids
    on the unit sphere, assignment by cosine similarity (DeepCluster-v2, PCL).
    """
    x = x.float()
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of points ({n}), got {k}")
    if spherical:
        x = F.normalize(x, dim=1)
    centroids = x[torch.randperm(n, generator=generator)[:k]].clone()
    for _ in range(max(1, iterations)):
        labels, _ = _assign(x, centroids, spherical)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).float()
        for empty in torch.nonzero(~filled).flatten().tolist():
            donor = int(torch.multinomial(counts.float(), 1, generator=generator))
            noise = 1e-4 * torch.randn(centroids.shape[1], generator=generator)
            centroids[empty] = centroids[donor] + noise
            centroids[donor] = centroids[donor] - noise
            counts[empty] = counts[donor] // 2
            counts[donor] -= counts[empty]
        if spherical:
            centroids = F.normalize(centroids, dim=1)
    labels, dists = _assign(x, centroids, spherical)
    return Clustering(centroids, labels, torch.bincount(labels, minlength=k), dists)


@torch.no_grad()
def pca_whiten(x: torch.Tensor, dim: int, eps: float = 1e-5) -> torch.Tensor:
    """DeepCluster's preprocessing (Caron et al. 2018, sec. 3.3): "the features are
    PCA-reduced to 256 dimensions, whitened and l2-normalized". Centred ``x`` (N, D)
    projected on its top ``dim`` principal axes, each divided by the square root of its
    eigenvalue (unit variance), then each row L2-normalised."""
    x = x.float()
    dim = min(dim, x.shape[1])
    centred = x - x.mean(0)
    cov = centred.T @ centred / max(1, len(x) - 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov.double())  # ascending
    top = eigenvectors[:, -dim:].flip(1).float()
    scale = (eigenvalues[-dim:].flip(0).clamp(min=0) + eps).rsqrt().float()
    return F.normalize(centred @ top * scale, dim=1)
