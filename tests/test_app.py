"""The Gradio demo over HTTP, as API users see it: a real server on 127.0.0.1, gradio_client.

The gallery is 8 Imagenette val images of each of three unlike classes (tench, church, golf
ball), in folders named by WordNet id as ImageNet's are; other images of the same classes are
the queries and the images to cluster. The demo shows the classes' names, not the ids.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from _servers import free_port
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from zoo.app import labels
from zoo.app.gallery import BUNDLED, GallerySource

import zoo
import zoo.cluster

# Gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:gradio\.")

CLASSES = {"n01440764": "tench", "n03028079": "church", "n03445777": "golf ball"}
GALLERY_PER_CLASS = 8
MAX_QUERY_IMAGES = 4


def make_gallery(data_root: Path, folder: Path) -> Path:
    """An ImageFolder gallery of symlinks to the first images of each class (made once)."""
    if not folder.is_dir():
        for wnid in CLASSES:
            (folder / wnid).mkdir(parents=True)
            for f in sorted((data_root / "imagenette" / "val" / wnid).iterdir())[:GALLERY_PER_CLASS]:
                (folder / wnid / f.name).symlink_to(f)
    return folder


def held_out(data_root: Path, wnid: str, n: int) -> list[Path]:
    """Images of class ``wnid`` that are not in the gallery."""
    files = sorted((data_root / "imagenette" / "val" / wnid).iterdir())
    return files[GALLERY_PER_CLASS : GALLERY_PER_CLASS + n]


@contextmanager
def running_app(gallery: Path, **config: object) -> Iterator[str]:
    """Serve the demo on a free loopback port for the duration of the block; yields its URL."""
    from zoo.app import AppConfig, launch

    settings = {"gallery": gallery, "port": free_port(), **config}
    demo, url = launch(AppConfig(**settings), block=False, quiet=True)  # type: ignore[arg-type]
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def gallery(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gallery(data_root, tmp_path_factory.getbasetemp() / "app-gallery")


@pytest.fixture(scope="module")
def folder_model(default_encoder, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default encoder saved as a zoo folder: a second model to serve and compare."""
    return str(default_encoder.save(tmp_path_factory.mktemp("zoo-folder")))


@pytest.fixture(scope="module")
def server(gallery: Path, folder_model: str) -> Iterator[str]:
    models = (zoo.DEFAULT_MODEL, folder_model)
    with running_app(gallery, models=models, max_query_images=MAX_QUERY_IMAGES, max_file_size="1mb") as url:
        yield url


def connect(url: str) -> Client:
    # httpx's default 5 s read timeout is too tight for a busy 2-core CI machine.
    return Client(url, verbose=False, httpx_kwargs={"timeout": 60})


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[Client]:
    client = connect(server)
    yield client
    client.close()


def retrieve(client: Client, files: list[Path], k: int = 5) -> dict:
    _, _, result = client.predict(
        [handle_file(str(f)) for f in files], zoo.DEFAULT_MODEL, k, api_name="/retrieve"
    )
    return result


def test_named_endpoints(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/retrieve", "/cluster", "/compare", "/leaderboard"} <= set(endpoints)


def test_retrieve_sorted_neighbours_and_the_query_finds_itself(client: Client, gallery: Path) -> None:
    queries = [sorted((gallery / wnid).iterdir())[3] for wnid in CLASSES]
    images, table, result = client.predict(
        [handle_file(str(q)) for q in queries], zoo.DEFAULT_MODEL, 5, api_name="/retrieve"
    )
    assert result["k"] == 5 and result["gallery_images"] == 3 * GALLERY_PER_CLASS
    assert len(images) == 3 * (1 + 5)  # per query: the query, then its neighbours
    for query, wnid, found in zip(queries, CLASSES, result["queries"], strict=True):
        sims = [n["similarity"] for n in found["neighbours"]]
        assert len(sims) == 5 and sims == sorted(sims, reverse=True)
        top = found["neighbours"][0]
        assert top["image"] == f"{wnid}/{query.name}" and top["similarity"] > 0.999
        assert found["prediction"] == CLASSES[wnid]
        assert {n["label"] for n in found["neighbours"]} <= set(CLASSES.values())
    assert "kNN prediction" in table and "**church**" in table and "n03028079" not in table.split("|")[2]
    assert result["class_names"] == CLASSES


def test_retrieve_held_out_images_predicts_their_class(client: Client, data_root: Path) -> None:
    queries = [held_out(data_root, wnid, 1)[0] for wnid in CLASSES]
    result = retrieve(client, queries, k=7)
    assert [q["prediction"] for q in result["queries"]] == list(CLASSES.values())
    # k above the gallery size returns the whole gallery, still sorted.
    everything = retrieve(client, queries[:1], k=40)["queries"][0]["neighbours"]
    assert len(everything) == 3 * GALLERY_PER_CLASS


def test_cluster_three_classes_well_above_chance(client: Client, data_root: Path) -> None:
    files = [f for wnid in CLASSES for f in held_out(data_root, wnid, 6)]
    truth = [wnid for wnid in CLASSES for _ in range(6)]
    clusters, plot, summary, result = client.predict(
        [handle_file(str(f)) for f in files], "uploads", 24, zoo.DEFAULT_MODEL, 0, "pca", api_name="/cluster"
    )
    assignments = [image["cluster"] for image in result["images"]]
    assert [image["name"] for image in result["images"]] == [f.name for f in files]
    scores = zoo.cluster.agreement(truth, np.array(assignments))
    assert scores["nmi"] > 0.5, (scores, summary)  # chance is ~0 for 3 balanced classes
    assert result["chosen_by"] == "silhouette" and Path(clusters).is_file()
    assert len(plot["data"]) == len(files)


def test_cluster_gallery_sample_scores_against_labels(client: Client) -> None:
    _, _, summary, result = client.predict(
        None, "gallery", 24, zoo.DEFAULT_MODEL, 3, "tsne", api_name="/cluster"
    )
    assert result["k"] == 3 and result["chosen_by"] == "user"
    assert result["nmi"] > 0.5 and result["ari"] > 0.3
    assert "NMI" in summary


def test_compare_a_registered_model_and_a_zoo_folder(
    client: Client, gallery: Path, folder_model: str
) -> None:
    query = sorted((gallery / "n03028079").iterdir())[0]
    models = [zoo.DEFAULT_MODEL, folder_model]
    images, table, result = client.predict([handle_file(str(query))], models, 3, api_name="/compare")
    assert len(images) == 2 * (2 + 3)  # a row per model: its name, the query, then its neighbours
    assert all(m in table for m in models)
    for model in models:
        assert result["models"][model][0]["prediction"] == "church"
    assert result["overlap"] == {f"{zoo.DEFAULT_MODEL} vs {folder_model}": 1.0}  # the same weights
    with pytest.raises(AppError, match="'no-such-model' is not served here"):
        client.predict([handle_file(str(query))], ["no-such-model"], 3, api_name="/compare")


def test_model_cards(client: Client, folder_model: str) -> None:
    card = client.predict(zoo.DEFAULT_MODEL, api_name="/card")
    assert card.startswith(f"# {zoo.DEFAULT_MODEL}") and "EfficientNet" in card
    assert client.predict(folder_model, api_name="/card") == card  # the folder carries its record


# --------------------------------------------------------------------------------------------
# Bad uploads: a readable message, or the right result; the server goes on serving.
# --------------------------------------------------------------------------------------------


def _bomb(_: Image.Image, path: Path) -> None:
    """A tiny PNG that declares 30000 x 30000 pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(png))


def _truncated(image: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: buf.tell() // 2])


def _gray16(image: Image.Image, path: Path) -> None:
    Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257).save(path)


def _rgba(image: Image.Image, path: Path) -> None:
    rgba = image.convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, image.width // 10, image.height))  # a transparent margin
    rgba.save(path)


def _exif_rotated(image: Image.Image, path: Path) -> None:
    """Pixels stored sideways with EXIF orientation 6 ("rotate 90 CW to display"), as phones do."""
    exif = Image.Exif()
    exif[0x0112] = 6
    image.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)


BAD = {
    "notes.txt": (lambda _, p: p.write_text("not an image"), "not a readable image"),
    "text.jpg": (lambda _, p: p.write_text("not an image either"), "not a readable image"),
    "empty.png": (lambda _, p: p.write_bytes(b""), "not a readable image"),
    "truncated.jpg": (_truncated, "cannot decode"),
    "bomb.png": (_bomb, "decompression bomb"),
}
HANDLED: dict[str, Callable[[Image.Image, Path], None]] = {
    "gray16.png": _gray16,
    "cmyk.jpg": lambda im, p: im.convert("CMYK").save(p, quality=95),
    "rgba.png": _rgba,
    "rotated.jpg": _exif_rotated,
}


def _still_serving(client: Client, gallery: Path) -> None:
    query = sorted((gallery / "n03445777").iterdir())[0]
    assert retrieve(client, [query], k=1)["queries"][0]["neighbours"][0]["similarity"] > 0.999


@pytest.mark.parametrize("name", list(BAD))
def test_bad_upload_gets_a_readable_error(client: Client, gallery: Path, tmp_path: Path, name: str) -> None:
    make, message = BAD[name]
    make(Image.open(sorted((gallery / "n01440764").iterdir())[0]), tmp_path / name)
    with pytest.raises(AppError, match=message) as error:
        retrieve(client, [tmp_path / name])
    assert name in str(error.value) and "/tmp" not in str(error.value)  # the user's name, not ours
    _still_serving(client, gallery)


@pytest.mark.parametrize("name", list(HANDLED))
def test_unusual_images_are_read_correctly(client: Client, gallery: Path, tmp_path: Path, name: str) -> None:
    original = sorted((gallery / "n03028079").iterdir())[1]
    HANDLED[name](Image.open(original).convert("RGB"), tmp_path / name)
    top = retrieve(client, [tmp_path / name])["queries"][0]["neighbours"][0]
    # Decoded upright and in the right colours, the image finds the photo it was made from.
    assert top["image"] == f"n03028079/{original.name}" and top["similarity"] > 0.8, top


def test_bad_file_among_good_ones_is_skipped(client: Client, gallery: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    good = sorted((gallery / "n03445777").iterdir())[2]
    result = retrieve(client, [good, tmp_path / "notes.txt"])
    assert [q["name"] for q in result["queries"]] == [good.name]
    assert result["skipped"][0]["name"] == "notes.txt"
    assert "not a readable image" in result["skipped"][0]["reason"]


def test_empty_and_too_many_uploads(client: Client, gallery: Path) -> None:
    with pytest.raises(AppError, match="No image received"):
        client.predict([], zoo.DEFAULT_MODEL, 5, api_name="/retrieve")
    files = sorted((gallery / "n01440764").iterdir())[: MAX_QUERY_IMAGES + 1]
    with pytest.raises(AppError, match=f"at most {MAX_QUERY_IMAGES} per request"):
        retrieve(client, files)
    with pytest.raises(AppError, match=r"k .* must be a whole number from 1 to"):
        retrieve(client, files[:1], k=0)
    # One request cannot make the server download, load and index every registered model.
    many = zoo.list_models()[:9]
    with pytest.raises(AppError, match="Too many models: 9 chosen, at most 8 per comparison"):
        client.predict([handle_file(str(files[0]))], many, 3, api_name="/compare")
    _still_serving(client, gallery)


def test_upload_size_limit(client: Client, gallery: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 1_000_000  # the test server's limit is 1 MB
    with pytest.raises(Exception, match=r"(?i)size|large|413"):
        retrieve(client, [big])
    _still_serving(client, gallery)


def test_twenty_concurrent_clients(server: str, gallery: Path) -> None:
    """Load test: 20 clients at once, each its own connection; the queue lets 2 embed at a time."""
    queries = [f for wnid in CLASSES for f in sorted((gallery / wnid).iterdir())[:7]][:20]

    def one(query: Path) -> str:
        client = connect(server)
        try:
            return retrieve(client, [query], k=3)["queries"][0]["neighbours"][0]["image"]
        finally:
            client.close()

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        tops = list(pool.map(one, queries, timeout=180))
    assert tops == [f"{q.parent.name}/{q.name}" for q in queries]
    assert time.monotonic() - start < 180


# --------------------------------------------------------------------------------------------
# zoo serve
# --------------------------------------------------------------------------------------------


def test_zoo_serve_defaults_offline(tmp_path: Path) -> None:
    """`zoo serve` with no arguments: the default model and the bundled samples, no network."""
    port = free_port()
    exe = shutil.which("zoo", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "zoo.cli"]
    env = {**os.environ, "ZOO_OFFLINE": "1", "ZOO_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [*cmd, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    log: list[bytes] = []
    threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 240  # a first start exports the ONNX model
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    assert page.status == 200
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"zoo serve did not answer: {b''.join(log).decode(errors='replace')[-2000:]}")
        query = BUNDLED / "gravel" / "gravel_2.jpg"
        result = retrieve(connect(f"http://127.0.0.1:{port}/"), [query], k=3)
        assert result["gallery_images"] == 19  # the labelled gallery bundled with zoo
        assert result["queries"][0]["neighbours"][0]["image"] == "gravel/gravel_2.jpg"
        assert result["queries"][0]["prediction"] == "gravel"
        assert list((tmp_path / "home" / "gallery-indexes").glob("*.npz"))  # cached for the next start
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------------------------
# What a person reads: class names, the bundled gallery, model lists, errors, progress
# --------------------------------------------------------------------------------------------


def test_class_names_from_a_names_file_or_the_imagenet_table(tmp_path: Path) -> None:
    wnids = tmp_path / "wnids"
    for wnid in CLASSES:
        (wnids / wnid).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(wnids / wnid / "a.png")
    assert labels.class_names(wnids, list(CLASSES)) == CLASSES  # the bundled ImageNet table
    table = labels.read_names(labels.IMAGENET_TABLE)
    assert len(table) == 1000 and len(set(table.values())) == 1000  # every name tells its class apart

    (wnids / "classes.txt").write_text("# mine\nn01440764\tmy fish\nn03028079  a church  \n\n")
    assert labels.class_names(wnids, list(CLASSES)) == {"n01440764": "my fish", "n03028079": "a church"}
    gallery = GallerySource(wnids)
    assert gallery.name("n01440764") == "my fish" and gallery.name("n03445777") == "n03445777"

    (wnids / "classes.txt").write_text("n01440764\n")
    with pytest.raises(zoo.ZooError, match=r"classes.txt, line 1: expected a folder name, a tab"):
        labels.class_names(wnids, list(CLASSES))
    assert labels.class_names(tmp_path, ["cats", "n01440764"]) == {}  # not all WordNet ids: as they are


def test_bundled_gallery_retrieves_its_classes(default_encoder) -> None:
    """The default gallery: a few labelled classes, each image's nearest other image of its class."""
    gallery = GallerySource(None)
    assert gallery.classes == ["bricks", "galaxies", "grass", "gravel", "people"]
    assert gallery.name("bricks") == "brick wall" and "19 images of 5 classes" in gallery.summary()
    assert str(BUNDLED) not in gallery.summary()
    assert all((BUNDLED / "PROVENANCE.md").read_text().count(f.name.split("_")[0]) for f in gallery.files)
    feats = default_encoder.embed(gallery.files, normalize=True, backend="torch")
    sims = feats @ feats.T
    np.fill_diagonal(sims, -1)
    nearest = [gallery.labels[j] for j in sims.argmax(axis=1)]
    assert nearest == gallery.labels


def test_k_that_is_not_a_whole_number_is_a_clear_message_and_one_log_line(
    client: Client, gallery: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    query = sorted((gallery / "n01440764").iterdir())[0]
    for k in ("abc", 2.5, None, 999):
        with pytest.raises(
            AppError, match=r"k \(the number of neighbours\) must be a whole number from 1 to 50"
        ):
            client.predict([handle_file(str(query))], zoo.DEFAULT_MODEL, k, api_name="/retrieve")
    with pytest.raises(AppError, match=r"k \(the number of clusters\) must be a whole number from 0 to 20"):
        client.predict(None, "gallery", 24, zoo.DEFAULT_MODEL, "two", "pca", api_name="/cluster")
    assert retrieve(client, [query], k="3")["k"] == 3  # a number as text is a number
    lines = [r.getMessage() for r in caplog.records if r.name == "zoo.app"]
    assert sum("visitor error: k (the number of" in line for line in lines) == 5, lines
    assert "Traceback" not in capfd.readouterr().err


def test_server_errors_show_no_paths_or_operator_advice(
    client: Client, gallery: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A model whose weights cannot be had (offline, not cached): the visitor reads what failed,
    the log has the whole story on one line."""
    needs_download = next(
        n for n in zoo.list_models() if zoo.model_info(n).weights.url and not zoo.model_info(n).weights.file
    )
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    query = sorted((gallery / "n01440764").iterdir())[0]
    with pytest.raises(AppError) as error:
        client.predict([handle_file(str(query))], [needs_download], 3, api_name="/compare")
    message = str(error.value)
    assert "weights are not here and could not be downloaded" in message
    for leak in ("/", "ZOO_OFFLINE", "ZOO_HOME", "pip ", "zoo index", "show_error", "launch("):
        assert leak not in message, message
    logged = [
        r.getMessage() for r in caplog.records if r.name == "zoo.app" and "/compare: failed" in r.getMessage()
    ]
    assert len(logged) == 1 and "OfflineError" in logged[0] and "\n" not in logged[0]


def test_page_header_names_the_gallery_not_its_path(server: str, gallery: Path) -> None:
    with urllib.request.urlopen(f"{server}config", timeout=30) as response:
        config = response.read().decode()
    assert str(gallery) not in config and "gallery 'app-gallery'" in config
    assert "24 images of 3 classes (church, golf ball, tench)" in config


def test_cluster_map_has_a_colour_for_every_cluster(server: str, client: Client) -> None:
    """The page's map takes its colours from a table fixed at build time, one per possible
    cluster (tests/test_browser.py checks that a second run's clusters are all drawn)."""
    from zoo.app.cluster import MAX_CLUSTERS

    with urllib.request.urlopen(f"{server}config", timeout=30) as response:
        config = json.load(response)
    (plot,) = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "cluster-map"]
    assert sorted(plot["color_map"]) == sorted(f"cluster {c}" for c in range(1, MAX_CLUSTERS + 1))
    assert len(set(plot["color_map"].values())) == MAX_CLUSTERS
    _, points, _, result = client.predict(
        None, "gallery", 24, zoo.DEFAULT_MODEL, 4, "pca", api_name="/cluster"
    )
    assert (
        {row[2] for row in points["data"]}
        == {f"cluster {c}" for c in range(1, 5)}
        == {f"cluster {image['cluster']}" for image in result["images"]}
    )


def test_model_lists_put_runnable_models_first(
    gallery: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from zoo.app.models import DOWNLOADS, ModelPool

    from zoo.loading import _converted_dir

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    pool = ModelPool(GallerySource(gallery), (zoo.DEFAULT_MODEL,))
    choices = pool.choices()
    assert [value for _, value in choices] != pool.names or len(pool.names) == 1
    ready = [value for label, value in choices if DOWNLOADS not in label]
    assert ready[0] == zoo.DEFAULT_MODEL and set(pool.installed_photo_encoders()) <= set(ready)
    labels_ = [label for label, _ in choices]
    first_later = next(i for i, label in enumerate(labels_) if DOWNLOADS in label)
    assert all(DOWNLOADS in label for label in labels_[first_later:])  # runnable ones first
    # A model whose converted weights are in the cache runs now: it moves up, unlabelled.
    cached = choices[first_later][1]
    assert choices[first_later][0] == f"{cached} ({DOWNLOADS})"
    entry = zoo.model_info(cached)
    (_converted_dir(entry)).mkdir(parents=True)
    (_converted_dir(entry) / "model.safetensors").write_bytes(b"")
    assert (cached, cached) in pool.choices()[: first_later + 1]


def test_first_use_of_a_model_reports_indexing_progress(
    gallery: Path, folder_model: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from zoo.app.models import ModelPool

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))  # nothing cached: the index is built
    pool = ModelPool(GallerySource(gallery), (folder_model,), backend="torch")
    reports: list[tuple[float, str]] = []
    index = pool.index(folder_model, report=lambda fraction, desc: reports.append((fraction, desc)))
    assert len(index) == 3 * GALLERY_PER_CLASS
    fractions = [f for f, _ in reports]
    assert reports[0][1].startswith("loading") and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len({f for f in fractions if 0 < f < 1}) >= 1  # steps between start and end
    reports.clear()
    pool.index(folder_model, report=lambda fraction, desc: reports.append((fraction, desc)))
    assert reports == []  # built once


def test_an_index_of_a_model_folder_needs_that_folder(
    default_encoder, gallery: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import torch
    from zoo.app import AppConfig
    from zoo.app.ui import create_app

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    images = sorted(p for p in gallery.rglob("*") if p.is_file() and p.suffix != ".txt")[:2]
    # A fine-tuned copy keeps the registry's name but not its weights; a renamed one, neither.
    changed = zoo.load(zoo.DEFAULT_MODEL)
    with torch.no_grad():
        changed.backbone.conv_stem.weight.mul_(1.5)
    tuned = changed.save(tmp_path / "tuned")
    renamed = default_encoder.save(tmp_path / "renamed")
    config = json.loads((renamed / "config.json").read_text())
    config["zoo"]["name"] = "my-lite0"  # the record zoo.load reads
    (renamed / "config.json").write_text(json.dumps(config))
    cases = ((renamed, "'my-lite0', which is not a registered name"), (tuned, "built from other weights"))
    for folder, message in cases:
        index = tmp_path / f"{folder.name}.npz"
        zoo.index.build(zoo.load(folder), images, root=gallery, out=index, backend="torch", progress=False)
        with pytest.raises(zoo.ZooError, match=message):
            create_app(AppConfig(gallery=index))


def test_large_uploads_are_kept_at_a_bounded_size_that_changes_no_feature_much(default_encoder) -> None:
    from PIL import Image
    from zoo.app.uploads import KEEP_SHORT_SIDE, bounded

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((4096, 3072), Image.Resampling.BICUBIC)  # smooth, like a photo
    kept = bounded(big)
    assert kept.size == (KEEP_SHORT_SIDE * 4 // 3, KEEP_SHORT_SIDE)
    assert bounded(kept) is kept  # already small enough: untouched
    a, b = default_encoder.embed([big, kept], backend="torch", normalize=True)
    assert float(a @ b) > 0.995


def test_names_in_result_tables_cannot_break_a_row() -> None:
    from zoo.app.predict import markdown_cell as cell

    # An upload named "a|b `c`.png" split its row into extra columns before.
    assert cell("a|b `c`\n*d*.png") == "a\\|b \\`c\\` \\*d\\*.png"
    assert cell("n01440764/cat_1.jpg") == "n01440764/cat_1.jpg"


def test_result_rows_wrap_for_a_large_k() -> None:
    from zoo.app.ui import MAX_COLUMNS, columns

    assert columns(5) == 6 and columns(50) == MAX_COLUMNS and columns("x") == MAX_COLUMNS


def test_an_unreadable_gallery_image_is_no_example_and_does_not_stop_the_app(
    data_root: Path, tmp_path: Path
) -> None:
    # The first file of a class is not an image: the examples take the class's next image,
    # as the index skips the broken one with a warning (it used to stop `zoo serve`).
    from zoo.app.ui import _example_picks

    src = sorted((data_root / "imagenette/val/n01440764").iterdir())[:2]
    (tmp_path / "tench").mkdir()
    (tmp_path / "tench" / "a.jpg").write_text("not an image")
    (tmp_path / "tench" / "b.jpg").symlink_to(src[0])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "c.jpg").symlink_to(src[1])
    picks = _example_picks(GallerySource(tmp_path))
    assert [(p.name, caption) for p, caption, _ in picks] == [("c.jpg", "other"), ("b.jpg", "tench")]
    assert all(Path(thumb).is_file() for _, _, thumb in picks)
