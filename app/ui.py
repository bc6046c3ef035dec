"""The page: a model picker, the Retrieve / Cluster / Compare tabs, the model card and the leaderboard.

One function builds each tab (``retrieve_tab``, ``cluster_tab``, ...) from the shared
:class:`Page` (the server's pool of models, its settings, and the page-wide model picker and
k slider); a new tab is one more such function, called in :func:`create_app`.

The buttons' events are also the named API endpoints (``/retrieve``, ``/cluster``,
``/compare``, ``/card``, ``/leaderboard``) that ``gradio_client`` calls; every heavy event shares one
concurrency group, so at most ``AppConfig.concurrency`` requests embed at once, whichever tab
they come from. Events are wrapped by :func:`zoo.app.errors.handler`: what a visitor did
wrong is a clear message, what failed on the server is logged, never shown.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from zoo.app import cluster, leaderboard, retrieve
from zoo.app.config import AppConfig
from zoo.app.errors import handler
from zoo.app.gallery import GallerySource
from zoo.app.models import ModelPool
from zoo.app.thumbs import store

import zoo
import zoo.cluster
from zoo.registry import is_registered

__all__ = ["CONCURRENCY_GROUP", "Page", "create_app", "handler"]

CONCURRENCY_GROUP = "embed"
EXAMPLES = 12  # example thumbnails at most: one per class, else spread over the gallery
MAX_COLUMNS = 11  # result rows wrap beyond a query and 10 neighbours
# Galleries as tall as their rows: Gradio's "auto" height reserves 450 px, empty under one row.
FIT = "fit-content"


@dataclass
class Page:
    """What every tab builds on."""

    config: AppConfig
    pool: ModelPool
    default: str  # the model selected at start
    model: gr.Dropdown
    k: gr.Slider

    @property
    def gallery(self) -> GallerySource:
        return self.pool.gallery

    @property
    def heavy(self) -> dict[str, Any]:
        """Event options for work that embeds images (one shared queue)."""
        return {"concurrency_id": CONCURRENCY_GROUP, "concurrency_limit": self.config.concurrency}


def checked_by_the_app(*components: gr.components.Component) -> None:
    """Hand these inputs' values to the events as sent.

    Gradio checks a slider's or a dropdown's value before the event runs, and answers a bad
    one (an API client's ``k="abc"``) with a traceback in the log and a message that speaks to
    the operator. The events check these values themselves, with a message for the visitor.
    """
    for component in components:
        component.preprocess = lambda payload: payload  # type: ignore[method-assign]


def columns(k: Any) -> int:
    """Result gallery columns: a row is a query and its k neighbours, wrapped when k is large."""
    try:
        return max(1, min(int(k) + 1, MAX_COLUMNS))
    except (TypeError, ValueError):
        return MAX_COLUMNS


def _example_picks(gallery: GallerySource) -> list[tuple[Path, str, str]]:
    """A few gallery images to try, with captions and thumbnails: the first readable image of
    each class, else images spread over the gallery. Unreadable files (which the index skips
    with a warning) are passed over, so one broken file does not stop the app from starting."""
    picks: list[tuple[Path, str, str]] = []
    done: set[str] = set()

    def add(path: Path, caption: str) -> bool:
        try:
            picks.append((path, caption, store().gallery_thumbnail(path)))
        except zoo.ImageError:
            return False
        return True

    for path, label in zip(gallery.files, gallery.labels, strict=True):
        if label is not None and label not in done and add(path, str(gallery.name(label))):
            done.add(label)
        if len(picks) == EXAMPLES:
            return picks
    if not picks:
        step = max(1, len(gallery.files) // EXAMPLES)
        for path in gallery.files[::step]:
            if len(picks) == EXAMPLES:
                break
            add(path, path.name)
    return picks


def _example_copies(picks: list[tuple[Path, str, str]]) -> list[str]:
    """Copies of the example images in the app's temporary folder, under their own names:
    Gradio serves files only from there, and the gallery may be anywhere on the server."""
    folder = store().folder / "examples"
    copies = []
    for i, (path, _, _) in enumerate(picks):
        copy = folder / str(i) / path.name
        if not copy.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        copies.append(str(copy))
    return copies


def header(page: Page) -> None:
    gr.Markdown(
        "# zoo: image retrieval and clustering\n"
        f"Searching {page.gallery.summary()}. Upload images to find their nearest gallery images,"
        " cluster a set of images, or compare models.",
        elem_id="header",
    )


def retrieve_tab(page: Page) -> dict[str, Any]:
    with gr.Tab("Retrieve", elem_id="tab-retrieve"):
        files = gr.File(
            file_count="multiple",
            label=f"Query images (up to {page.config.max_query_images})",
            elem_id="retrieve-files",
        )
        picks = _example_picks(page.gallery)
        copies = _example_copies(picks)
        examples = gr.Gallery(
            [(thumb, caption) for _, caption, thumb in picks],
            label="Examples from the gallery: click one to search with it",
            columns=8,  # small thumbnails, whatever the number of classes
            fit_columns=False,
            height=FIT,
            object_fit="cover",
            allow_preview=False,
            elem_id="retrieve-examples",
        )
        search = gr.Button("Find neighbours", variant="primary", elem_id="retrieve-button")
        prediction = gr.Markdown(elem_id="retrieve-prediction")
        neighbours = gr.Gallery(
            label="Each query, then its neighbours (cosine similarity · class)",
            columns=columns(5),
            height=FIT,
            object_fit="contain",
            elem_id="retrieve-gallery",
        )
        with gr.Accordion("Result as JSON", open=False):
            retrieve_json = gr.JSON()

    run = handler(functools.partial(retrieve.retrieve, page.pool, page.config), "/retrieve")
    search.click(
        run,
        [files, page.model, page.k],
        [neighbours, prediction, retrieve_json],
        api_name="retrieve",
        **page.heavy,
    )

    def pick(event: gr.SelectData) -> list[str]:
        return [copies[event.index]]

    examples.select(pick, None, [files], queue=False, api_visibility="private").then(
        run, [files, page.model, page.k], [neighbours, prediction, retrieve_json], **page.heavy
    )
    return {"files": files, "gallery": neighbours, "prediction": prediction, "json": retrieve_json}


def cluster_tab(page: Page) -> dict[str, Any]:
    config = page.config
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
                value=min(60, len(page.gallery.files)),
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
                0,
                cluster.MAX_CLUSTERS,
                value=0,
                step=1,
                label="k (0: pick by silhouette)",
                elem_id="cluster-k",
            )
            projection = gr.Radio(zoo.cluster.available_maps(), value="pca", label="2-D map")
        run_cluster = gr.Button("Cluster", variant="primary", elem_id="cluster-button")
        cluster_summary = gr.Markdown(elem_id="cluster-summary")
        clusters = gr.Image(label="Clusters", type="filepath", format="webp", elem_id="clusters")
        scatter = gr.ScatterPlot(
            x="x",
            y="y",
            color="cluster",
            color_map=cluster.colour_map(),
            tooltip=["image", "label", "cluster"],
            label="Embedding map",
            elem_id="cluster-map",
        )
        with gr.Accordion("Result as JSON", open=False):
            cluster_json = gr.JSON()

    checked_by_the_app(source, sample, clusters_k, projection)
    run_cluster.click(
        handler(functools.partial(cluster.cluster_images, page.pool, config), "/cluster"),
        [cluster_files, source, sample, page.model, clusters_k, projection],
        [clusters, scatter, cluster_summary, cluster_json],
        api_name="cluster",
        **page.heavy,
    ).success(cluster.redraw_map, [cluster_json], [scatter], queue=False, api_visibility="private")
    source.change(
        lambda source: (gr.File(visible=source == "uploads"), gr.Slider(visible=source == "gallery")),
        [source],
        [cluster_files, sample],
        queue=False,
        api_visibility="private",
    )
    return {"files": cluster_files, "json": cluster_json}


def compare_tab(page: Page) -> dict[str, Any]:
    pool = page.pool
    with gr.Tab("Compare", elem_id="tab-compare"):
        compare_files = gr.File(
            file_count="multiple",
            label=f"Query images (up to {page.config.max_query_images})",
            elem_id="compare-files",
        )
        # The models that run now come first; picking one that is not downloads it.
        ticked = list(dict.fromkeys([page.default, *pool.installed_photo_encoders()]))
        models = gr.Dropdown(
            pool.choices(),
            value=ticked[: page.config.max_compare_models],
            multiselect=True,
            max_choices=page.config.max_compare_models,
            label="Models to compare (those that run now are listed first)",
            elem_id="compare-models",
        )
        run_compare = gr.Button("Compare", variant="primary", elem_id="compare-button")
        comparison = gr.Markdown(elem_id="comparison")
        compare_gallery = gr.Gallery(
            label="One row per model and query: the model, the query, then its neighbours",
            columns=columns(5) + 1,
            height=FIT,
            object_fit="contain",
            elem_id="compare-gallery",
        )
        with gr.Accordion("Result as JSON", open=False):
            compare_json = gr.JSON()

    checked_by_the_app(models)
    run_compare.click(
        handler(functools.partial(retrieve.compare, pool, page.config), "/compare"),
        [compare_files, models, page.k],
        [compare_gallery, comparison, compare_json],
        api_name="compare",
        **page.heavy,
    )
    return {"files": compare_files, "gallery": compare_gallery, "json": compare_json}


def card_tab(page: Page) -> dict[str, Any]:
    with gr.Tab("Model card", elem_id="tab-card"):
        card = gr.Markdown(page.pool.card(page.default), elem_id="card")
    page.model.change(handler(page.pool.card, "/card"), [page.model], [card], api_name="card", **page.heavy)
    return {"card": card}


def create_app(config: AppConfig) -> gr.Blocks:
    """Build the demo; loads the first model and its gallery index (built and cached on the
    first start) before returning, so the first visitor does not wait for them."""
    gallery = GallerySource(config.gallery)
    prebuilt = gallery.prebuilt if not config.models else None  # an index that names its model
    if prebuilt is not None and not is_registered(prebuilt.model):
        raise zoo.ZooError(
            f"{config.gallery}: an index of {prebuilt.model!r}, which is not a registered name (it was"
            " built from a model folder or file); start with --model PATH of that model"
        )
    extra = config.models or ((prebuilt.model,) if prebuilt else (zoo.DEFAULT_MODEL,))
    pool = ModelPool(gallery, extra, backend=config.backend)
    default = pool.names[0]
    if prebuilt is not None and prebuilt.identity.fingerprint != pool.model(default).identity.fingerprint:
        # A fine-tuned or re-saved folder keeps its registry name, not its weights: serving the
        # registry's would quietly re-index the gallery with other features. (Only another image
        # pipeline, same weights: the gallery is re-embedded, as for any model.)
        raise zoo.ZooError(
            f"{config.gallery}: an index of {prebuilt.model!r} built from other weights than the"
            " registry's (a fine-tuned or re-saved folder, or an older release); start with --model"
            " PATH of the model it was built from, or rebuild it with `zoo index build`"
        )
    pool.index(default)

    with gr.Blocks(
        title="zoo: retrieval and clustering", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        model = gr.Dropdown(pool.choices(), value=default, label="Model", elem_id="model", render=False)
        k = gr.Slider(1, config.max_k, value=5, step=1, label="Neighbours (k)", elem_id="k", render=False)
        page = Page(config, pool, default, model, k)
        header(page)
        model.render()
        k.render()
        checked_by_the_app(model, k)

        retrieved = retrieve_tab(page)
        cluster_tab(page)
        compared = compare_tab(page)
        card_tab(page)
        leaderboard.leaderboard_tab(page)

        # Rows of the result galleries are a query and its k neighbours. UI only, so the
        # API's /retrieve and /compare return a plain list of images.
        k.change(
            # A Compare row starts with a tile naming its model.
            lambda k: (gr.Gallery(columns=columns(k)), gr.Gallery(columns=columns(k) + 1)),
            [k],
            [retrieved["gallery"], compared["gallery"]],
            queue=False,
            api_visibility="private",
        )
    return demo
