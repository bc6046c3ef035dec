"""Issue 14, items 1, 2, 4 and 8 (redirect loop): downloads that must not keep or return wrong data.

Every test runs against a real HTTP server on 127.0.0.1 (tests/_servers.py) that misbehaves the
way real ones do: bodies without a length cut short, files replaced between two requests,
servers that ignore ``Range`` or ``If-Range``, redirect loops.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import FileServer, in_threads, serve

import zoo
from zoo import hub
from zoo.errors import DownloadError, OfflineError, UnknownModelError

V1 = bytes(range(256)) * 40  # 10 KiB
V2 = bytes(reversed(range(256))) * 40  # same size, other bytes: a new release under the same URL
PATH = "/w/model.bin"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("ZOO_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    return tmp_path / "zoo-home"


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serve({PATH: V1}) as srv:
        yield srv


def final_path(home: Path, url: str) -> Path:
    return home / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16] / "model.bin"


# ---------------------------------------------------------------------------------------------
# 1. a body without Content-Length that is cut short
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("validators", [None, "etag"])
def test_cut_short_body_without_length_is_not_cached(
    home: Path, server: FileServer, validators: str | None
) -> None:
    server.send_length, server.validators, server.truncate_after = False, validators, 1000
    url = server.url(PATH)
    with pytest.raises(DownloadError, match="cut short"):
        hub.download_url(url, progress=False)
    assert not final_path(home, url).exists()  # never renamed into the cache as complete

    server.truncate_after = None
    path = hub.download_url(url, progress=False)
    assert path.read_bytes() == V1
    ranges = [r.headers.get("Range") for r in server.records(PATH)]
    # GET (cut short), the probe past its end that found more bytes, then the retry: resumed
    # when a validator proves the kept bytes are of the same version, else from the start.
    assert ranges[:2] == [None, "bytes=1000-"]
    assert ranges[2] == ("bytes=1000-" if validators else None)
    # The complete file is confirmed by a last probe past its end (416), then cached.
    assert ranges[-1] == f"bytes={len(V1)}-"
    requests = server.count(PATH)
    assert hub.download_url(url, progress=False) == path
    assert server.count(PATH) == requests  # a cache hit: no request
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.bin", "model.bin.lock"]


def test_unconfirmable_body_is_used_once_but_not_kept(home: Path, server: FileServer) -> None:
    """No length and no Range support: the size cannot be confirmed, so the file is not trusted."""
    server.send_length, server.honor_range, server.truncate_after = False, False, 1000
    url = server.url(PATH)
    with pytest.warns(RuntimeWarning, match="may be incomplete"):
        first = hub.download_url(url, progress=False)
    assert first.read_bytes() == V1[:1000]  # what arrived (nothing could tell it was short)

    server.truncate_after = None
    with pytest.warns(RuntimeWarning, match="may be incomplete"):
        again = hub.download_url(url, progress=False)
    assert again == first and again.read_bytes() == V1  # downloaded again, not taken from cache


def test_unconfirmed_file_offline_is_an_error(
    home: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.send_length, server.honor_range = False, False
    with pytest.warns(RuntimeWarning):
        hub.download_url(server.url(PATH), progress=False)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="may be incomplete"):
        hub.download_url(server.url(PATH), progress=False)


def test_a_registry_file_of_unconfirmed_length_is_not_pinned(
    home: Path, default_encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trust on first use pins a download's sha256, but not one the server could not confirm
    whole: the cut-short file's hash would refuse the whole file on every later load."""
    from zoo import registry
    from zoo.folder import WEIGHTS_NAME

    body = (default_encoder.save(tmp_path / "enc", card=False) / WEIGHTS_NAME).read_bytes()
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    with serve({PATH: body}) as srv:
        srv.send_length, srv.honor_range, srv.truncate_after = False, False, len(body) // 2
        base = zoo.model_info(zoo.DEFAULT_MODEL)
        weights = zoo.Weights(url=srv.url(PATH), format="zoo")  # no hash upstream: trust on first use
        registry.register_model(zoo.ModelEntry(**{**base.__dict__, "name": "tofu-lite0", "weights": weights}))
        with pytest.warns(RuntimeWarning, match="may be incomplete"), pytest.raises(zoo.WeightsError):
            zoo.load("tofu-lite0", progress=False)  # half a file: not loadable
        cached = final_path(home, srv.url(PATH))
        assert not cached.with_name(cached.name + ".sha256").exists()
        srv.truncate_after = None  # the whole file now, still of a length nobody can confirm
        with pytest.warns(RuntimeWarning, match="may be incomplete"):
            assert zoo.load("tofu-lite0", progress=False).entry.name == "tofu-lite0"
        assert not cached.with_name(cached.name + ".sha256").exists()


def test_body_without_length_is_confirmed_then_cached(home: Path, server: FileServer) -> None:
    server.send_length = False
    url = server.url(PATH)
    path = hub.download_url(url, progress=False)
    assert path.read_bytes() == V1
    assert hub.download_url(url, progress=False) == path
    assert server.count(PATH) == 2  # the download and its 416 probe; the second call is a hit


@pytest.mark.parametrize("why", ["no-fcntl", "flock-refused"])
def test_without_a_lock_concurrent_downloads_do_not_share_a_part_file(
    home: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """Where no lock can be taken (Windows; a file system refusing flock), each download writes
    a .part of its own: before, they appended to one and renamed it from under each other."""

    if why == "no-fcntl":
        monkeypatch.setattr(hub, "fcntl", None)
    else:

        class Refusing:
            LOCK_EX = 2

            @staticmethod
            def flock(fd: int, op: int) -> None:
                raise OSError(38, "Function not implemented")

        monkeypatch.setattr(hub, "fcntl", Refusing)
    body = bytes(range(256)) * 4096 * 4  # 4 MiB: several blocks each, so the writes interleave
    expected = hashlib.sha256(body).hexdigest()
    with serve({PATH: body}, delay=0.3) as srv:
        results, errors = in_threads(
            lambda: hub.download_url(srv.url(PATH), sha256=expected, progress=False), 4
        )
    assert not errors, errors
    assert len(set(results)) == 1 and results[0].read_bytes() == body
    assert not [p.name for p in results[0].parent.iterdir() if ".part" in p.name]


def test_without_a_lock_an_interrupted_download_resumes(
    home: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "fcntl", None)
    server.validators, server.truncate_after = "etag", 1000
    url = server.url(PATH)
    shared = final_path(home, url).with_name("model.bin.part")
    with pytest.raises(DownloadError, match=f"partial file {shared} is kept"):
        hub.download_url(url, progress=False)
    assert shared.stat().st_size == 1000  # handed back under the shared name, for the next call
    server.truncate_after = None
    assert hub.download_url(url, progress=False).read_bytes() == V1
    assert server.records(PATH)[-1].headers.get("Range") == "bytes=1000-"
    assert sorted(p.name for p in shared.parent.iterdir()) == ["model.bin", "model.bin.lock"]


# ---------------------------------------------------------------------------------------------
# 2. resuming a .part must not splice two versions of the file
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("validators", ["etag", "last-modified"])
def test_resume_after_the_file_changed_starts_over(home: Path, server: FileServer, validators: str) -> None:
    server.validators, server.truncate_after = validators, 1000
    url = server.url(PATH)
    with pytest.raises(DownloadError, match="cut short"):
        hub.download_url(url, progress=False)

    server.files[PATH], server.truncate_after = V2, None  # a new release under the same URL
    path = hub.download_url(url, progress=False)
    assert path.read_bytes() == V2  # not V1[:1000] + V2[1000:]
    retry = server.records(PATH)[1]
    assert retry.headers["Range"] == "bytes=1000-"
    assert retry.headers["If-Range"]  # the server, not zoo, decided the kept bytes were stale
    assert server.count(PATH) == 2


def test_resume_of_the_same_version_continues(home: Path, server: FileServer) -> None:
    server.validators, server.truncate_after = "etag", 1000
    url = server.url(PATH)
    with pytest.raises(DownloadError):
        hub.download_url(url, progress=False)
    server.truncate_after = None
    assert hub.download_url(url, progress=False).read_bytes() == V1
    retry = server.records(PATH)[1]
    assert retry.headers["Range"] == "bytes=1000-" and retry.headers["If-Range"].startswith('"')


def test_server_ignoring_if_range_is_caught_by_its_etag(home: Path, server: FileServer) -> None:
    """A server that answers 206 whatever If-Range says: the new ETag on the 206 gives it away."""
    server.validators, server.truncate_after, server.honor_if_range = "etag", 1000, False
    url = server.url(PATH)
    with pytest.raises(DownloadError):
        hub.download_url(url, progress=False)
    server.files[PATH], server.truncate_after = V2, None
    assert hub.download_url(url, progress=False).read_bytes() == V2
    assert [r.headers.get("Range") for r in server.records(PATH)] == [None, "bytes=1000-", None]


def test_no_validator_and_no_hash_never_resumes(home: Path, server: FileServer) -> None:
    server.truncate_after = 1000  # Content-Length announced, no ETag, no Last-Modified
    url = server.url(PATH)
    with pytest.raises(DownloadError, match="cut short"):
        hub.download_url(url, progress=False)
    server.files[PATH], server.truncate_after = V2, None
    assert hub.download_url(url, progress=False).read_bytes() == V2
    assert [r.headers.get("Range") for r in server.records(PATH)] == [None, None]


# ---------------------------------------------------------------------------------------------
# 4. hf-hub: revisions and file names are checked before the client sees them
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "filename"),
    [
        ("../../../etc", "config.json"),
        ("main/../../x", "config.json"),
        ("feature/branch", "config.json"),
        ("..", "config.json"),
        ("main", "../config.json"),
        ("main", "sub/model.safetensors"),
        ("main", ".."),
        ("main", "a\\b.json"),
        ("", "config.json"),
    ],
)
def test_hf_bad_revision_or_filename_never_reaches_the_client(
    monkeypatch: pytest.MonkeyPatch, revision: str, filename: str
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append((a, k)))
    with pytest.raises(DownloadError, match=r"revision|file name") as info:
        hub.hf_download("zoo-test/tiny", filename, revision=revision)
    assert repr(revision if "revision" in str(info.value) else filename) in str(info.value)
    assert calls == []


@pytest.mark.parametrize(
    "revision", ["main", "v1.0", "0123456789abcdef0123456789abcdef01234567", "refs/pr/12", None]
)
def test_hf_good_revisions_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, revision: str | None
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []

    def fake(repo_id: str, filename: str, **kw: object) -> str:
        calls.append((repo_id, filename, kw["revision"]))
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    assert (
        hub.hf_download("zoo-test/tiny", "model.safetensors", revision=revision).name == "model.safetensors"
    )
    assert calls == [("zoo-test/tiny", "model.safetensors", revision)]


@pytest.mark.parametrize("spec", ["hf-hub:org/name@../../x", "hf-hub:org/name@a/b", "hf-hub:org/name@"])
def test_load_hf_with_bad_revision_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append(a))
    with pytest.raises((DownloadError, UnknownModelError), match="revision"):
        zoo.load(spec)
    assert calls == []


# ---------------------------------------------------------------------------------------------
# 8. a redirect loop is a DownloadError, and `zoo download` prints one line for it
# ---------------------------------------------------------------------------------------------


def test_redirect_loop_is_one_clear_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve() as srv:
        srv.responses["/a/model.safetensors"] = (302, {"Location": srv.url("/b/model.safetensors")})
        srv.responses["/b/model.safetensors"] = (302, {"Location": srv.url("/a/model.safetensors")})
        with pytest.raises(DownloadError, match="redirect"):
            hub.download_url(srv.url("/a/model.safetensors"), progress=False)
        from zoo.cli import main

        assert main(["download", srv.url("/a/model.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo: error: ") and "redirect" in err[0]
