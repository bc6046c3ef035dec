"""Issue 14, items 6, 7 and 8: `zoo export` and `zoo embed` with confused users and full disks.

Every user-caused failure must reach the shell as one ``zoo: error:`` line with exit code 2,
and checks that can be made before the work are made before it. The commands run in-process
(``zoo.cli.main``) on a small real model folder and real CIFAR-10 images.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
import zoo.folder
from zoo.cli import main
from zoo.folder import CONFIG_NAME, ONNX_NAME, WEIGHTS_NAME


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "quarter"
    zoo.create_model("resnet18_cifar_quarter").save(folder, card=False)
    return folder


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("models") / "half"
    zoo.create_model("resnet18_cifar_half").save(folder, card=False)
    return folder


@pytest.fixture
def images(tmp_path: Path, cifar_test) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for f in cifar_test[0][:4]:
        shutil.copy(f, folder / f"{f.parent.name}-{f.name}")
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def assert_one_error(code: int, err: list[str], *words: str) -> None:
    errors = [line for line in err if line.startswith("zoo: error: ")]
    assert code == 2 and len(errors) == 1, err
    assert "Traceback" not in "\n".join(err)
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks must come before the work: loading the model is already too late."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(zoo, "load", refuse)


# ---------------------------------------------------------------------------------------------
# 6. zoo export --out DIR
# ---------------------------------------------------------------------------------------------


def test_export_refuses_a_foreign_non_empty_folder(capsys, model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, _, err = run(capsys, "export", model_dir, "--out", out, "--no-onnx")
    assert_one_error(code, err, "not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]  # nothing written

    code, _, err = run(capsys, "export", model_dir, "--out", out, "--no-onnx", "--overwrite")
    assert code == 0, err
    assert {"thesis.tex", CONFIG_NAME, WEIGHTS_NAME} <= {p.name for p in out.iterdir()}
    assert (out / "thesis.tex").read_text() == "years of work"


def test_export_refuses_an_export_of_another_model(
    capsys, model_dir: Path, other_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    assert run(capsys, "export", model_dir, "--out", out, "--no-onnx")[0] == 0
    before = (out / WEIGHTS_NAME).read_bytes()
    code, _, err = run(capsys, "export", other_model_dir, "--out", out, "--no-onnx")
    assert_one_error(code, err, "resnet18_cifar_quarter", "--overwrite")
    assert (out / WEIGHTS_NAME).read_bytes() == before
    # The same model again is fine: re-exporting is how an export is refreshed.
    assert run(capsys, "export", model_dir, "--out", out, "--no-onnx")[0] == 0


def test_reexport_never_leaves_a_stale_onnx(capsys, model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "export"
    assert run(capsys, "export", model_dir, "--out", out)[0] == 0
    assert (out / ONNX_NAME).is_file()
    # New weights under the same model name (a fine-tuned copy) exported without ONNX.
    enc = zoo.load(model_dir)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1)
    zoo.export(enc, out, onnx=False)
    assert not (out / ONNX_NAME).exists(), "model.onnx of the old weights beside the new ones"
    # And an export whose parity check fails leaves no graph either.
    assert run(capsys, "export", model_dir, "--out", out)[0] == 0
    with pytest.raises(zoo.ExportError, match="tolerance"):
        zoo.export(enc, out, tolerance=0.0)
    assert not (out / ONNX_NAME).exists()
    assert zoo.load(out).fingerprint() == enc.fingerprint()


# ---------------------------------------------------------------------------------------------
# 7. zoo embed skips unreadable files
# ---------------------------------------------------------------------------------------------


def _damage(images: Path) -> list[str]:
    (images / "notes.png").write_text("not an image")
    good = sorted(images.iterdir())[0].read_bytes()
    (images / "cut.png").write_bytes(good[: len(good) // 3])
    return ["cut.png", "notes.png"]


def test_embed_skips_unreadable_files(capsys, model_dir: Path, images: Path, tmp_path: Path) -> None:
    bad = _damage(images)
    code, out, err = run(
        capsys, "embed", images, "--out", tmp_path / "f.npy", "--model", model_dir, "--backend", "torch"
    )
    assert code == 0, err
    warnings = [line for line in err if line.startswith("zoo: warning: skipped")]
    assert len(warnings) == 2 and all(any(b in w for w in warnings) for b in bad)
    feats = np.load(tmp_path / "f.npy")
    paths = (tmp_path / "f.paths.txt").read_text().splitlines()
    skipped = (tmp_path / "f.skipped.txt").read_text().splitlines()
    assert feats.shape == (4, 128) and len(paths) == 4
    assert not any(b in p for p in paths for b in bad)
    assert [Path(line.split(":")[0]).name for line in skipped] == bad
    assert "skipped 2" in out
    # The features of the readable files are those a clean folder gives.
    ref = zoo.load(model_dir).embed([Path(p) for p in paths], backend="torch")
    np.testing.assert_allclose(feats, ref, atol=1e-5, rtol=0)

    # A clean rerun removes the list of the earlier run.
    for b in bad:
        (images / b).unlink()
    assert run(capsys, "embed", images, "--out", tmp_path / "f.npy", "--model", model_dir)[0] == 0
    assert not (tmp_path / "f.skipped.txt").exists()


def test_embed_strict_keeps_the_old_behaviour(capsys, model_dir: Path, images: Path, tmp_path: Path) -> None:
    _damage(images)
    code, _, err = run(capsys, "embed", images, "--out", tmp_path / "f.npy", "--model", model_dir, "--strict")
    assert_one_error(code, err, "cut.png")
    assert not (tmp_path / "f.npy").exists()


def test_embed_fails_when_nothing_is_readable(capsys, model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.jpg").write_text("no")
    (folder / "b.png").write_bytes(b"")
    code, _, err = run(capsys, "embed", folder, "--out", tmp_path / "f.npy", "--model", model_dir)
    assert_one_error(code, err, "none of the 2 images")
    assert not (tmp_path / "f.npy").exists()


# ---------------------------------------------------------------------------------------------
# 8. outputs that cannot be written: one line, exit 2, checked before the work where possible
# ---------------------------------------------------------------------------------------------


def test_embed_into_a_missing_folder_fails_before_the_work(
    capsys, images: Path, tmp_path: Path, no_model_load: None
) -> None:
    code, _, err = run(capsys, "embed", images, "--out", tmp_path / "nope" / "f.npy")
    assert_one_error(code, err, "does not exist", str(tmp_path / "nope"))


def test_export_into_a_missing_parent_fails_before_the_work(
    capsys, tmp_path: Path, no_model_load: None
) -> None:
    code, _, err = run(capsys, "export", "whatever", "--out", tmp_path / "nope" / "export")
    assert_one_error(code, err, "does not exist")


@pytest.mark.parametrize("command", ["embed", "export"])
def test_name_too_long_fails_before_the_work(
    capsys, images: Path, tmp_path: Path, no_model_load: None, command: str
) -> None:
    name = "x" * 300
    argv = (
        ("embed", images, "--out", tmp_path / f"{name}.npy")
        if command == "embed"
        else ("export", "m", "--out", tmp_path / name)
    )
    code, _, err = run(capsys, *argv)
    assert_one_error(code, err, "too long")


def test_output_under_a_file_fails_before_the_work(
    capsys, images: Path, tmp_path: Path, no_model_load: None
) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, "embed", images, "--out", tmp_path / "file" / "f.npy")
    assert_one_error(code, err, "not a folder")


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every atomic write goes to /dev/full, which fails with ENOSPC like a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    real = tempfile.mkstemp

    def mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, path = real(*args, **kwargs)
        os.close(fd)
        os.unlink(path)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(zoo.folder.tempfile, "mkstemp", mkstemp)


def test_disk_full_while_embedding(
    capsys, model_dir: Path, images: Path, tmp_path: Path, full_disk: None
) -> None:
    code, _, err = run(
        capsys, "embed", images, "--out", tmp_path / "f.npy", "--model", model_dir, "--backend", "torch"
    )
    assert_one_error(code, err, "no space left", "f.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no partial or temp file


def test_disk_full_while_exporting(capsys, model_dir: Path, tmp_path: Path, full_disk: None) -> None:
    code, _, err = run(capsys, "export", model_dir, "--out", tmp_path / "export", "--no-onnx")
    assert_one_error(code, err, "no space left")
    assert not [p for p in (tmp_path / "export").iterdir() if p.name != ".keep"]


def test_malformed_sha256(capsys, model_dir: Path) -> None:
    code, _, err = run(capsys, "download", model_dir, "--sha256", "abc123")
    assert_one_error(code, err, "64 hex digits")
    with pytest.raises(zoo.ZooError, match="64 hex digits"):
        zoo.load(model_dir, sha256="not-a-hash")
    with pytest.raises(ValueError):  # still a ValueError for callers that catch that
        zoo.load(model_dir, sha256="g" * 64)


def test_download_with_the_right_sha256(capsys, model_dir: Path) -> None:
    from zoo.hub import sha256_file

    code, out, err = run(
        capsys, "download", model_dir, "--sha256", sha256_file(model_dir / WEIGHTS_NAME).upper()
    )
    assert code == 0 and ": ready (" in out, err
    code, _, err = run(capsys, "download", model_dir, "--sha256", "0" * 64)
    assert_one_error(code, err, "sha256")


def test_multi_line_messages_become_one_line(capsys, tmp_path: Path) -> None:
    config = {"zoo": {"format_version": 1, "name": "x\ny"}}
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    code, _, err = run(capsys, "download", tmp_path)
    assert_one_error(code, err, "field")
