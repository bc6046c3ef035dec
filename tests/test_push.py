"""``zoo push`` end to end against a Hub-compatible server on 127.0.0.1 (tests/_hub_server.py),
through the real huggingface_hub client: upload, then load back with zoo and timm."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _hub_server import TOKEN, HubServer, point_hub_client_at, serve_hub

import zoo
from zoo import images as zoo_images
from zoo import registry
from zoo.cli import main
from zoo.errors import ChecksumError, DownloadError
from zoo.push import PublishError, check_card, push, stage
from zoo.registry import Weights

pytest.importorskip("huggingface_hub")

NAME = "simclr-r18q-cifar10"  # a zoo-trained encoder: small, installed, with training curves
REPO = "zoo-test/simclr-r18q-cifar10"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with serve_hub() as server:
        point_hub_client_at(monkeypatch, server, tmp_path / "hf")
        yield server


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NAME exported the way a push by name does it (zoo folder + model.onnx + curves)."""
    return stage(NAME, tmp_path_factory.mktemp("staged"))


@pytest.fixture
def copy(folder: Path, tmp_path: Path) -> Path:
    """A scratch copy of the exported folder, for tests that damage it."""
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def writes(server: HubServer) -> list[tuple[str, str]]:
    """Requests that could change the server (the client's telemetry GET is not one)."""
    return [r for r in server.log if r[0] != "GET"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Publishing and loading back
# ---------------------------------------------------------------------------------------------


def test_push_by_name_loads_back_bit_identical(hub: HubServer, cifar_test) -> None:
    result = push(NAME, REPO, commit_message="Release simclr")
    assert result.url == f"{hub.base_url}/{REPO}" and not result.dry_run
    assert result.commit == hub.head(REPO)
    assert hub.history(REPO)[0].message == "Release simclr"
    stored = hub.files(REPO)
    expected = {"README.md", "config.json", "model.safetensors", "model.onnx", f"curves/{NAME}.png"}
    assert expected <= set(stored) and set(stored) == {f.path for f in result.files} | {".gitattributes"}
    for f in result.files:
        assert sha256(stored[f.path].data) == f.sha256 and len(stored[f.path].data) == f.size
    # Weights and graph went through LFS (uploaded first, then named in the commit by sha256).
    assert stored["model.safetensors"].lfs and stored["model.onnx"].lfs and not stored["config.json"].lfs
    assert ("PUT", f"/lfs-upload/{result.file('model.safetensors').sha256}") in hub.log
    assert result.onnx_max_abs_diff is not None and result.onnx_max_abs_diff < 1e-4
    # A registered encoder is published as the very file the registry pins.
    assert result.file("model.safetensors").sha256 == zoo.model_info(NAME).weights.sha256

    images, _ = cifar_test
    original = zoo.load(NAME).embed(images, backend="torch")
    for source in (f"hf-hub:{REPO}", f"hf-hub:{REPO}@{result.commit}"):
        loaded = zoo.load(source)
        assert loaded.entry == zoo.model_info(NAME)
        assert np.array_equal(loaded.embed(images, backend="torch"), original)


def test_timm_creates_a_pushed_timm_architecture(
    hub: HubServer, tmp_path: Path, default_encoder, imagenette_val
) -> None:
    timm = pytest.importorskip("timm")
    out = zoo.export(default_encoder, tmp_path / "lite0").folder  # efficientnet_lite0 is timm's
    push(out, "zoo-test/lite0")
    model = timm.create_model("hf-hub:zoo-test/lite0", pretrained=True).eval()
    assert model.num_classes == 0
    images, _ = imagenette_val
    batch = next(zoo_images.batches(images[:8], default_encoder.preprocess, 8))
    with torch.inference_mode():
        # Same weights, same graph; not compared bit for bit, because the session's shared
        # default encoder may run channels-last (another conv algorithm) after other tests.
        torch.testing.assert_close(model(batch), default_encoder.backbone.eval()(batch), rtol=1e-5, atol=1e-5)


def test_branch_push_leaves_main_alone(hub: HubServer, folder: Path) -> None:
    result = push(folder, REPO, revision="v1")
    assert result.url == f"{hub.base_url}/{REPO}/tree/v1"
    assert set(hub.files(REPO, "main")) == {".gitattributes"}  # main keeps only the repo's first commit
    assert "model.safetensors" in hub.files(REPO, "v1")
    assert zoo.load(f"hf-hub:{REPO}@v1").entry == zoo.model_info(NAME)
    # Pushing the same folder again changes nothing: the client sees every file is there already.
    again = push(folder, REPO, revision="v1")
    assert again.commit == result.commit == hub.head(REPO, "v1")


def test_private_push_needs_the_token_to_read(hub: HubServer, folder: Path, monkeypatch) -> None:
    push(folder, REPO, private=True)
    assert hub.repos[REPO].private
    assert zoo.load(f"hf-hub:{REPO}").entry == zoo.model_info(NAME)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(DownloadError, match=r"not found \(or private\)"):
        zoo.hub.hf_download(REPO, "README.md")


def test_private_push_to_an_existing_public_repo_is_refused(hub: HubServer, folder: Path) -> None:
    # create_repo(exist_ok=True) leaves a repo's visibility as it is: the files went public.
    first = push(folder, REPO)
    with pytest.raises(PublishError, match="exists and is public"):
        push(folder, REPO, private=True, commit_message="second")
    assert not hub.repos[REPO].private and hub.head(REPO, "main") == first.commit


def test_a_push_removes_what_earlier_pushes_left(hub: HubServer, folder: Path, copy: Path) -> None:
    (copy / "curves" / "old-figure.png").write_bytes(b"an earlier card's figure")
    push(copy, REPO)
    assert "curves/old-figure.png" in hub.files(REPO)
    result = push(folder, REPO, commit_message="second")
    assert result.deleted == ("curves/old-figure.png",)
    assert set(hub.files(REPO)) - {".gitattributes"} == {f.path for f in result.files}


def test_dry_run_lists_files_without_a_token_or_a_request(
    hub: HubServer, folder: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    assert main(["push", str(folder), "--repo", REPO, "--dry-run"]) == 0
    out = capsys.readouterr().out
    for path in ("config.json", "model.safetensors", "model.onnx", "README.md", f"curves/{NAME}.png"):
        data = (folder / path).read_bytes()
        line = next(ln for ln in out.splitlines() if ln.split()[-1:] == [path])
        assert sha256(data) in line and f"{len(data):,}" in line, line
    assert "dry run" in out and "nothing was uploaded" in out
    assert writes(hub) == [] and REPO not in hub.repos


def test_a_flagship_push_carries_its_progress_figure() -> None:
    # The card of a flagship links its kNN-against-CPU-hours figure too; staging left it out,
    # so check_card refused every push of the flagships, dry runs included.
    name = "simclr-r18h-imagenette"
    progress = registry.model_info(name).training.progress
    result = push(name, "o/n", dry_run=True)
    staged = {f.path for f in result.files}
    assert {progress, progress.replace(".png", ".json"), f"curves/{name}.png"} <= staged


def test_cli_push_prints_the_url_and_the_release_line(hub: HubServer, folder: Path, capsys) -> None:
    assert main(["push", str(folder), "--repo", REPO, "--commit-message", "first"]) == 0
    out = capsys.readouterr().out
    head = hub.head(REPO)
    assert f"{hub.base_url}/{REPO}\n" in out and head in out
    sha = sha256((folder / "model.safetensors").read_bytes())
    assert f'hf_revision="{head}", sha256="{sha}"' in out  # the registry line that pins the release
    assert hub.history(REPO)[0].message == "first"


@pytest.mark.slow
def test_cli_in_a_fresh_process_through_plain_environment_variables(
    hub: HubServer, folder: Path, tmp_path: Path
) -> None:
    """`zoo push` as a user runs it: HF_ENDPOINT / HF_TOKEN read by the client at import."""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.base_url,
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf-fresh"),
        "HF_HUB_DISABLE_XET": "1",  # the test server speaks LFS
        "OMP_NUM_THREADS": "1",
    }
    zoo_cli = [sys.executable, "-m", "zoo.cli"]
    run = subprocess.run(
        [*zoo_cli, "push", str(folder), "--repo", REPO, "--commit-message", "first"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    head = hub.head(REPO)
    assert f"{hub.base_url}/{REPO}\n" in run.stdout and head in run.stdout
    sha = sha256((folder / "model.safetensors").read_bytes())
    assert f'hf_revision="{head}", sha256="{sha}"' in run.stdout  # the registry line to pin it
    assert hub.history(REPO)[0].message == "first"

    env.pop("HF_TOKEN")
    run = subprocess.run(
        [*zoo_cli, "push", str(folder), "--repo", REPO], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 2 and run.stderr.startswith("zoo: error: no Hugging Face token")
    assert run.stderr.count("\n") == 1 and hub.head(REPO) == head


# ---------------------------------------------------------------------------------------------
# Bad input: one clear error each, nothing published
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "repo", ["no-namespace", "a/b/c", "org/na me", "org/..", "-org/x", "org/x--y", "org/x.git"]
)
def test_invalid_repo_id(hub: HubServer, folder: Path, repo: str, capsys) -> None:
    assert main(["push", str(folder), f"--repo={repo}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and "not a valid Hub repo id" in err and err.count("\n") == 1
    assert writes(hub) == []


def test_invalid_branch(hub: HubServer, folder: Path) -> None:
    with pytest.raises(PublishError, match=r"not a valid branch name"):
        push(folder, REPO, revision="../main")
    with pytest.raises(PublishError, match=r"commit sha"):
        push(folder, REPO, revision="0" * 40)


def test_missing_token(hub: HubServer, folder: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match=r"no Hugging Face token: set HF_TOKEN .*hf auth login"):
        push(folder, REPO)
    assert writes(hub) == []


def test_wrong_token(hub: HubServer, folder: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_one")
    with pytest.raises(PublishError, match=r"HTTP 401.*did not accept the token"):
        push(folder, REPO)
    assert REPO not in hub.repos


def published_then_failing(hub: HubServer, folder: Path, copy: Path) -> tuple[str, dict]:
    """Publish ``folder``, then make ``copy`` a new version whose weights differ."""
    first = push(folder, REPO).commit
    assert first is not None
    encoder = zoo.load(copy)
    with torch.no_grad():
        encoder.backbone.conv1.weight.mul_(0.5)
    zoo.export(encoder, copy)
    return first, hub.files(REPO)


def test_refused_lfs_upload_commits_nothing(hub: HubServer, folder: Path, copy: Path) -> None:
    first, before = published_then_failing(hub, folder, copy)
    hub.refuse_lfs_upload = True
    with pytest.raises(PublishError, match=r"HTTP 403.*nothing was committed"):
        push(copy, REPO)
    assert hub.head(REPO) == first and hub.files(REPO) == before
    assert not any(r == ("POST", f"/api/models/{REPO}/commit/main") for r in hub.log[-3:])


def test_upload_dropped_half_way_commits_nothing(
    hub: HubServer, folder: Path, copy: Path, monkeypatch
) -> None:
    from huggingface_hub.utils import _http

    class NoWait:  # the client retries a dropped upload with backoff; the test need not wait
        sleep = staticmethod(lambda seconds: None)

        def __getattr__(self, name: str):
            return getattr(time, name)

    monkeypatch.setattr(_http, "time", NoWait())
    first, before = published_then_failing(hub, folder, copy)
    commits = len(hub.repos[REPO].commits)
    hub.drop_lfs_upload = True
    with pytest.raises(
        PublishError, match=r"while uploading 'model.(safetensors|onnx)'.*dropped.*nothing was committed"
    ):
        push(copy, REPO)
    assert sum(1 for r in hub.log if r[0] == "PUT") > 2  # the client retried, then gave up
    assert hub.head(REPO) == first and hub.files(REPO) == before and len(hub.repos[REPO].commits) == commits
    # Once the server is healthy again, the same push goes through whole.
    hub.drop_lfs_upload = False
    assert push(copy, REPO).commit == hub.head(REPO) != first


def test_refused_commit(hub: HubServer, folder: Path) -> None:
    hub.refuse_commit = 500
    with pytest.raises(PublishError, match=r"HTTP 500.*nothing was committed"):
        push(folder, REPO)
    assert set(hub.files(REPO)) == {".gitattributes"}


def test_onnx_that_does_not_match_is_refused(hub: HubServer, copy: Path) -> None:
    from zoo.onnx import export_onnx

    other = zoo.load(NAME, pretrained=False)  # same architecture, random weights
    export_onnx(other.backbone, copy / "model.onnx", (32, 32))
    with pytest.raises(PublishError, match=r"model.onnx does not match the PyTorch weights"):
        push(copy, REPO)
    (copy / "model.onnx").unlink()
    with pytest.raises(PublishError, match=r"has no model.onnx; .*zoo export"):
        push(copy, REPO, dry_run=True)
    assert writes(hub) == []


def test_card_number_without_how_is_refused(hub: HubServer, copy: Path) -> None:
    card = (copy / "README.md").read_text()
    row = next(ln for ln in card.splitlines() if ln.startswith("| CIFAR-10 (test split) | weighted kNN"))
    cells = row.split("|")
    cells[4] = " "  # the "how it was measured" cell
    (copy / "README.md").write_text(card.replace(row, "|".join(cells)))
    with pytest.raises(PublishError, match=r"does not say how it was measured"):
        push(copy, REPO)
    assert writes(hub) == []


def test_config_number_without_how_is_refused(copy: Path) -> None:
    config = json.loads((copy / "config.json").read_text())
    config["zoo"]["measured"][0]["how"] = ""
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(PublishError, match=r"config.json has a knn-k20 number .* without how"):
        push(copy, REPO, dry_run=True)


def test_check_card() -> None:
    good = (
        "---\nmodel-index:\n- name: x\n  results:\n  - metrics:\n    - {type: accuracy, value: 51.5}\n---\n"
        "# x\n\n## Evaluation\n\n| dataset | protocol | value | how it was measured | source |\n"
        "|---|---|---|---|---|\n| CIFAR-10 | kNN | 51.50 | k=20 on frozen features | `zoo eval x` |\n"
        "\n## Next\n"
    )
    assert check_card(good) == []
    assert "no evaluation row" in check_card(good.replace("value: 51.5", "value: 60.0"))[0]
    assert "does not say how" in check_card(good.replace("k=20 on frozen features", "–"))[0]
    assert "does not give its source" in check_card(good.replace("`zoo eval x`", ""))[0]
    assert "no '## Evaluation' table" in check_card(good.split("# x")[0])[0]
    assert "not in the folder" in check_card(good + "![curves](curves/x.png)\n", Path("/nonexistent"))[0]


def test_check_card_reads_the_few_labels_and_transfer_tables() -> None:
    """Fine-tune and transfer numbers sit in tables of their own (columns top-1 / command)."""
    card = (Path(__file__).resolve().parents[1] / "model_cards" / "swav-r18q-cifar10.md").read_text()
    assert "## Few labels" in card and "## Transfer" in card
    assert check_card(card) == []
    # A transfer number whose row says nothing of how it was measured is refused.
    row = next(ln for ln in card.split("## Transfer")[1].splitlines() if ln.startswith("| Imagenette"))
    cells = row.split(" | ")
    cells[3] = "–"
    problems = check_card(card.replace(row, " | ".join(cells)))
    assert any("does not say how" in p for p in problems), problems


# ---------------------------------------------------------------------------------------------
# Registry entries released on a Hub, pinned to a commit
# ---------------------------------------------------------------------------------------------


def released(monkeypatch, commit: str, *, installed: bool, name: str = NAME + ".hub") -> str:
    """Register ``name``: NAME's record with its weights also released as REPO at ``commit``."""
    base = zoo.model_info(NAME)
    weights = dataclasses.replace(
        base.weights,
        file=base.weights.file if installed else "zoo:weights/not-installed.safetensors",
        hf_hub_id=REPO,
        hf_revision=commit,
    )
    monkeypatch.setitem(registry._MODELS, name, dataclasses.replace(base, name=name, weights=weights))
    return name


def test_release_pinned_to_a_commit_loads_from_the_hub_then_offline(
    hub: HubServer, folder: Path, copy: Path, monkeypatch, cifar_test
) -> None:
    first = push(NAME, REPO).commit
    assert first is not None
    name = released(monkeypatch, first, installed=False)
    # main moves on to other weights: the pinned release must not follow it.
    published_then_failing(hub, folder, copy)
    push(copy, REPO)
    assert hub.head(REPO) != first

    images, _ = cifar_test
    expected = zoo.load(NAME).embed(images, backend="torch")
    assert np.array_equal(zoo.load(name).embed(images, backend="torch"), expected)
    assert ("GET", f"/{REPO}/resolve/{first}/model.safetensors") in hub.log
    # Once fetched, the release loads with no network at all.
    hub.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert np.array_equal(zoo.load(name).embed(images, backend="torch"), expected)


def test_installed_copy_comes_before_the_hub(hub: HubServer, monkeypatch) -> None:
    name = released(monkeypatch, "0" * 40, installed=True)  # a commit the server never had
    hub.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load(name).entry.weights.hf_revision == "0" * 40
    assert hub.log == []


def test_a_release_that_is_not_the_registered_file_is_refused(
    hub: HubServer, folder: Path, copy: Path, monkeypatch
) -> None:
    published_then_failing(hub, folder, copy)
    commit = push(copy, REPO).commit  # other weights than the sha256 the record pins
    assert commit is not None
    with pytest.raises(ChecksumError, match="does not match the expected"):
        zoo.load(released(monkeypatch, commit, installed=False))


def test_hf_revision_must_be_a_pinned_commit() -> None:
    sha = zoo.model_info(NAME).weights.sha256
    with pytest.raises(ValueError, match="pinned 40-hex commit sha"):
        Weights(sha256=sha, hf_hub_id=REPO, hf_revision="main")
    with pytest.raises(ValueError, match="hf_hub_id, which is missing"):
        Weights(sha256=sha, file="zoo:weights/x.safetensors", hf_revision="0" * 40)
    # Records read from files (config.json) carry the field through the schema check.
    record = zoo.model_info(NAME).to_dict()
    record["weights"].update(hf_hub_id=REPO, hf_revision="a" * 40)
    assert registry.validate_record(record).weights.hf_revision == "a" * 40
