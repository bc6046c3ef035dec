"""The Retrieve and Compare tabs: the gallery images nearest to uploaded queries.

Each query's row in the result gallery is the query itself followed by its ``k`` nearest
gallery images, captioned with cosine similarity and label; a weighted vote of the
neighbours' labels (:func:`zoo.index.knn_vote`) is the kNN prediction. Compare runs the same
queries through several models, one row per model, so their neighbours can be read side by
side. Both also return the result as JSON, which is what API clients use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.app.config import AppConfig
from zoo.app.errors import user_error
from zoo.app.models import ModelPool, Report
from zoo.app.predict import cell as head_prediction
from zoo.app.predict import classify, markdown_cell
from zoo.app.thumbs import label_tile, store, thumbnail
from zoo.app.uploads import Upload, read_uploads

import zoo.index

GalleryItem = tuple[str, str]  # (image file, caption)


def whole_number(value: Any, what: str, low: int, high: int, *, hint: str = "") -> int:
    """``value`` as an int in ``[low, high]``, else a visitor error saying what is expected.

    The page's sliders only send whole numbers in range; API clients can send anything."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= high:
        raise user_error(f"{what} must be a whole number from {low} to {high}{hint}, got {value!r}")
    return number


def check_k(k: Any, config: AppConfig) -> int:
    return whole_number(k, "k (the number of neighbours)", 1, config.max_k)


def _query_result(pool: ModelPool, upload: Upload, hits: list[zoo.index.Neighbour]) -> dict[str, Any]:
    # The vote counts folder labels (two folders may share a name); the result shows names.
    vote = zoo.index.knn_vote(hits)
    name = pool.gallery.name
    return {
        "name": upload.name,
        "prediction": name(vote.label) if vote else None,
        "confidence": round(vote.confidence, 4) if vote else None,
        # "image", not "path": gradio_client would take a {"path": ...} dict for a file to fetch.
        "neighbours": [
            {"image": h.path, "label": name(h.label), "similarity": round(h.similarity, 4)} for h in hits
        ],
    }


def _search(
    pool: ModelPool, model: str, uploads: list[Upload], k: int, report: Report | None = None
) -> list[dict[str, Any]]:
    index = pool.index(model, report=report)
    features = pool.embed(model, [u.image for u in uploads])
    hits = index.neighbours(features, k)
    return [_query_result(pool, u, h) for u, h in zip(uploads, hits, strict=True)]


def _row(
    pool: ModelPool, model: str, upload: Upload, result: dict[str, Any], label: str
) -> list[GalleryItem]:
    """One gallery row: the query, then its neighbours."""
    root = pool.index(model).root
    neighbours = [
        (
            store().gallery_thumbnail(root / n["image"]),
            f"{n['similarity']:.3f} · {n['label'] or Path(n['image']).name}",
        )
        for n in result["neighbours"]
    ]
    return [(store().put(thumbnail(upload.image)), label), *neighbours]


def _prediction(result: dict[str, Any]) -> str:
    if result["prediction"] is None:  # an unlabelled gallery: the nearest image says most
        top = result["neighbours"][0]
        return f"nearest: {markdown_cell(top['image'])} ({top['similarity']:.3f})"
    return f"**{markdown_cell(result['prediction'])}** ({result['confidence']:.0%} of the vote)"


def retrieve(
    pool: ModelPool, config: AppConfig, files: Any, model: Any, k: Any, progress: Report | None = None
) -> tuple[list[GalleryItem], str, dict[str, Any]]:
    """The Retrieve tab: neighbours of each uploaded image by ``model``."""
    k = check_k(k, config)
    pool.check(model)
    uploads = read_uploads(files, limit=config.max_query_images)
    results = _search(pool, model, uploads.images, k, progress)
    # A fine-tuned folder (zoo finetune) also has a trained head: its prediction goes beside the vote.
    heads = classify(model, uploads.images, pool.backend, pool.gallery.names)
    for result, head in zip(results, heads or [], strict=False):
        result["classifier"] = head
    items = [
        item
        for upload, result in zip(uploads.images, results, strict=True)
        for item in _row(pool, model, upload, result, f"query: {upload.name}")
    ]
    head_column = " classifier prediction |" if heads else ""
    lines = [f"| query | kNN prediction (k={k}) |{head_column} nearest gallery image |", "|---|---|---|"]
    lines[1] += "---|" if heads else ""
    for r in results:
        top = r["neighbours"][0]
        head_cell = f" {head_prediction(r['classifier'])} |" if heads else ""
        nearest = f"{markdown_cell(top['image'])} ({top['similarity']:.3f})"
        lines.append(f"| {markdown_cell(r['name'])} | {_prediction(r)} |{head_cell} {nearest} |")
    payload = {
        "model": model,
        "k": k,
        "gallery_images": len(pool.index(model)),
        "class_names": pool.gallery.names,
        "queries": results,
        "skipped": uploads.skipped,
    }
    return items, "\n".join(lines), payload


def compare(
    pool: ModelPool,
    config: AppConfig,
    files: Any,
    models: Any,
    k: Any,
    progress: Report | None = None,
) -> tuple[list[GalleryItem], str, dict[str, Any]]:
    """The Compare tab: the same queries through each of ``models``, one row per model."""
    k = check_k(k, config)
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, (list, tuple, type(None))):
        raise user_error(f"models must be a list of model names, got {models!r}")
    models = list(dict.fromkeys(models or []))
    if not models:
        raise user_error("Choose at least one model to compare (two or more to see them side by side).")
    if len(models) > config.max_compare_models:
        raise user_error(
            f"Too many models: {len(models)} chosen, at most {config.max_compare_models} per comparison."
        )
    for model in models:
        pool.check(model)
    uploads = read_uploads(files, limit=config.max_query_images)
    by_model = {model: _search(pool, model, uploads.images, k, progress) for model in models}
    items = [
        item
        for q, upload in enumerate(uploads.images)
        for model in models
        for item in [
            (store().put(label_tile(model)), model),
            *_row(pool, model, upload, by_model[model][q], f"query: {upload.name}"),
        ]
    ]
    lines = ["| query | " + " | ".join(map(markdown_cell, models)) + " |", "|---" * (len(models) + 1) + "|"]
    for q, upload in enumerate(uploads.images):
        row = [markdown_cell(upload.name), *(_prediction(by_model[m][q]) for m in models)]
        lines.append("| " + " | ".join(row) + " |")
    overlap = _overlap(by_model, len(uploads.images))
    if overlap:
        lines.append("")
        lines += [
            f"- {pair}: {share:.0%} of the top-{k} neighbours in common" for pair, share in overlap.items()
        ]
    payload = {
        "k": k,
        "models": {m: by_model[m] for m in models},
        "overlap": overlap,
        "skipped": uploads.skipped,
    }
    return items, "\n".join(lines), payload


def _overlap(by_model: dict[str, list[dict[str, Any]]], queries: int) -> dict[str, float]:
    """Mean share of neighbours two models agree on, for each pair of models."""
    names = list(by_model)
    shares = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            per_query = []
            for q in range(queries):
                na = {n["image"] for n in by_model[a][q]["neighbours"]}
                nb = {n["image"] for n in by_model[b][q]["neighbours"]}
                per_query.append(len(na & nb) / max(len(na), 1))
            shares[f"{a} vs {b}"] = round(sum(per_query) / queries, 4)
    return shares
