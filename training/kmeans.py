"""k-means over a whole training split, and PCA-whitening: the epoch passes of DeepCluster,
DeepCluster-v2 and PCL.

Plain PyTorch on the features :meth:`Trainer.embed` returns (N up to a few 100k, D a few
hundred, k up to a few 1000 on CIFAR-10): distances are computed in chunks of rows, so
memory stays at ``chunk x k``. Every random choice draws from the ``generator`` passed in
(seeded by the run's seed and the epoch), so a resumed run clusters exactly as the
uninterrupted one did.

:func:`kmeans` runs FAISS's k-means instead when asked (``backend="faiss"``, or ``"auto"``
when ``import faiss`` works): the same Lloyd iterations, initialisation by k random rows
and empty-cluster rule, in optimised C++ (what DeepCluster's code uses). See
:func:`_faiss_centroids` for what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

_CHUNK = 8192
BACKENDS = ("auto", "faiss", "torch")


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


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> Literal["faiss", "torch"]:
    """``auto`` -> ``faiss`` when it imports, else ``torch``; ``faiss`` without it is an error."""
    if backend not in BACKENDS:
        raise ValueError(f"k-means backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "faiss" if faiss_available() else "torch"
    if backend == "faiss" and not faiss_available():
        raise ValueError(
            "k-means backend 'faiss' needs FAISS: pip install 'zoo-ssl[faiss]' (faiss-cpu),"
            " or use backend 'torch' (zoo's own k-means)"
        )
    return backend  # type: ignore[return-value]


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iterations: int = 20,
    generator: torch.Generator,
    spherical: bool = False,
    init: torch.Tensor | None = None,
    backend: str = "torch",
) -> Clustering:
    """Lloyd's k-means of the rows of ``x`` (N, D), initialised with k distinct random rows
    (or the centroids ``init``, (k, D)).

    Empty clusters are reassigned as FAISS does (and DeepCluster relies on): an empty
    cluster takes the centroid of a cluster drawn with probability proportional to its size,
    and the two are pushed apart by a small symmetric perturbation, so the large cluster is
    split at the next assignment. ``spherical=True`` clusters directions: rows and centroids
    on the unit sphere, assignment by cosine similarity (DeepCluster-v2, PCL).

    ``backend``: ``torch`` (zoo's own, below), ``faiss`` or ``auto`` (FAISS when installed).
    Either way the result is the final centroids' assignment of every row, computed here.
    """
    x = x.float()
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of points ({n}), got {k}")
    if init is not None and tuple(init.shape) != (k, x.shape[1]):
        raise ValueError(f"init must be (k, D) = ({k}, {x.shape[1]}) centroids, got {tuple(init.shape)}")
    if spherical:
        x = F.normalize(x, dim=1)
    if init is not None:
        centroids = F.normalize(init.float(), dim=1) if spherical else init.float().clone()
    else:
        centroids = None
    if resolve_backend(backend) == "faiss":
        centroids = _faiss_centroids(x, k, iterations, generator, spherical, centroids)
    else:
        if centroids is None:
            centroids = x[torch.randperm(n, generator=generator)[:k]].clone()
        centroids = _lloyd(x, centroids, iterations, generator, spherical)
    labels, dists = _assign(x, centroids, spherical)
    return Clustering(centroids, labels, torch.bincount(labels, minlength=k), dists)


def _lloyd(
    x: torch.Tensor, centroids: torch.Tensor, iterations: int, generator: torch.Generator, spherical: bool
) -> torch.Tensor:
    """zoo's Lloyd iterations from ``centroids``; returns the final centroids."""
    k = len(centroids)
    for _ in range(max(1, iterations)):
        labels, _ = _assign(x, centroids, spherical)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).float()
        for empty in torch.nonzero(~filled).flatten().tolist():
            # Drawn on the CPU, where the generator lives, whatever device x is on.
            donor = int(torch.multinomial(counts.float().cpu(), 1, generator=generator))
            noise = (1e-4 * torch.randn(centroids.shape[1], generator=generator)).to(centroids)
            centroids[empty] = centroids[donor] + noise
            centroids[donor] = centroids[donor] - noise
            counts[empty] = counts[donor] // 2
            counts[donor] -= counts[empty]
        if spherical:
            centroids = F.normalize(centroids, dim=1)
    return centroids


def _faiss_centroids(
    x: torch.Tensor,
    k: int,
    iterations: int,
    generator: torch.Generator,
    spherical: bool,
    init: torch.Tensor | None,
) -> torch.Tensor:
    """FAISS's k-means (``faiss.Kmeans``) on ``x`` (already on the sphere when spherical).

    Set to match :func:`_lloyd`: ``iterations`` Lloyd steps, every row used (FAISS would
    subsample to 256 rows per centroid and warn under 39), its seed drawn from
    ``generator`` (so a resumed run clusters the same), ``spherical`` re-normalising the
    centroids after each update, as many threads as torch uses. What differs: FAISS draws
    the k initial rows and the donor of an empty cluster with its own generator (the same
    seed gives other rows than ``torch.randperm``), its donor is drawn with probability
    proportional to size - 1, and it pushes the pair apart multiplicatively (coordinates
    times 1 +- 1/1024) rather than by +- a random 1e-4 vector; given the same initial
    centroids and no empty cluster, the two compute the same iterations.
    """
    import faiss

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    data = x.detach().cpu().contiguous().numpy()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        km = faiss.Kmeans(
            x.shape[1],
            k,
            niter=max(1, iterations),
            seed=seed,
            spherical=spherical,
            max_points_per_centroid=len(x),
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(data, init_centroids=None if init is None else init.cpu().contiguous().numpy())
    finally:
        faiss.omp_set_num_threads(threads)
    return torch.from_numpy(km.centroids.copy()).to(x.device)


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
