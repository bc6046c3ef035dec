"""Clustering embeddings: k-means, a silhouette-chosen k, agreement with labels, 2-D maps.

Features are L2-normalised first, so k-means on them groups by cosine similarity (the
similarity retrieval uses) and silhouettes are measured with the cosine distance. Needs
scikit-learn (``pip install 'zoo-ssl[app]'``); UMAP is used when ``umap-learn`` is installed.

    result = zoo.cluster.cluster(features)            # k chosen by silhouette
    scores = zoo.cluster.agreement(labels, result.assignments)   # {"nmi": ..., "ari": ...}
    xy = zoo.cluster.project_2d(features, "pca")
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from zoo.errors import ZooError

__all__ = ["MAP_METHODS", "Clustering", "agreement", "available_maps", "cluster", "project_2d"]

MAP_METHODS = ("pca", "tsne", "umap")

T = TypeVar("T")

#: Candidate k when the silhouette picks it: 2 .. min(MAX_AUTO_K, N - 1).
MAX_AUTO_K = 10


@dataclass(frozen=True)
class Clustering:
    """k-means result: one cluster id per image (clusters numbered by decreasing size)."""

    assignments: np.ndarray
    k: int
    silhouette: float | None  # None when it is undefined (k = 1 or k = N)
    chosen_by: str  # "user" or "silhouette"
    silhouette_by_k: dict[int, float] = field(default_factory=dict)

    def members(self) -> list[np.ndarray]:
        """Image indices of each cluster, in cluster order."""
        return [np.flatnonzero(self.assignments == c) for c in range(self.k)]


def _sklearn() -> Any:
    try:
        import sklearn
    except ImportError:
        raise ZooError("clustering needs scikit-learn: pip install 'zoo-ssl[app]'") from None
    return sklearn


def _single_threaded(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` with scikit-learn's OpenMP/BLAS pools limited to one thread.

    The problems here are small (at most a few thousand points), where threads cost more than
    they give; on a busy machine (a server embedding other requests) OpenMP's spin-waiting
    made k-means 10x and t-SNE 100x slower than one thread.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        _sklearn()
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)

    return wrapper


def _normalized(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected features of shape (N, D) with N >= 1, got {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    raw = KMeans(n_clusters=k, n_init=5, random_state=seed).fit_predict(x)
    # Renumber by decreasing size, so "cluster 1" is the largest and results read the same
    # whatever order k-means happened to find the centroids in.
    sizes = np.bincount(raw, minlength=k)
    rank = np.empty(k, dtype=np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(k)
    return rank[raw]


def _silhouette(x: np.ndarray, assignments: np.ndarray) -> float | None:
    from sklearn.metrics import silhouette_score

    n_clusters = len(np.unique(assignments))
    if n_clusters < 2 or n_clusters >= len(x):
        return None
    return float(silhouette_score(x, assignments, metric="cosine"))


@_single_threaded
def cluster(features: np.ndarray, k: int | None = None, *, seed: int = 0) -> Clustering:
    """k-means on the normalised ``features``; ``k=None`` tries 2..10 and keeps the best silhouette.

    ``k`` is capped at the number of images (distinct features).
    """
    x = _normalized(features)
    distinct = len(np.unique(x.round(6), axis=0))
    if k is not None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(k, distinct)
        assignments = _kmeans(x, k, seed)
        return Clustering(assignments, k, _silhouette(x, assignments), "user")
    if distinct < 3:  # a silhouette needs 2 <= k < N
        assignments = _kmeans(x, distinct, seed)
        return Clustering(assignments, distinct, None, "silhouette")
    candidates = {}
    for kk in range(2, min(MAX_AUTO_K, distinct - 1) + 1):
        assignments = _kmeans(x, kk, seed)
        candidates[kk] = (_silhouette(x, assignments), assignments)
    scores = {kk: s for kk, (s, _) in candidates.items() if s is not None}
    best = max(scores, key=scores.__getitem__)
    return Clustering(candidates[best][1], best, scores[best], "silhouette", scores)


@_single_threaded
def agreement(labels: Sequence[Any], assignments: np.ndarray) -> dict[str, float]:
    """NMI and ARI of ``assignments`` against ground-truth ``labels`` (1.0 = the same partition;
    ARI ~0 and NMI near 0 for a random one)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    truth = [str(label) for label in labels]
    return {
        "nmi": float(normalized_mutual_info_score(truth, assignments)),
        "ari": float(adjusted_rand_score(truth, assignments)),
    }


def available_maps() -> list[str]:
    """The 2-D map methods usable here: PCA and t-SNE (scikit-learn), UMAP if installed."""
    methods = ["pca", "tsne"]
    try:
        import umap  # noqa: F401
    except ImportError:
        return methods
    return [*methods, "umap"]


@_single_threaded
def project_2d(features: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """(N, 2) coordinates of the normalised ``features`` for a scatter plot.

    ``"pca"``: the two main axes (deterministic, fast); ``"tsne"`` / ``"umap"``: neighbourhood
    preserving maps (perplexity / neighbour count shrink for small N).
    """
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map {method!r}; choose one of {', '.join(MAP_METHODS)}")
    x = _normalized(features)
    n = len(x)
    if n < 3:  # too few points for any projection to mean something: spread them on a line
        return np.stack([np.arange(n, dtype=np.float32), np.zeros(n, dtype=np.float32)], axis=1)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (n - 1) // 3)))
        return (
            TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
            .fit_transform(x)
            .astype(np.float32)
        )
    if "umap" not in available_maps():
        raise ZooError("the UMAP map needs umap-learn: pip install umap-learn")
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", random_state=seed)
    return reducer.fit_transform(x).astype(np.float32)
