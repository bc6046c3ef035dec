"""Mirror-averaged features (``Preprocess.flip_average``): the mean of an image's features and of
its mirror image's, in every path that computes features, persisted, exported and stated."""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.cards import render_card
from zoo.classifier import Classifier
from zoo.encoder import Encoder
from zoo.evaluate import features
from zoo.folder import CONFIG_NAME, ONNX_NAME, WEIGHTS_NAME
from zoo.registry import Preprocess

MODEL = "simclr-r18q-cifar10"  # a small shipped encoder (32 px), loads offline
MIRROR = "features: mean of the image's and its mirror image's (2 forward passes)"


def mirrored(encoder: Encoder) -> Encoder:
    """``encoder`` with flip_average on (its entry says so too), sharing its weights."""
    pre = dataclasses.replace(encoder.preprocess, flip_average=True)
    entry = None if encoder.entry is None else dataclasses.replace(encoder.entry, preprocess=pre)
    return Encoder(encoder.backbone, encoder.arch, pre, entry)


@pytest.fixture(scope="module")
def plain() -> Encoder:
    return zoo.load(MODEL)


@pytest.fixture(scope="module")
def images(data_root: Path) -> list[Path]:
    """3 real CIFAR-10 test images of each of 4 classes."""
    root = data_root / "cifar10" / "test"
    return [f for d in sorted(root.iterdir())[:4] for f in sorted(d.iterdir())[:3]]


@pytest.fixture(scope="module")
def batch(plain: Encoder, images: list[Path]) -> torch.Tensor:
    return torch.stack([plain.transform(f) for f in images])


def test_features_are_the_mean_of_the_image_and_its_mirror_image(
    plain: Encoder, images: list[Path], batch: torch.Tensor
) -> None:
    flip = mirrored(plain)
    with torch.inference_mode():
        once, mirror = plain.backbone(batch), plain.backbone(batch.flip(-1))
        got = flip(batch)
    expected = ((once + mirror) / 2).numpy()
    assert np.abs(got.numpy() - expected).max() < 1e-5
    # Not the plain features: CIFAR images are not mirror-symmetric, nor is the network.
    assert np.abs(got.numpy() - once.numpy()).max() > 1e-2
    # embed (torch backend, channels-last, batched) gives the same; the plain encoder does not.
    embedded = flip.embed(images, backend="torch", batch_size=5)
    assert np.abs(embedded - expected).max() < 1e-4
    assert np.abs(plain.embed(images, backend="torch") - once.numpy()).max() < 1e-4
    # A classifier on such an encoder classifies from the same (averaged) features.
    model = Classifier(flip, ["a", "b", "c"])
    with torch.inference_mode():
        assert torch.allclose(model(batch), model.head(torch.from_numpy(expected)), atol=1e-5)


def test_the_onnx_backend_runs_its_own_graph_of_the_averaged_features(
    plain: Encoder, images: list[Path]
) -> None:
    pytest.importorskip("onnxruntime")
    flip = mirrored(plain)
    assert flip.graph_key() != plain.graph_key()  # the cached graph of the plain features is not reused
    ref = flip.embed(images, backend="torch")
    assert np.abs(plain.embed(images, backend="onnx") - plain.embed(images, backend="torch")).max() < 1e-4
    assert np.abs(flip.embed(images, backend="onnx") - ref).max() < 1e-4


def test_the_option_is_checked_and_defaults_to_off() -> None:
    assert Preprocess().flip_average is False
    assert "flip_average" not in repr(Preprocess()) and "flip_average" not in Preprocess().to_dict()
    # The repr keys feature caches: plain preprocessing keeps the key it had before the option.
    assert repr(Preprocess()) == (
        "Preprocess(input_size=224, resize_size=256, interpolation='bilinear',"
        " mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))"
    )
    assert "flip_average=True" in repr(Preprocess(flip_average=True))
    with pytest.raises(ValueError, match="flip_average must be True or False"):
        Preprocess(flip_average="yes")  # type: ignore[arg-type]


def test_the_option_survives_a_folder_and_a_lone_weights_file(
    plain: Encoder, batch: torch.Tensor, tmp_path: Path
) -> None:
    # Plain preprocessing writes what it wrote before the option existed: no key.
    plain.save(tmp_path / "plain")
    record = json.loads((tmp_path / "plain" / CONFIG_NAME).read_text())["zoo"]
    assert "flip_average" not in record["preprocess"]
    assert zoo.load(tmp_path / "plain").preprocess.flip_average is False

    # Set on a loaded encoder (its entry still plain): the folder records the encoder's.
    flip = Encoder(
        plain.backbone, plain.arch, dataclasses.replace(plain.preprocess, flip_average=True), plain.entry
    )
    folder = flip.save(tmp_path / "flip")
    record = json.loads((folder / CONFIG_NAME).read_text())["zoo"]
    assert record["preprocess"]["flip_average"] is True
    # The entry's numbers and pinned hash described the plain reading and file: not carried over.
    assert plain.entry.measured and not record["measured"] and not record["weights"]["sha256"]
    card = (folder / "README.md").read_text()
    assert MIRROR in card
    assert ("model(x.flip(-1))" in card) == bool(zoo.registry.get_arch(plain.arch).timm_name)
    back = zoo.load(folder)
    assert back.preprocess.flip_average is True and back.entry.preprocess.flip_average is True
    with torch.inference_mode():
        assert torch.allclose(back(batch), flip(batch), atol=1e-6)
    # The safetensors header carries it too (not the pinned file's plain record).
    lone = shutil.copy(folder / WEIGHTS_NAME, tmp_path / "lone.safetensors")
    assert zoo.load(lone).preprocess.flip_average is True


def test_a_record_with_a_non_bool_flip_average_is_refused(plain: Encoder, tmp_path: Path) -> None:
    folder = mirrored(plain).save(tmp_path / "bad", card=False)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["zoo"]["preprocess"]["flip_average"] = "yes"
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(
        zoo.WeightsError, match=r"field preprocess\.flip_average: must be true or false, got 'yes'"
    ):
        zoo.load(folder)


def test_onnx_export_computes_the_averaged_features(
    plain: Encoder, images: list[Path], batch: torch.Tensor, tmp_path: Path
) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    flip = mirrored(plain)
    report = zoo.export(flip, tmp_path / "flip", check_images=images)
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-4
    session = ort.InferenceSession(str(tmp_path / "flip" / ONNX_NAME), providers=["CPUExecutionProvider"])
    got = session.run(["features"], {"images": batch.numpy()})[0]
    with torch.inference_mode():
        ref = zoo.load(tmp_path / "flip")(batch).numpy()
        once = plain(batch).numpy()
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(got - once).max() > 1e-2
    one = session.run(["features"], {"images": batch[:1].numpy()})[0]  # dynamic batch
    assert np.abs(one - ref[:1]).max() < 1e-4
    # Two passes through the network in the graph; the plain export keeps one.
    zoo.export(plain, tmp_path / "plain", check_images=images)

    def convs(folder: str) -> int:
        graph = onnx.load(str(tmp_path / folder / ONNX_NAME)).graph
        return sum(n.op_type == "Conv" for n in graph.node)

    assert convs("flip") == 2 * convs("plain") > 0


def test_the_features_cache_keeps_the_two_apart(plain: Encoder, images: list[Path]) -> None:
    flip = mirrored(plain)
    once = features(plain, images, backend="torch")
    averaged = features(flip, images, backend="torch")
    assert np.abs(averaged - flip.embed(images, backend="torch")).max() < 1e-5
    assert np.abs(averaged - once).max() > 1e-2
    # And a second call is served the right ones from the cache.
    assert np.array_equal(features(flip, images, backend="torch"), averaged)
    assert np.array_equal(features(plain, images, backend="torch"), once)


def test_the_card_says_so_only_when_set(plain: Encoder) -> None:
    card = render_card(mirrored(plain).entry)
    assert MIRROR in card and "averages the two" in card
    assert MIRROR not in render_card(plain.entry)


@pytest.mark.parametrize(
    ("reader", "module", "args"),
    [
        ("grid_knn", "zoo.training.pretext.grid_knn", ["--grid", "3", "--patch", "16"]),
        ("recalibrate_knn", "zoo.training.recalibrate_knn", []),
    ],
)
def test_tools_that_run_the_backbone_themselves_refuse_a_mirror_averaged_encoder(
    plain: Encoder,
    tmp_path: Path,
    data_root: Path,
    reader: str,
    module: str,
    args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # grid_knn and recalibrate_knn call the backbone on raw batches, so a mirror-averaged
    # encoder would be scored on plain features under its own name: one clear refusal instead.
    from zoo.training.pretext.probe import load_encoder

    flip = mirrored(plain).save(tmp_path / "flip")
    plain_folder = plain.save(tmp_path / "plain")
    with pytest.raises(ValueError, match=f"mirror-averaged.*{reader} reads the backbone itself"):
        load_encoder(str(flip), backbone_reader=reader)
    assert load_encoder(str(flip)).preprocess.flip_average is True  # other readers honour it
    assert load_encoder(str(plain_folder), backbone_reader=reader).preprocess.flip_average is False
    # The command says so in one line, before reading any data.
    with pytest.raises(SystemExit) as raised:
        importlib.import_module(module).main([str(flip), str(data_root / "cifar10"), *args])
    assert raised.value.code == 2 and "error:" in (err := capsys.readouterr().err)
    assert "mirror-averaged" in err and "Traceback" not in err
