"""The zoo command, run as a user runs it (a subprocess of the installed entry point)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.cli import build_parser

SUBCOMMANDS = [
    "list", "info", "download", "embed", "neighbors", "export", "push", "leaderboard", "convert", "card",
    "eval", "train", "finetune", "predict", "index", "serve",
]


def zoo_cmd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("zoo", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "zoo.cli"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_every_subcommand_has_help(capsys) -> None:
    parser = build_parser()
    for sub in [None, *SUBCOMMANDS]:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([sub, "--help"] if sub else ["--help"])
        assert exit_.value.code == 0
        assert "usage: zoo" in capsys.readouterr().out


def test_list_info_card() -> None:
    out = zoo_cmd("list").stdout
    assert zoo.DEFAULT_MODEL in out and "apache-2.0" in out
    assert '"arch": "efficientnet_lite0"' in zoo_cmd("info", zoo.DEFAULT_MODEL).stdout
    assert zoo_cmd("card", zoo.DEFAULT_MODEL).stdout.startswith("---\nlicense: apache-2.0")


def test_neighbors_on_bundled_samples() -> None:
    out = zoo_cmd("neighbors", "--backend", "torch", "-k", "2").stdout.splitlines()
    assert out[0].startswith(f"{zoo.DEFAULT_MODEL}: 12 images")
    rows = dict(line.split(" -> ") for line in out[1:])
    assert len(rows) == 12
    # The three CC0 textures find each other before anything else.
    assert "texture_" in rows["texture_grass.jpg"].split(",")[0]


def test_neighbors_skips_unreadable_files_and_refuses_what_cannot_work(tmp_path: Path) -> None:
    samples = zoo.sample_images()
    for f in samples[:3]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "broken.jpg").write_text("not an image")
    proc = zoo_cmd("neighbors", str(tmp_path), "--backend", "torch", "-k", "1")
    assert "skipped" in proc.stderr and "broken.jpg" in proc.stderr
    rows = proc.stdout.splitlines()[1:]
    assert len(rows) == 3 and all(" -> " in r and r.split(" -> ")[1] for r in rows)
    for k in ("0", "-1"):
        bad = zoo_cmd("neighbors", str(tmp_path), "-k", k, check=False)
        assert bad.returncode == 2 and "-k must be at least 1" in bad.stderr
    lonely = tmp_path / "one"
    lonely.mkdir()
    shutil.copy(samples[0], lonely / samples[0].name)
    bad = zoo_cmd("neighbors", str(lonely), "--backend", "torch", check=False)
    assert bad.returncode == 2 and "only 1 readable image; neighbours need at least 2" in bad.stderr
    nothing = zoo_cmd("list", "no-such-model*", check=False)
    assert nothing.returncode == 2 and "no model matches" in nothing.stderr


def test_embed_folder(tmp_path: Path, cifar_test) -> None:
    files, _ = cifar_test
    src = tmp_path / "imgs"
    for f in files[:6]:
        (src / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, src / f.parent.name / f.name)
    # A name with a dot keeps it: feats.v2 -> feats.v2.npy, as np.save names it (not feats.npy).
    zoo_cmd("embed", str(src), "--out", str(tmp_path / "feats.v2"), "--backend", "torch")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["feats.v2.npy", "feats.v2.paths.txt"]
    feats = np.load(tmp_path / "feats.v2.npy")
    paths = (tmp_path / "feats.v2.paths.txt").read_text().splitlines()
    assert feats.shape == (6, 1280) and feats.dtype == np.float32 and len(paths) == 6
    direct = zoo.load(zoo.DEFAULT_MODEL).embed(paths, backend="torch")
    np.testing.assert_allclose(feats, direct, atol=1e-5)


def test_errors_are_one_line() -> None:
    proc = zoo_cmd("info", "supervised-efficientnet-lit0", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Did you mean" in proc.stderr
    proc = zoo_cmd("embed", "/nonexistent-dir", "--out", "/tmp/x.npy", check=False)
    assert proc.returncode == 2 and "not a directory" in proc.stderr and "Traceback" not in proc.stderr
