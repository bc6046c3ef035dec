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
from zoo.app.errors import user_error
from zoo.app.models import ModelPool, Report
from zoo.app.retrieve import whole_number
from zoo.app.thumbs import gallery_image, rows_of_thumbnails, store, thumbnail
from zoo.app.uploads import read_uploads

import zoo.cluster

SOURCES = ("uploads", "gallery")
MAX_CLUSTERS = 20  # a larger k has no readable strips
# One colour per cluster, the same cluster always the same colour (Tableau 20, reordered so
# the first ten are the most distinct).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def _check(source: Any, k: Any, sample_size: Any, projection: Any, config: AppConfig) -> tuple[int, int]:
    if source not in SOURCES:
        raise user_error(f"images must come from one of {', '.join(SOURCES)}, got {source!r}")
    if projection not in zoo.cluster.available_maps():
        raise user_error(f"map must be one of {', '.join(zoo.cluster.available_maps())}, got {projection!r}")
    k = whole_number(k, "k (the number of clusters)", 0, MAX_CLUSTERS, hint=" (0 picks it by silhouette)")
    if source == "gallery":
        sample_size = whole_number(sample_size, "the gallery sample size", 2, config.max_gallery_sample)
    return k, sample_size


def cluster_name(c: int) -> str:
    return f"cluster {c + 1}"


def colour_map() -> dict[str, str]:
    """The map's colour of every cluster a request can make (set when the page is built)."""
    return {cluster_name(c): PALETTE[c % len(PALETTE)] for c in range(MAX_CLUSTERS)}


def redraw_map(payload: dict[str, Any] | None) -> Any:
    """A second update of the map, sent after a result has been drawn: its legend lists this
    result's clusters, and changing it makes the page rebuild the plot.

    The page builds the plot's colour scale from the clusters of the data it has when it
    builds it, and a new result only replaces the data: after a first map of 2 clusters, the
    points of clusters 3 and up of a second result had no colour, so were invisible. Props
    sent with the result arrive before its data, so they cannot help; this follow-up event
    arrives after.
    """
    k = int((payload or {}).get("k") or 0)
    return gr.ScatterPlot(colors_in_legend=[cluster_name(c) for c in range(k)])


def _gallery_sample(
    pool: ModelPool, model: str, size: int, report: Report | None
) -> tuple[np.ndarray, list, list[str], list]:
    """An evenly spaced subset of the gallery: every class keeps its share (galleries are
    stored class by class), and the same request always gets the same images."""
    index = pool.index(model, report=report)
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
    progress: Report | None = None,
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
        features, images, names, labels = _gallery_sample(pool, model, sample_size, progress)

    result = zoo.cluster.cluster(features, k or None)
    xy = zoo.cluster.project_2d(features, projection)
    labelled = all(label is not None for label in labels) and len(set(labels)) > 1
    scores = zoo.cluster.agreement(labels, result.assignments) if labelled else None

    rows = []
    for c, members in enumerate(result.members()):
        caption = f"cluster {c + 1}: {len(members)} image{'s' * (len(members) != 1)}"
        if labelled:
            label, count = Counter(labels[i] for i in members).most_common(1)[0]
            caption += f", {count / len(members):.0%} {pool.gallery.name(label)}"
        rows.append((caption, [images[i] for i in members]))
    clusters = store().put(rows_of_thumbnails(rows))
    points = pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "cluster": [cluster_name(c) for c in result.assignments],
            "image": names,
            "label": [pool.gallery.name(label) or "" for label in labels],
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
            {
                "name": n,
                "cluster": int(c) + 1,
                "label": pool.gallery.name(label),
                "x": float(p[0]),
                "y": float(p[1]),
            }
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
