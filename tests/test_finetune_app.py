"""The demo's Retrieve tab with a fine-tuned classifier folder: the head's prediction next to
the kNN vote (app/predict.py), on real CIFAR-10 images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.images import open_image

CLASSES = ("airplane", "cat", "ship")


@pytest.fixture(scope="module")
def cifar_subset(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    for split, n in (("train", 12), ("test", 4)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for f in sorted((data_root / "cifar10" / split / c).iterdir())[:n]:
                shutil.copy(f, root / split / c / f.name)
    return root


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory, cifar_subset: Path) -> Path:
    out = tmp_path_factory.mktemp("clf") / "ft"
    zoo.finetune("simclr-r18q-cifar10", cifar_subset, out, mode="linear", epochs=1, batch_size=12, threads=1)
    return out


def test_classify_uploads_with_a_fine_tuned_folder(classifier: Path, cifar_subset: Path) -> None:
    from zoo.app.predict import TOP_K, cell, classify
    from zoo.app.uploads import Upload

    files = [sorted((cifar_subset / "test" / c).iterdir())[0] for c in CLASSES]
    uploads = [Upload(f.name, open_image(f)) for f in files]
    by_torch = classify(str(classifier), uploads, "torch")
    by_onnx = classify(str(classifier), uploads, "onnx")
    assert by_torch is not None and len(by_torch) == 3 and all(len(t) == TOP_K for t in by_torch)
    expected = zoo.create_classifier(classifier).predict(files, top_k=TOP_K)
    for got, want in zip(by_torch, expected, strict=True):
        assert [t["label"] for t in got] == [c for c, _ in want]
        assert np.allclose([t["probability"] for t in got], [p for _, p in want], atol=1e-4)
    assert [[t["label"] for t in q] for q in by_onnx] == [[t["label"] for t in q] for q in by_torch]
    text = cell(by_torch[0])
    assert text.startswith(f"**{by_torch[0][0]['label']}** (") and text.count("%") == TOP_K
    # Folders that are not WordNet ids are shown by the gallery's names where it has them.
    named = classify(str(classifier), uploads[:1], "torch", {c: c.upper() for c in CLASSES})
    assert [t["name"] for t in named[0]] == [t["label"].upper() for t in by_torch[0]]
    # A registered encoder, or a plain zoo folder, has no head: no prediction.
    assert classify("simclr-r18q-cifar10", uploads) is None
    plain = classifier.parent / "plain"
    zoo.load("simclr-r18q-cifar10").save(plain)
    assert classify(str(plain), uploads) is None


def test_retrieve_tab_shows_the_heads_prediction_next_to_the_knn_vote(
    classifier: Path, cifar_subset: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from zoo.app.config import AppConfig
    from zoo.app.gallery import GallerySource
    from zoo.app.models import ModelPool
    from zoo.app.predict import cell, classify
    from zoo.app.retrieve import retrieve
    from zoo.app.uploads import Upload

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    model = str(classifier)
    pool = ModelPool(GallerySource(cifar_subset / "train"), (model,), backend="torch")
    files = [sorted((cifar_subset / "test" / c).iterdir())[1] for c in CLASSES[:2]]
    _, table, payload = retrieve(pool, AppConfig(), [str(f) for f in files], model, 5)
    heads = classify(model, [Upload(f.name, open_image(f)) for f in files], "torch")
    assert [q["classifier"] for q in payload["queries"]] == heads
    lines = table.splitlines()
    assert "| classifier prediction |" in lines[0] and lines[1].count("|") == lines[0].count("|")
    for line, head in zip(lines[2:], heads, strict=True):
        assert f"| {cell(head)} |" in line and "of the vote" in line  # the kNN vote stays
    # The kNN side retrieves with the folder's fine-tuned encoder.
    assert pool.model(model).encoder.name == "simclr-r18q-cifar10-ft"
    # A model without a head: the table is the kNN one alone.
    plain = ModelPool(GallerySource(cifar_subset / "train"), ("simclr-r18q-cifar10",), backend="torch")
    _, table, payload = retrieve(plain, AppConfig(), [str(files[0])], "simclr-r18q-cifar10", 5)
    assert "classifier" not in table and "classifier" not in payload["queries"][0]


def test_the_heads_classes_are_shown_by_name_not_by_folder_id(
    tmp_path: Path, cifar_subset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trained on folders named by WordNet id (as Imagenette's): the head's prediction reads
    # "tench", the label stays the folder's id; a gallery's own names serve other folders.
    from zoo.app.predict import cell, classify
    from zoo.app.uploads import Upload

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    wnids = {"airplane": "n01440764", "cat": "n02102040", "ship": "n02979186"}
    data = tmp_path / "wnid"
    for split in ("train", "test"):
        for c, wnid in wnids.items():
            shutil.copytree(cifar_subset / split / c, data / split / wnid)
    out = tmp_path / "ft"
    zoo.finetune("simclr-r18q-cifar10", data, out, mode="linear", epochs=1, batch_size=12, threads=1)
    image = next((data / "test" / "n01440764").iterdir())
    (top,) = classify(str(out), [Upload(image.name, open_image(image))], "torch")
    shown = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player"}
    assert {t["label"] for t in top} == set(wnids.values())
    assert all(t["name"] == shown[t["label"]] for t in top)
    assert cell(top).startswith(f"**{top[0]['name']}** (") and "n0" not in cell(top)
