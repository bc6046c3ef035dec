"""The page: a model picker, the Retrieve / Cluster / Compare tabs and the model card.

The buttons' events are also the named API endpoints (``/retrieve``, ``/cluster``,
``/compare``) that ``gradio_client`` calls; every heavy event shares one concurrency group,
so at most ``AppConfig.concurrency`` requests embed at once, whichever tab they come from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr
from zoo.app import cluster, retrieve
from zoo.app.config import AppConfig
from zoo.app.gallery import GallerySource
from zoo.app.models import ModelPool

import zoo
import zoo.cluster

CONCURRENCY_GROUP = "embed"
EXAMPLES = 6


def handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` for an event: progress bars (a model's first gallery index is built on
    first use) show in the page, and zoo's own errors (unknown model, unreadable gallery...)
    are shown as they are, since their messages say what to do. Any other error stays a
    generic one, its traceback in the server's log."""

    # Not functools.wraps: Gradio reads the signature, and must see `progress` here.
    def event(*args: Any, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Any:  # noqa: B008
        try:
            return fn(*args)
        except zoo.ZooError as e:
            raise gr.Error(str(e)) from None

    return event


def _examples(gallery: GallerySource) -> list[list[list[str]]]:
    """A few gallery images to try: the first of each class, else spread over the gallery."""
    seen, picks = set(), []
    for path, label in zip(gallery.files, gallery.labels, strict=True):
        if label is not None and label not in seen:
            seen.add(label)
            picks.append(path)
    if not picks:
        step = max(1, len(gallery.files) // EXAMPLES)
        picks = gallery.files[::step]
    return [[[str(p)]] for p in picks[:EXAMPLES]]


def create_app(config: AppConfig) -> gr.Blocks:
    """Build the demo; loads the first model and its gallery index (built and cached on the
    first start) before returning, so the first visitor does not wait for them."""
    gallery = GallerySource(config.gallery)
    extra = config.models or ((gallery.prebuilt.model,) if gallery.prebuilt else (zoo.DEFAULT_MODEL,))
    pool = ModelPool(gallery, extra, backend=config.backend)
    default = pool.names[0]
    pool.index(default)

    with gr.Blocks(
        title="zoo: retrieval and clustering", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(
            "# zoo: image retrieval and clustering\n"
            f"Gallery: {gallery.summary()}. Upload images to find their nearest gallery images,"
            " cluster a set of images, or compare models."
        )
        model = gr.Dropdown(pool.names, value=default, label="Model", elem_id="model")
        k = gr.Slider(1, config.max_k, value=5, step=1, label="Neighbours (k)", elem_id="k")

        with gr.Tab("Retrieve", elem_id="tab-retrieve"):
            files = gr.File(
                file_count="multiple",
                label=f"Query images (up to {config.max_query_images})",
                elem_id="retrieve-files",
            )
            gr.Examples(_examples(gallery), inputs=[files], label="Examples from the gallery")
            search = gr.Button("Find neighbours", variant="primary", elem_id="retrieve-button")
            prediction = gr.Markdown(elem_id="retrieve-prediction")
            neighbours = gr.Gallery(
                label="Each query, then its neighbours (cosine similarity · label)",
                columns=6,
                height="auto",
                object_fit="contain",
                elem_id="retrieve-gallery",
            )
            with gr.Accordion("Result as JSON", open=False):
                retrieve_json = gr.JSON()

        with gr.Tab("Cluster", elem_id="tab-cluster"):
            with gr.Row():
                source = gr.Radio(
                    [("Uploaded images", "uploads"), ("A sample of the gallery", "gallery")],
                    value="uploads",
                    label="Images",
                )
                sample = gr.Slider(
                    2,
                    config.max_gallery_sample,  # a sample larger than the gallery takes all of it
                    value=min(60, len(gallery.files)),
                    step=1,
                    label="Gallery sample size",
                    visible=False,
                )
            cluster_files = gr.File(
                file_count="multiple",
                label=f"Images to cluster (up to {config.max_cluster_images})",
                elem_id="cluster-files",
            )
            with gr.Row():
                clusters_k = gr.Slider(
                    0, cluster.MAX_CLUSTERS, value=0, step=1, label="k (0: pick by silhouette)"
                )
                projection = gr.Radio(zoo.cluster.available_maps(), value="pca", label="2-D map")
            run_cluster = gr.Button("Cluster", variant="primary", elem_id="cluster-button")
            cluster_summary = gr.Markdown(elem_id="cluster-summary")
            clusters = gr.Image(label="Clusters", type="filepath", format="webp", elem_id="clusters")
            scatter = gr.ScatterPlot(
                x="x", y="y", color="cluster", tooltip=["image", "label", "cluster"], label="Embedding map"
            )
            with gr.Accordion("Result as JSON", open=False):
                cluster_json = gr.JSON()

        with gr.Tab("Compare", elem_id="tab-compare"):
            compare_files = gr.File(
                file_count="multiple",
                label=f"Query images (up to {config.max_query_images})",
                elem_id="compare-files",
            )
            # The first model and those installed with zoo are ticked: others may need a download.
            ticked = list(dict.fromkeys([default, *pool.installed_photo_encoders()]))
            models = gr.CheckboxGroup(pool.names, value=ticked, label="Models")
            run_compare = gr.Button("Compare", variant="primary", elem_id="compare-button")
            comparison = gr.Markdown(elem_id="comparison")
            compare_gallery = gr.Gallery(
                label="One row per model: the query, then its neighbours",
                columns=6,
                height="auto",
                object_fit="contain",
                elem_id="compare-gallery",
            )
            with gr.Accordion("Result as JSON", open=False):
                compare_json = gr.JSON()

        with gr.Tab("Model card", elem_id="tab-card"):
            card = gr.Markdown(pool.card(default), elem_id="card")

        heavy = {"concurrency_id": CONCURRENCY_GROUP, "concurrency_limit": config.concurrency}
        search.click(
            handler(functools.partial(retrieve.retrieve, pool, config)),
            [files, model, k],
            [neighbours, prediction, retrieve_json],
            api_name="retrieve",
            **heavy,
        )
        run_cluster.click(
            handler(functools.partial(cluster.cluster_images, pool, config)),
            [cluster_files, source, sample, model, clusters_k, projection],
            [clusters, scatter, cluster_summary, cluster_json],
            api_name="cluster",
            **heavy,
        )
        run_compare.click(
            handler(functools.partial(retrieve.compare, pool, config)),
            [compare_files, models, k],
            [compare_gallery, comparison, compare_json],
            api_name="compare",
            **heavy,
        )
        model.change(handler(pool.card), [model], [card], api_name="card", **heavy)
        source.change(
            lambda source: (gr.File(visible=source == "uploads"), gr.Slider(visible=source == "gallery")),
            [source],
            [cluster_files, sample],
            queue=False,
            api_visibility="private",
        )
        # Rows of the result galleries are a query and its k neighbours. UI only, so the
        # API's /retrieve and /compare return a plain list of images.
        k.change(
            lambda k: (gr.Gallery(columns=k + 1), gr.Gallery(columns=k + 1)),
            [k],
            [neighbours, compare_gallery],
            queue=False,
            api_visibility="private",
        )
    return demo
