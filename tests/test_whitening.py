"""Whitened read-out (zoo.whitening, zoo.models.whitened): the PCA whitening of an encoder's own
features, fitted without labels, held as a Linear layer after the backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.export import export
from zoo.whitening import fit_whitening, heldout_gain, main, whiten, whitened_name

# A small trained encoder shipped with the package: real features without a download.
BASE = "moco-v2-r18q-cifar10.ep8"


def test_the_map_centres_the_features_and_makes_their_covariance_the_identity() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8)) * np.logspace(0, -2, 8)[:, None]  # variances 1 .. 1e-4
    x = rng.normal(size=(4000, 8)) @ mixing + 3.0
    weight, bias = fit_whitening(x)
    white = x @ weight.T.astype(np.float64) + bias
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(8), atol=2e-3)


def test_directions_that_do_not_vary_are_not_blown_up() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(500, 4)), np.full((500, 1), 0.7)], axis=1)  # a dead channel
    weight, bias = fit_whitening(x)
    white = x @ weight.T + bias
    assert np.isfinite(white).all() and np.abs(white).max() < 10
    with pytest.raises(ValueError, match="do not vary"):
        fit_whitening(np.ones((10, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_whitening(np.array([[0.0, 1.0], [np.nan, 2.0]]))


def test_whitening_helps_where_large_nuisance_directions_hide_the_classes() -> None:
    # Four classes on a unit circle in two dimensions; eight more dimensions, each 5x larger,
    # carry noise only and so decide every cosine: only scaling them down brings the classes back.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 250)
    angle = labels * np.pi / 2
    x = np.concatenate(
        [
            np.stack([np.cos(angle), np.sin(angle)], axis=1) + 0.1 * rng.normal(size=(1000, 2)),
            5 * rng.normal(size=(1000, 8)),
        ],
        axis=1,
    )
    plain, white = heldout_gain(x.astype(np.float32), labels, k=20, temperature=0.1)
    assert plain < 50 and white > 95, (plain, white)


def test_names_take_the_tag() -> None:
    assert whitened_name("moco-v2-r18h-cifar10.ep200") == "moco-v2-r18h-cifar10.ep200_whitened"
    assert whitened_name("moco-v2-r18h-cifar10") == "moco-v2-r18h-cifar10.whitened"


def test_a_whitened_encoder_embeds_its_map_and_loads_and_exports_like_any_other(
    tmp_path: Path, pick_images, data_root: Path
) -> None:
    files, _ = pick_images(data_root / "cifar10" / "test", 30)
    base = zoo.load(BASE)
    feats = base.embed(files)
    encoder = whiten(base, feats)
    assert encoder.arch == "resnet18_cifar_quarter_whitened" and encoder.embed_dim == base.embed_dim
    assert encoder.name == f"{BASE}_whitened" and encoder.entry.measured == ()
    # The base network's weights are the whitened encoder's, under backbone.*.
    state = encoder.backbone.state_dict()
    assert {k.removeprefix("backbone.") for k in state if k.startswith("backbone.")} == set(
        base.backbone.state_dict()
    )
    white = encoder.embed(files)
    weight, bias = fit_whitening(feats)
    np.testing.assert_allclose(white, feats @ weight.T + bias, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.cov(white, rowvar=False)[:8, :8], np.eye(8), atol=0.05)
    report = export(encoder, tmp_path / "white")  # checks the ONNX graph against PyTorch
    assert report.onnx is not None and report.images_checked > 0
    loaded = zoo.load(str(report.folder))
    assert loaded.arch == encoder.arch and loaded.name == encoder.name
    np.testing.assert_allclose(loaded.embed(files[:16]), white[:16], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="expected \\(128,\\)-d features"):
        whiten(base, feats[:, :64])


def test_the_command_reports_held_out_knn_and_writes_the_folder(
    tmp_path: Path, pick_images, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, labels = pick_images(data_root / "cifar10" / "test", 20, 4)
    for f, label in zip(files, labels, strict=True):
        link = tmp_path / "data" / "train" / f"c{label}" / f.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f)
    main([BASE, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "held-out kNN top-1" in out and "plain" in out and "whitened" in out
    assert zoo.load(str(tmp_path / "out")).arch == "resnet18_cifar_quarter_whitened"

    with pytest.raises(SystemExit) as exit_:
        main([BASE, "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out2")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "missing" in err and "Traceback" not in err
    assert not (tmp_path / "out2").exists()
