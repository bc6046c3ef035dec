"""Tests of zoo.hub against real HTTP servers on 127.0.0.1 (see tests/_servers.py): no mocking."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _servers import FileServer, free_port, hub_headers, in_threads, point_hf_at, serve

from zoo import hub
from zoo.errors import CacheError, ChecksumError, DownloadError, OfflineError, ZooError

DATA = bytes(range(256)) * 40  # 10 KiB, every byte value
SHA = hashlib.sha256(DATA).hexdigest()
ZOO_ENV = ("ZOO_HOME", "ZOO_OFFLINE", "XDG_CACHE_HOME")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not depend on (or write to) the developer's own cache settings."""
    for name in ZOO_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(path))
    return path


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serve({"/w/model.bin": DATA, "/other/model.bin": DATA[:100]}) as srv:
        yield srv


def cached_path(home: Path, name: str = "model.bin", sha: str = SHA) -> Path:
    return home / "downloads" / sha[:16] / name


# ---------------------------------------------------------------------------------------------
# environment helpers
# ---------------------------------------------------------------------------------------------


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert hub.cache_dir() == tmp_path / "h" / ".cache" / "zoo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "zoo"
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zh"))
    assert hub.cache_dir() == tmp_path / "zh"
    assert not (tmp_path / "zh").exists()  # never created by a mere lookup


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), (" On ", True), ("0", False), ("", False), ("no", False)],
)
def test_is_offline(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", value)
    assert hub.is_offline() is expected


def test_is_offline_unset() -> None:
    assert hub.is_offline() is False


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA * 200)  # > 1 chunk
    assert hub.sha256_file(path) == hashlib.sha256(DATA * 200).hexdigest()
    assert hub.sha256_file(str(path)) == hashlib.sha256(DATA * 200).hexdigest()


# ---------------------------------------------------------------------------------------------
# http(s)
# ---------------------------------------------------------------------------------------------


def test_download_verifies_and_caches(home: Path, server: FileServer) -> None:
    url = server.url("/w/model.bin")
    path = hub.download_url(url, sha256=SHA, progress=False)
    assert path == cached_path(home)
    assert path.read_bytes() == DATA
    assert server.count("/w/model.bin") == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.bin", "model.bin.lock"]

    # Cache hit: no request at all.
    assert hub.download_url(url, sha256=SHA, progress=False) == path
    assert server.count("/w/model.bin") == 1
    # The hash is the key: an uppercase hash or another mirror of the same content hits too.
    assert hub.download_url(server.url("/mirror/model.bin"), sha256=SHA.upper(), progress=False) == path
    assert server.count("/mirror/model.bin") == 0


def test_download_without_sha_is_keyed_by_url(home: Path, server: FileServer) -> None:
    url = server.url("/w/model.bin")
    path = hub.download_url(url, progress=False)
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    assert path == home / "downloads" / key / "model.bin"
    assert path.read_bytes() == DATA
    assert hub.download_url(url, progress=False) == path
    assert server.count("/w/model.bin") == 1

    # Same basename, other URL: another entry, no collision.
    other = hub.download_url(server.url("/other/model.bin"), progress=False)
    assert other != path
    assert other.read_bytes() == DATA[:100]


def test_filename_and_cache_arguments(tmp_path: Path, server: FileServer) -> None:
    path = hub.download_url(
        server.url("/w/model.bin"), sha256=SHA, filename="renamed.pt", cache=tmp_path / "c", progress=False
    )
    assert path == tmp_path / "c" / "downloads" / SHA[:16] / "renamed.pt"
    assert path.read_bytes() == DATA
    with pytest.raises(ValueError, match="plain file name"):
        hub.download_url(server.url("/w/model.bin"), filename="../x", cache=tmp_path, progress=False)


def test_progress_bar_enabled_works(home: Path, server: FileServer) -> None:
    assert hub.download_url(server.url("/w/model.bin"), sha256=SHA).read_bytes() == DATA


def test_offline_reuses_cache_with_server_down(
    home: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.url("/w/model.bin")
    first = hub.download_url(url, sha256=SHA, progress=False)
    server.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert hub.download_url(url, sha256=SHA, progress=False) == first
    assert first.read_bytes() == DATA


def test_offline_empty_cache_raises(home: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "true")
    url = server.url("/w/model.bin")
    with pytest.raises(OfflineError) as info:
        hub.download_url(url, sha256=SHA, progress=False)
    message = str(info.value)
    assert url in message
    assert str(cached_path(home)) in message
    assert "ZOO_OFFLINE" in message
    assert server.count("/w/model.bin") == 0
    assert not home.exists()  # offline lookups write nothing


def test_offline_corrupted_cache_raises(
    home: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False)
    path.write_bytes(b"garbage")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="corrupted"):
        hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False)


def test_checksum_mismatch_leaves_nothing(home: Path, server: FileServer) -> None:
    wrong = "0" * 64
    url = server.url("/w/model.bin")
    with pytest.raises(ChecksumError) as info:
        hub.download_url(url, sha256=wrong, progress=False)
    message = str(info.value)
    assert wrong in message and SHA in message and url in message
    folder = cached_path(home, sha=wrong).parent
    assert not (folder / "model.bin").exists()
    assert not (folder / "model.bin.part").exists()


def test_corrupted_cache_warns_and_redownloads(home: Path, server: FileServer) -> None:
    url = server.url("/w/model.bin")
    path = hub.download_url(url, sha256=SHA, progress=False)
    path.write_bytes(DATA[:-1] + b"\x00")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        again = hub.download_url(url, sha256=SHA, progress=False)
    assert again == path
    assert path.read_bytes() == DATA
    assert server.count("/w/model.bin") == 2


def test_truncated_transfer_then_resume(home: Path, server: FileServer) -> None:
    url = server.url("/w/model.bin")
    final = cached_path(home)
    part = final.with_name("model.bin.part")

    server.truncate_after = 1000
    with pytest.raises(DownloadError, match="cut short") as info:
        hub.download_url(url, sha256=SHA, progress=False)
    assert url in str(info.value)
    assert not final.exists()
    assert part.read_bytes() == DATA[:1000]

    server.truncate_after = None
    assert hub.download_url(url, sha256=SHA, progress=False).read_bytes() == DATA
    assert not part.exists()
    first, second = server.records("/w/model.bin")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=1000-"


def test_resume_restarts_when_server_ignores_range(home: Path, server: FileServer) -> None:
    final = cached_path(home)
    final.parent.mkdir(parents=True)
    final.with_name("model.bin.part").write_bytes(b"stale prefix")
    server.honor_range = False  # answers 200 with the whole body
    assert hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False).read_bytes() == DATA
    assert server.records("/w/model.bin")[0].headers["Range"] == "bytes=12-"
    assert server.count("/w/model.bin") == 1


def test_resume_from_a_bad_prefix_starts_over_once(home: Path, server: FileServer) -> None:
    final = cached_path(home)
    final.parent.mkdir(parents=True)
    final.with_name("model.bin.part").write_bytes(b"\xff" * 100)  # not DATA's first 100 bytes
    assert hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False).read_bytes() == DATA
    ranges = [r.headers.get("Range") for r in server.records("/w/model.bin")]
    assert ranges == ["bytes=100-", None]


def test_complete_leftover_part_is_used(home: Path, server: FileServer) -> None:
    final = cached_path(home)
    final.parent.mkdir(parents=True)
    final.with_name("model.bin.part").write_bytes(DATA)  # crashed between download and rename
    assert hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False).read_bytes() == DATA
    assert server.count("/w/model.bin") == 1  # one 416 answer, no body transferred


def test_leftover_part_longer_than_file_restarts(home: Path, server: FileServer) -> None:
    final = cached_path(home)
    final.parent.mkdir(parents=True)
    final.with_name("model.bin.part").write_bytes(DATA + b"extra")  # server answers 416
    assert hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False).read_bytes() == DATA
    ranges = [r.headers.get("Range") for r in server.records("/w/model.bin")]
    assert ranges == [f"bytes={len(DATA) + 5}-", None]


def test_http_404(home: Path, server: FileServer) -> None:
    url = server.url("/missing.bin")
    with pytest.raises(DownloadError, match="404") as info:
        hub.download_url(url, progress=False)
    assert url in str(info.value)
    assert not list((home / "downloads").rglob("missing.bin"))


def test_connection_refused(home: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/w/model.bin"
    with pytest.raises(DownloadError) as info:
        hub.download_url(url, sha256=SHA, progress=False)
    assert url in str(info.value)
    assert "refused" in str(info.value).lower()


def test_timeout(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "DEFAULT_TIMEOUT", 0.2)
    with serve({"/slow.bin": DATA}, delay=1.0) as srv:
        with pytest.raises(DownloadError, match="timed out"):
            hub.download_url(srv.url("/slow.bin"), progress=False)


def test_unwritable_cache_dir(tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod is no obstacle for root, but nothing can mkdir below a regular file.
    (tmp_path / "afile").write_text("not a directory")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "afile" / "cache"))
    with pytest.raises(CacheError) as info:
        hub.download_url(server.url("/w/model.bin"), sha256=SHA, progress=False)
    assert str(tmp_path / "afile" / "cache") in str(info.value)
    assert "ZOO_HOME" in str(info.value)
    assert server.count("/w/model.bin") == 0


def test_concurrent_downloads_fetch_once(home: Path) -> None:
    with serve({"/w/model.bin": DATA}, delay=0.3) as srv:
        results, errors = in_threads(
            lambda: hub.download_url(srv.url("/w/model.bin"), sha256=SHA, progress=False), 3
        )
    assert not errors
    assert results == [cached_path(home)] * 3
    assert srv.count("/w/model.bin") == 1


def test_bad_arguments(home: Path) -> None:
    with pytest.raises(ValueError, match="64 hex"):
        hub.download_url("http://127.0.0.1:9/x.bin", sha256="abc123")
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        hub.download_url("ftp://example.com/x.bin")
    with pytest.raises(DownloadError, match="filename="):
        hub.download_url("http://127.0.0.1:9/", progress=False)


# ---------------------------------------------------------------------------------------------
# file:// and local paths
# ---------------------------------------------------------------------------------------------


def test_file_url_and_local_path(tmp_path: Path, home: Path) -> None:
    weights = tmp_path / "my weights.bin"
    weights.write_bytes(DATA)
    assert hub.download_url(weights.as_uri(), sha256=SHA) == weights
    assert hub.download_url(str(weights), sha256=SHA) == weights
    assert hub.download_url(str(weights)) == weights
    assert not home.exists()  # used in place, never copied


def test_file_url_wrong_hash(tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(DATA)
    wrong = "f" * 64
    with pytest.raises(ChecksumError) as info:
        hub.download_url(weights.as_uri(), sha256=wrong)
    message = str(info.value)
    assert wrong in message and SHA in message and str(weights) in message


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        hub.download_url((tmp_path / "nope.bin").as_uri())
    with pytest.raises(DownloadError, match="does not exist"):
        hub.download_url(str(tmp_path / "nope.bin"))
    with pytest.raises(DownloadError, match="directory"):
        hub.download_url(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub, impersonated by a local server through HF_ENDPOINT
# ---------------------------------------------------------------------------------------------

REPO = "zoo-test/tiny-encoder"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def resolve_path(filename: str, revision: str = "main", repo: str = REPO) -> str:
    return f"/{repo}/resolve/{revision}/{filename}"


@dataclass
class FakeHub:
    server: FileServer
    cache: Path


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    pytest.importorskip("huggingface_hub")
    files = {resolve_path("model.safetensors"): DATA}
    headers = {path: hub_headers(body, commit=COMMIT) for path, body in files.items()}
    responses = {
        # What the Hub answers for a missing file / repo: the X-Error-Code header matters.
        resolve_path("missing.bin"): (404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}),
        resolve_path("model.safetensors", repo="zoo-test/nope"): (401, {"X-Error-Code": "RepoNotFound"}),
        resolve_path("forbidden.bin"): (403, {}),
    }
    with serve(files, headers=headers, responses=responses) as srv:
        point_hf_at(monkeypatch, srv.base_url, tmp_path / "hf")
        yield FakeHub(srv, tmp_path / "hf" / "hub")


def test_hf_download_then_offline(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hf_path = hub.hf_download(REPO, "model.safetensors")
    assert path.read_bytes() == DATA
    assert fake_hub.cache in path.parents
    assert path.parent.name == COMMIT  # snapshots/<commit>/model.safetensors
    methods = [r.method for r in fake_hub.server.records(resolve_path("model.safetensors"))]
    assert methods == ["HEAD", "GET"]

    fake_hub.server.stop()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert hub.hf_download(REPO, "model.safetensors") == hf_path
    assert hub.hf_download(REPO, "model.safetensors", revision="main") == hf_path


def test_hf_offline_not_cached(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        hub.hf_download(REPO, "model.safetensors")
    assert "ZOO_OFFLINE" in str(info.value) and REPO in str(info.value)
    assert fake_hub.server.count(resolve_path("model.safetensors")) == 0


def test_hf_hub_offline_env_is_offline_error(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        hub.hf_download(REPO, "model.safetensors")
    assert fake_hub.server.count(resolve_path("model.safetensors")) == 0


def test_hf_missing_file(fake_hub: FakeHub) -> None:
    with pytest.raises(DownloadError) as info:
        hub.hf_download(REPO, "missing.bin")
    assert REPO in str(info.value) and "missing.bin" in str(info.value)
    assert "not found" in str(info.value)


def test_hf_missing_file_plain_404(fake_hub: FakeHub) -> None:
    # A bare 404 without the Hub's X-Error-Code header (the server's default answer).
    with pytest.raises(DownloadError, match="404"):
        hub.hf_download(REPO, "absent-without-error-code.bin")


def test_hf_missing_repo(fake_hub: FakeHub) -> None:
    with pytest.raises(DownloadError, match=r"zoo-test/nope.*not found"):
        hub.hf_download("zoo-test/nope", "model.safetensors")


def test_hf_http_error(fake_hub: FakeHub) -> None:
    with pytest.raises(DownloadError, match="403"):
        hub.hf_download(REPO, "forbidden.bin")


def test_hf_invalid_repo_id(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append((a, k)))
    expected = "'not a valid//repo id' is not a Hub repo id; expected 'org/name'"
    with pytest.raises(DownloadError, match=expected):
        hub.hf_download("not a valid//repo id", "model.safetensors")
    assert calls == []  # refused before any client sees it


def test_hf_lfs_redirect_to_cdn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large files: the Hub answers 302 to a storage host and puts the metadata on the 302."""
    pytest.importorskip("huggingface_hub")
    blob = f"/blobs/{SHA}"
    with serve({blob: DATA}) as cdn:  # another port, hence another origin, like a CDN
        redirect = {
            "Location": cdn.url(blob),
            "X-Repo-Commit": COMMIT,
            "X-Linked-Etag": f'"{SHA}"',
            "X-Linked-Size": str(len(DATA)),
        }
        with serve(responses={resolve_path("big.safetensors"): (302, redirect)}) as hub_srv:
            point_hf_at(monkeypatch, hub_srv.base_url, tmp_path / "hf")
            path = hub.hf_download(REPO, "big.safetensors")
    assert path.read_bytes() == DATA
    assert path.resolve().name == SHA  # blob named after the linked etag
    assert [r.method for r in hub_srv.records()] == ["HEAD"]
    assert [r.method for r in cdn.records()] == ["GET"]


def test_hf_env_vars_in_fresh_process(tmp_path: Path) -> None:
    """HF_ENDPOINT and HF_HOME set before huggingface_hub is imported are honoured as is."""
    pytest.importorskip("huggingface_hub")
    files = {resolve_path("model.safetensors"): DATA}
    headers = {path: hub_headers(body, commit=COMMIT) for path, body in files.items()}
    root = Path(__file__).resolve().parents[1]
    # An empty stand-in for the `zoo` package keeps zoo/__init__.py (and torch) out of the child:
    # this test is about hub.py and the environment only, and must stay fast.
    script = (
        "import sys, types\n"
        "pkg = types.ModuleType('zoo')\n"
        f"pkg.__path__ = [{str(root / 'zoo')!r}]\n"
        "sys.modules['zoo'] = pkg\n"
        "from zoo.hub import hf_download\n"
        f"print(hf_download({REPO!r}, 'model.safetensors'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ZOO_", "HUGGINGFACE_"))}
    with serve(files, headers=headers) as srv:
        env |= {
            "HF_ENDPOINT": srv.base_url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")])),
        }
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert tmp_path / "hf" / "hub" in path.parents
    assert path.read_bytes() == DATA


def test_hf_without_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(DownloadError, match="pip install huggingface_hub") as info:
        hub.hf_download(REPO, "model.safetensors")
    assert isinstance(info.value, ZooError)
