"""A Hugging Face Hub-compatible server on 127.0.0.1, for publishing tests that must not mock the network.

:func:`serve_hub` starts :class:`HubServer` on a free port in a daemon thread. It keeps git-like
repositories in memory (branches pointing at commits, each commit a full ``{path: file}`` tree)
and speaks the endpoints that ``huggingface_hub``'s upload and download paths call, as read in the
installed client (``hf_api.create_repo``, ``create_branch``, ``_validate_yaml``,
``_commit_api._fetch_upload_modes``, ``lfs.post_lfs_batch_info`` / ``lfs_upload``,
``_commit_api._send_commit``, ``file_download.hf_hub_download``):

===========================================================  ========================================
``POST /api/repos/create``                                   create a repo (409 if it exists)
``POST /api/models/{repo}/branch/{branch}``                  create a branch at main's head
``GET  /api/models/{repo}[/revision/{rev}]``                 repo info (``sha``, ``siblings``)
``POST /api/validate-yaml``                                  README front matter check
``POST /api/models/{repo}/preupload/{rev}``                  upload mode per file: regular or LFS
``POST /{repo}.git/info/lfs/objects/batch``                  LFS batch: where to PUT each object
``PUT  /lfs-upload/{oid}``                                   the LFS object (sha256 and size checked)
``POST /{repo}.git/info/lfs/objects/verify``                 LFS verify
``POST /api/models/{repo}/commit/{rev}``                     the commit (ndjson), atomic
``HEAD|GET /{repo}/resolve/{rev}/{path}``                    download, with ``X-Repo-Commit``/``ETag``
===========================================================  ========================================

Like the Hub, a commit names its LFS files by sha256 and is refused (nothing changes) when one of
them was never uploaded, so a push whose upload failed half-way publishes nothing. The client
uploads through Xet when ``hf_xet`` is installed; this server speaks LFS only, so tests set
``HF_HUB_DISABLE_XET`` (see :func:`point_hub_client_at`).

Faults to inject (attributes, read afresh by every request): ``refuse_lfs_upload`` answers the LFS
PUT with 403, ``drop_lfs_upload`` reads half of the object and hangs up without an answer,
``refuse_commit`` answers the commit with that status. Writes need ``Authorization: Bearer
<token>``; private repos need it for reads too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from _servers import _QuietServer, point_hf_at, serve_in_thread, stop_serving

__all__ = ["HubServer", "StoredFile", "point_hub_client_at", "serve_hub"]

TOKEN = "hf_zoo_test_write_token"
# What the Hub's default .gitattributes sends to LFS (a subset), plus anything from 10 MiB up.
LFS_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".npy", ".npz")
LFS_MIN_SIZE = 10 * 2**20
_REPO = r"(?P<repo>[^/]+/[^/]+?)"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """One file of a commit: its bytes, and whether the repo stores it through LFS."""

    data: bytes
    lfs: bool

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.lfs else git_blob_oid(self.data)


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


@dataclass
class HubServer:
    """State of a running Hub-compatible server (see the module docstring)."""

    token: str = TOKEN
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    refuse_lfs_upload: bool = False
    drop_lfs_upload: bool = False
    refuse_commit: int | None = None
    log: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _httpd: _QuietServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what tests inspect ------------------------------------------------------------------

    def head(self, repo_id: str, branch: str = "main") -> str:
        """The commit ``branch`` points at."""
        with self.lock:
            return self.repos[repo_id].branches[branch]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, StoredFile]:
        """The tree at ``revision`` (a branch or a commit oid)."""
        with self.lock:
            commit = self.repos[repo_id].resolve(revision)
            assert commit is not None, f"no revision {revision} in {repo_id}"
            return dict(commit.files)

    def history(self, repo_id: str, branch: str = "main") -> list[Commit]:
        """Commits reachable from ``branch``, newest first."""
        with self.lock:
            repo = self.repos[repo_id]
            out, oid = [], repo.branches.get(branch)
            while oid is not None:
                out.append(repo.commits[oid])
                oid = repo.commits[oid].parent
            return out

    def requests(self, method: str | None = None) -> list[tuple[str, str]]:
        with self.lock:
            return [r for r in self.log if method is None or r[0] == method]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._httpd, self._thread = serve_in_thread(_HubHandler, self)
        self.port = self._httpd.server_address[1]

    def stop(self) -> None:
        stop_serving(self._httpd, self._thread)
        self._httpd = None

    # -- repository operations (called by the handler, under the lock) -----------------------

    def create_repo(self, repo_id: str, private: bool) -> bool:
        if repo_id in self.repos:
            return False
        repo = Repo(private=private)
        # Like the Hub, a new repo starts with one commit holding .gitattributes.
        attributes = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
        self._commit(repo, "main", "initial commit", {".gitattributes": StoredFile(attributes, lfs=False)})
        self.repos[repo_id] = repo
        return True

    def _commit(self, repo: Repo, branch: str, message: str, files: dict[str, StoredFile]) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"{parent}\n{message}\n{len(repo.commits)}\n".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{files[path].etag}\n".encode())
        commit = Commit(digest.hexdigest(), parent, message, files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit


class _Reply(Exception):
    """Raised by a route to answer with an error status, a JSON message and Hub headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: stopping never waits on keep-alive
    state: HubServer

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest output clean."""

    # -- plumbing ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_POST(self) -> None:
        self._dispatch(send_body=True)

    def do_PUT(self) -> None:
        self._dispatch(send_body=True)

    def _dispatch(self, *, send_body: bool) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        with self.state.lock:
            self.state.log.append((self.command, path))
        routes = (
            ("POST", r"/api/repos/create", self._create_repo),
            ("POST", rf"/api/models/{_REPO}/branch/(?P<branch>[^/]+)", self._create_branch),
            ("GET", rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?", self._repo_info),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("POST", rf"/api/models/{_REPO}/preupload/(?P<rev>[^/]+)", self._preupload),
            ("POST", rf"/{_REPO}\.git/info/lfs/objects/batch", self._lfs_batch),
            ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self._lfs_put),
            ("POST", rf"/{_REPO}\.git/info/lfs/objects/verify", self._lfs_verify),
            ("POST", rf"/api/models/{_REPO}/commit/(?P<rev>[^/]+)", self._commit),
            ("HEAD", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self._resolve),
            ("GET", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self._resolve),
        )
        for method, pattern, route in routes:
            match = re.fullmatch(pattern, path)
            if method == self.command and match is not None:
                args = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v is not None}
                try:
                    route(send_body=send_body, **args)
                except _Reply as reply:
                    self._json(reply.status, {"error": reply.message}, reply.headers, send_body)
                except ConnectionError:
                    pass
                return
        self._json(404, {"error": f"no route for {self.command} {path}"}, {}, send_body)

    def _json(self, status: int, body: Any, headers: dict[str, str], send_body: bool = True) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def _body(self, limit: int | None = None) -> bytes:
        """The request body (``Content-Length`` or chunked); with ``limit``, stop after that many bytes."""
        length = self.headers.get("Content-Length")
        if length is not None:
            n = int(length) if limit is None else min(int(length), limit)
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return b""
        out = bytearray()
        while limit is None or len(out) < limit:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                break
            out += self.rfile.read(size)
            self.rfile.readline()
        return bytes(out)

    def _json_body(self) -> Any:
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError as e:
            raise _Reply(400, f"invalid JSON body: {e}") from None

    def _authorised(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def _require_token(self) -> None:
        if not self._authorised():
            raise _Reply(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_id: str, *, write: bool = False) -> Repo:
        if write:
            self._require_token()
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorised()):
            # The Hub hides a private repo from strangers behind the same answer as a missing one.
            raise _Reply(
                401 if not self._authorised() else 404,
                "Repository not found",
                {"X-Error-Code": "RepoNotFound"},
            )
        return repo

    def _revision(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise _Reply(404, f"Invalid rev id: {rev}", {"X-Error-Code": "RevisionNotFound"})
        return commit

    # -- routes ------------------------------------------------------------------------------

    def _create_repo(self, *, send_body: bool) -> None:
        self._require_token()
        payload = self._json_body()
        name, org = payload.get("name"), payload.get("organization")
        if not name or not org:
            raise _Reply(400, "a repo needs a name and a namespace")
        repo_id = f"{org}/{name}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        with self.state.lock:
            created = self.state.create_repo(repo_id, private)
        url = f"{self.state.base_url}/{repo_id}"
        if not created:  # the Hub answers 409 with the url, which create_repo(exist_ok=True) returns
            self._json(409, {"error": "You already created this model repo", "url": url}, {})
            return
        self._json(200, {"url": url, "name": repo_id, "id": repo_id}, {})

    def _create_branch(self, *, repo: str, branch: str, send_body: bool) -> None:
        with self.state.lock:
            r = self._repo(repo, write=True)
            start = self._json_body().get("startingPoint") or "main"
            if branch in r.branches:
                raise _Reply(409, f"Reference refs/heads/{branch} already exists")
            r.branches[branch] = self._revision(r, start).oid
        self._json(200, {}, {})

    def _repo_info(self, *, repo: str, send_body: bool, rev: str = "main") -> None:
        with self.state.lock:
            r = self._repo(repo)
            commit = self._revision(r, rev)
            info = {
                "id": repo,
                "modelId": repo,
                "sha": commit.oid,
                "private": r.private,
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            }
        self._json(200, info, {}, send_body)

    def _validate_yaml(self, *, send_body: bool) -> None:
        payload = self._json_body()
        content = payload.get("content", "")
        errors = []
        if content.startswith("---"):
            import yaml

            try:
                yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as e:
                errors.append({"message": f"invalid YAML: {e}"})
        self._json(400 if errors else 200, {"errors": errors, "warnings": []}, {})

    def _preupload(self, *, repo: str, rev: str, send_body: bool) -> None:
        with self.state.lock:
            r = self._repo(repo, write=True)
            current = self._revision(r, rev).files
        files = []
        for f in self._json_body().get("files", []):
            lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] >= LFS_MIN_SIZE
            old = current.get(f["path"])
            files.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": old.etag if old is not None else None,
                }
            )
        self._json(200, {"files": files}, {})

    def _lfs_batch(self, *, repo: str, send_body: bool) -> None:
        with self.state.lock:
            self._repo(repo, write=True)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise _Reply(400, "only uploads are supported")
        objects = []
        for obj in payload.get("objects", []):
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs_objects:  # already stored: no action, nothing to send
                entry["actions"] = {
                    "upload": {"href": f"{self.state.base_url}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.state.base_url}/{repo}.git/info/lfs/objects/verify"},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, {})

    def _lfs_put(self, *, oid: str, send_body: bool) -> None:
        if self.state.drop_lfs_upload:
            # Take half of the object, then hang up without answering: a dropped upload.
            length = int(self.headers.get("Content-Length") or 2**20)
            self._body(limit=max(length // 2, 1))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = self._body()
        if self.state.refuse_lfs_upload:
            raise _Reply(403, "Upload refused by the storage backend")
        if hashlib.sha256(data).hexdigest() != oid:
            raise _Reply(400, f"sha256 of the uploaded bytes is not {oid}")
        with self.state.lock:
            self.state.lfs_objects[oid] = data
        self._json(200, {}, {})

    def _lfs_verify(self, *, repo: str, send_body: bool) -> None:
        payload = self._json_body()
        data = self.state.lfs_objects.get(payload.get("oid", ""))
        if data is None or len(data) != payload.get("size"):
            raise _Reply(404, f"LFS object {payload.get('oid')} not found")
        self._json(200, {}, {})

    def _commit(self, *, repo: str, rev: str, send_body: bool) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with self.state.lock:
            r = self._repo(repo, write=True)
            if rev not in r.branches:
                raise _Reply(
                    404, f"Invalid rev id: {rev} is not a branch", {"X-Error-Code": "RevisionNotFound"}
                )
            if self.state.refuse_commit is not None:
                raise _Reply(self.state.refuse_commit, "commit refused")
            files = dict(r.resolve(rev).files)  # type: ignore[union-attr]
            header = next((item["value"] for item in lines if item["key"] == "header"), {})
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    files[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    data = self.state.lfs_objects.get(value["oid"])
                    if data is None:
                        # The whole commit is refused: nothing of it becomes visible.
                        raise _Reply(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                    files[value["path"]] = StoredFile(data, lfs=True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(prefix)}
            commit = self.state._commit(r, rev, header.get("summary", ""), files)
        url = f"{self.state.base_url}/{repo}/commit/{commit.oid}"
        self._json(200, {"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None}, {})

    def _resolve(self, *, repo: str, rev: str, file: str, send_body: bool) -> None:
        with self.state.lock:
            r = self._repo(repo)
            commit = self._revision(r, rev)
            stored = commit.files.get(file)
        if stored is None:
            raise _Reply(
                404, "Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit.oid}
            )
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(stored.data)))
        self.send_header("X-Repo-Commit", commit.oid)
        self.send_header("ETag", f'"{stored.etag}"')
        self.end_headers()
        if send_body:
            self.wfile.write(stored.data)


@contextmanager
def serve_hub() -> Iterator[HubServer]:
    """A Hub-compatible server on ``http://127.0.0.1:<free port>`` for the duration of the block."""
    server = HubServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def point_hub_client_at(
    monkeypatch: pytest.MonkeyPatch, server: HubServer, hf_home: Path, *, token: str | None = TOKEN
) -> None:
    """Point ``huggingface_hub`` (in this process) at ``server``, with ``token`` as ``HF_TOKEN``.

    Xet is switched off because this server speaks LFS, the protocol the client falls back to.
    """
    from huggingface_hub import constants

    point_hf_at(monkeypatch, server.base_url, hf_home)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
