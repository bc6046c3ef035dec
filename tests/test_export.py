"""zoo export: a folder + ONNX model that loads back everywhere and matches PyTorch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.folder import ONNX_NAME, WEIGHTS_NAME

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "lite0"
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "export", zoo.DEFAULT_MODEL, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ONNX Runtime matches PyTorch" in proc.stdout
    return out


def test_folder_contents(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        ["README.md", "config.json", WEIGHTS_NAME, ONNX_NAME]
    )
    model = onnx.load(str(exported / ONNX_NAME))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert model.graph.input[0].name == "images" and model.graph.output[0].name == "features"
    assert (exported / "README.md").read_text().startswith("---\nlicense: apache-2.0")


def test_onnx_matches_torch_on_real_images(exported: Path, default_encoder, imagenette_val) -> None:
    files, _ = imagenette_val
    batch = torch.stack([default_encoder.transform(f) for f in files[::4]])  # 15 images, 10 classes
    session = ort.InferenceSession(str(exported / ONNX_NAME), providers=["CPUExecutionProvider"])
    got = session.run(["features"], {"images": batch.numpy()})[0]
    again = zoo.load(exported)
    with torch.inference_mode():
        ref = again(batch).numpy()
    assert np.abs(got - ref).max() < 1e-4
    one = session.run(["features"], {"images": batch[:1].numpy()})[0]  # dynamic batch
    assert np.abs(one - ref[:1]).max() < 1e-4


def test_onnx_backend_of_embed(default_encoder, imagenette_val, cifar_test) -> None:
    files = imagenette_val[0][::3] + cifar_test[0][:4]
    ref = default_encoder.embed(files, backend="torch")
    got = default_encoder.embed(files, backend="onnx", batch_size=7)
    assert np.abs(got - ref).max() < 1e-4
    assert np.abs(default_encoder.embed(files[:3]) - ref[:3]).max() < 1e-4  # auto = onnx here


def test_int8_backend_stays_close(default_encoder, imagenette_val) -> None:
    files, _ = imagenette_val
    ref = default_encoder.embed(files, backend="torch", normalize=True)
    got = default_encoder.embed(files, backend="onnx-int8", normalize=True)
    cos = (ref * got).sum(1)
    assert cos.mean() > 0.95, cos.mean()


def test_failed_parity_writes_no_onnx(default_encoder, tmp_path: Path) -> None:
    with pytest.raises(zoo.ExportError, match="tolerance"):
        zoo.export(default_encoder, tmp_path / "out", tolerance=0.0)
    assert not (tmp_path / "out" / ONNX_NAME).exists()
    assert not list((tmp_path / "out").glob(".*unchecked*"))


def test_a_graph_with_external_weights_is_published_under_the_folders_names(
    default_encoder, imagenette_val, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past 2 GiB the weights go to "<graph name>.data", named from inside the graph. Here the
    # threshold is lowered so the small default model takes that path.
    from zoo import onnx as zoo_onnx

    monkeypatch.setattr(zoo_onnx, "_EXTERNAL_DATA_BYTES", 0)
    out = tmp_path / "big"
    zoo.export(default_encoder, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "config.json", WEIGHTS_NAME, ONNX_NAME, f"{ONNX_NAME}.data"]
    )
    model = onnx.load(str(out / ONNX_NAME), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {f"{ONNX_NAME}.data"}
    batch = torch.stack([default_encoder.transform(f) for f in imagenette_val[0][:4]])
    session = ort.InferenceSession(str(out / ONNX_NAME), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = default_encoder(batch).numpy()
    assert np.abs(session.run(["features"], {"images": batch.numpy()})[0] - ref).max() < 1e-4


def test_no_check_images_is_refused_before_anything_is_written(default_encoder, exported: Path) -> None:
    before = {p.name: p.read_bytes() for p in exported.iterdir()}
    with pytest.raises(zoo.ExportError, match="check_images is empty"):
        zoo.export(default_encoder, exported, check_images=[], overwrite=True)
    assert {p.name: p.read_bytes() for p in exported.iterdir()} == before


def test_a_registry_encoder_exports_its_pinned_file_and_its_card_states_that_files_hash(
    tmp_path: Path,
) -> None:
    # A re-save (fp16 tensors back as fp32, another header) hashed differently from the sha256
    # the card states, so zoo.load(folder, sha256=<the card's>) refused the folder's own file.
    import hashlib

    from zoo.export import export

    name = "simclr-r18q-cifar10"
    sha = zoo.model_info(name).weights.sha256
    folder = export(zoo.load(name), tmp_path / "out", onnx=False).folder
    assert hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest() == sha
    assert sha in (folder / "README.md").read_text()
    assert zoo.load(folder, sha256=sha).name == name
    # Weights changed after loading are saved as they are, not replaced by the pinned file.
    changed = zoo.load(name)
    with torch.no_grad():
        next(changed.backbone.parameters()).add_(0.5)
    other = export(changed, tmp_path / "changed", onnx=False).folder
    assert hashlib.sha256((other / WEIGHTS_NAME).read_bytes()).hexdigest() != sha
    reloaded = zoo.load(other).backbone.state_dict()
    assert all(torch.equal(v, reloaded[k]) for k, v in changed.backbone.state_dict().items())
