"""The Cluster tab: k-means on the embeddings of uploaded images or of a gallery sample.

Each cluster is shown as a row of thumbnails (all rows in one image); a 2-D map of the
embeddings (PCA, or t-SNE / UMAP) is coloured by cluster; when the images carry labels (a
gallery sample of a labelled gallery), NMI and ARI say how well the clusters recover them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from zoo.app.config import AppConfig
from zoo.app.models import ModelPool
from zoo.app.thumbs import gallery_image, rows_of_thumbnails, store, thumbnail
from zoo.app.uploads import read_uploads

import zoo.cluster

SOURCES = ("uploads", "gallery")
MAX_CLUSTERS = 20  # a larger k has no readable strips


def _check(source: str, k: Any, sample_size: Any, projection: str, config: AppConfig) -> tuple[int, int]:
    if source not in SOURCES:
        raise gr.Error(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if projection not in zoo.cluster.available_maps():
        raise gr.Error(f"map must be one of {', '.join(zoo.cluster.available_maps())}, got {projection!r}")
    try:
        k, sample_size = int(k), int(sample_size)
    except (TypeError, ValueError):
        raise gr.Error("k and the sample size must be whole numbers") from None
    if not 0 <= k <= MAX_CLUSTERS:
        raise gr.Error(f"k must be between 1 and {MAX_CLUSTERS}, or 0 to pick it by silhouette; got {k}")
    if source == "gallery" and not 2 <= sample_size <= config.max_gallery_sample:
        raise gr.Error(
            f"the gallery sample must hold 2 to {config.max_gallery_sample} images, got {sample_size}"
        )
    return k, sample_size


def _gallery_sample(pool: ModelPool, model: str, size: int) -> tuple[np.ndarray, list, list[str], list]:
    """An evenly spaced subset of the gallery: every class keeps its share (galleries are
    stored class by class), and the same request always gets the same images."""
    index = pool.index(model)
    ids = np.unique(np.linspace(0, len(index) - 1, min(size, len(index))).round().astype(int))
    images = [gallery_image(index.root / index.paths[i]) for i in ids]
    return index.features[ids], images, [index.paths[i] for i in ids], [index.labels[i] for i in ids]


def cluster_images(
    pool: ModelPool,
    config: AppConfig,
    files: Any,
    source: str,
    sample_size: Any,
    model: str,
    k: Any,
    projection: str,
) -> tuple[str, pd.DataFrame, str, dict[str, Any]]:
    """Cluster the uploads (``source="uploads"``) or a gallery sample; ``k=0`` picks k by silhouette."""
    k, sample_size = _check(source, k, sample_size, projection, config)
    pool.check(model)
    skipped: list[dict[str, str]] = []
    if source == "uploads":
        uploads = read_uploads(files, limit=config.max_cluster_images)
        features = pool.embed(model, [u.image for u in uploads.images])
        images = [thumbnail(u.image) for u in uploads.images]
        names = [u.name for u in uploads.images]
        labels: list = [None] * len(names)
        skipped = uploads.skipped
    else:
        features, images, names, labels = _gallery_sample(pool, model, sample_size)

    result = zoo.cluster.cluster(features, k or None)
    xy = zoo.cluster.project_2d(features, projection)
    labelled = all(label is not None for label in labels) and len(set(labels)) > 1
    scores = zoo.cluster.agreement(labels, result.assignments) if labelled else None

    rows = []
    for c, members in enumerate(result.members()):
        caption = f"cluster {c + 1}: {len(members)} image{'s' * (len(members) != 1)}"
        if labelled:
            label, count = Counter(labels[i] for i in members).most_common(1)[0]
            caption += f", {count / len(members):.0%} {label}"
        rows.append((caption, [images[i] for i in members]))
    clusters = store().put(rows_of_thumbnails(rows))
    points = pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "cluster": [f"cluster {c + 1}" for c in result.assignments],
            "image": names,
            "label": [label or "" for label in labels],
        }
    ).iloc[np.argsort(result.assignments, kind="stable")]  # the legend lists clusters in order
    summary = _summary(result, len(names), scores, source)
    payload = {
        "model": model,
        "k": result.k,
        "chosen_by": result.chosen_by,
        "silhouette": None if result.silhouette is None else round(result.silhouette, 4),
        "silhouette_by_k": {str(kk): round(s, 4) for kk, s in result.silhouette_by_k.items()},
        "map": projection,
        "images": [
            {"name": n, "cluster": int(c) + 1, "label": label, "x": float(p[0]), "y": float(p[1])}
            for n, c, label, p in zip(names, result.assignments, labels, xy, strict=True)
        ],
        "nmi": None if scores is None else round(scores["nmi"], 4),
        "ari": None if scores is None else round(scores["ari"], 4),
        "skipped": skipped,
    }
    return clusters, points, summary, payload


def _summary(result: zoo.cluster.Clustering, n: int, scores: dict[str, float] | None, source: str) -> str:
    how = "chosen by you"
    if result.chosen_by == "silhouette":
        tried = ", ".join(f"{k}: {s:.2f}" for k, s in result.silhouette_by_k.items())
        how = f"picked by silhouette ({tried})" if tried else "picked by silhouette"
    text = f"**{result.k} clusters** of {n} images, k {how}."
    if result.silhouette is not None:
        text += f" Silhouette (cosine): {result.silhouette:.3f}."
    if scores is not None:
        text += f" Against the gallery labels: **NMI {scores['nmi']:.3f}**, **ARI {scores['ari']:.3f}**."
    elif source == "uploads":
        text += " Uploaded images carry no labels, so there is no NMI/ARI."
    return text
