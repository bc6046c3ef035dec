"""``zoo push``: publish an encoder to a Hugging Face Hub as a zoo folder.

What is uploaded is an exported zoo folder (``config.json``, ``model.safetensors``,
``model.onnx``, the ``README.md`` card and, for encoders zoo trained, the training curves),
which ``zoo.load("hf-hub:ORG/NAME")`` reads back bit for bit and, for timm architectures,
``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` too.

Before anything leaves the machine the folder is checked, and a folder that fails is never
uploaded: its weights must load strictly, ``model.onnx`` must match PyTorch on the bundled sample
images (:data:`zoo.export.ONNX_TOLERANCE`), and every number its card states must say how it was
measured. The upload goes through the real ``huggingface_hub`` client: ``create_repo``, then one
``create_commit`` holding every file (large files through LFS or Xet, as the client and the Hub
agree). A Hub commit is atomic: the files are uploaded first and only then committed together,
so a refused or dropped upload leaves the repo as it was.

The token is the client's usual one: ``HF_TOKEN``, else the one saved by ``hf auth login``.
``HF_ENDPOINT`` points the client at another Hub.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zoo.errors import ZooError
from zoo.hf_errors import http_status, is_transport_error, status_text

__all__ = ["PublishError", "PushFile", "PushResult", "check_card", "check_folder", "push", "validate_repo_id"]

#: Where ``zoo card --all`` writes cards and their training curves, in a checkout of zoo.
MODEL_CARDS = Path(__file__).resolve().parents[1] / "model_cards"

# The Hub's rules for a repo id: namespace/name, each from letters, digits, '-', '_', '.',
# not starting or ending with '-' or '.', no '--' or '..', at most 96 characters in all.
_PART = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_BRANCH = re.compile(r"^(?!.*(\.\.|//|@\{))[A-Za-z0-9][A-Za-z0-9._/-]*$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_NO_HOW = {"", "-", "–", "—", "?", "n/a", "tbd"}


class PublishError(ZooError):
    """A push that was refused before upload, or that the Hub refused; nothing was committed."""


@dataclass(frozen=True)
class PushFile:
    """One file of the push: its path in the repo, size in bytes and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PushResult:
    """What was (or, with ``dry_run``, would be) published."""

    repo_id: str
    revision: str
    url: str
    files: tuple[PushFile, ...]
    commit: str | None = None  # the Hub commit sha; None for a dry run
    onnx_max_abs_diff: float | None = None
    dry_run: bool = False
    #: Files of earlier pushes on the branch that this folder does not have, removed in the
    #: same commit (empty for a dry run, which asks the Hub nothing).
    deleted: tuple[str, ...] = ()

    def file(self, path: str) -> PushFile:
        return next(f for f in self.files if f.path == path)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def validate_repo_id(repo_id: str) -> str:
    """``repo_id`` itself when it is a valid ``ORG/NAME``, else a :class:`PublishError` saying why."""
    parts = repo_id.split("/")
    if (
        len(parts) != 2
        or not all(_PART.match(p) for p in parts)
        or len(repo_id) > 96
        or repo_id.endswith(".git")
    ):
        raise PublishError(
            f"{repo_id!r} is not a valid Hub repo id: expected ORG/NAME (letters, digits, '-', '_', '.';"
            " no '--' or '..'; at most 96 characters), e.g. --repo my-org/simclr-r18q-cifar10"
        )
    return repo_id


def _validate_branch(revision: str | None) -> str:
    branch = revision or "main"
    if _SHA1.match(branch):
        raise PublishError(
            f"--revision {branch} is a commit sha: a push adds a commit to a branch; give a branch name"
        )
    if not _BRANCH.match(branch) or branch.endswith(("/", ".lock", ".")):
        raise PublishError(
            f"--revision {branch!r} is not a valid branch name: use letters, digits, '-', '_', '.' and '/'"
        )
    return branch


# --------------------------------------------------------------------------------------------
# The folder and its checks
# --------------------------------------------------------------------------------------------


def stage(name_or_dir: str | os.PathLike, workdir: Path) -> Path:
    """The folder to push: ``name_or_dir`` itself if it is a folder, else its export into ``workdir``.

    An export is what ``zoo export`` writes (with a verified ``model.onnx``), plus the training
    curves that the card of a zoo-trained encoder shows.
    """
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    import zoo
    from zoo.export import export
    from zoo.registry import PATH_FIELDS, RecordError, check_relative_path, is_registered

    encoder = zoo.load(os.fspath(name_or_dir), progress=False)
    # The export carries the very file the registry pins (zoo.export.pinned_file), not a re-save:
    # the release and the installed copy are then one file, which Weights(file=..., hf_hub_id=...,
    # hf_revision=..., sha256=...) verifies wherever it comes from.
    w = encoder.entry.weights if encoder.entry is not None else None
    if w is not None and w.file and w.format == "zoo" and is_registered(os.fspath(name_or_dir)):
        from zoo.loading import _package_file, _verify

        _verify(_package_file(w.file), w.sha256)  # a damaged install is not published
    folder = export(encoder, workdir / "folder").folder
    training = encoder.entry.training if encoder.entry is not None else None
    # The figures the card shows, each with the data it was drawn from: the training curves and,
    # for a flagship, its long-run progress figure.
    figures = {}
    if training is not None:
        figures = {
            ("curves", training.curves): (".metrics.csv", ".knn.csv"),
            ("progress", training.progress): (".json",),
        }
    for (field, figure), data_suffixes in figures.items():
        if not figure:
            continue
        # Joined to model_cards/ and to the folder: checked again here, as an entry built in code
        # never went through validate_record.
        try:
            check_relative_path(figure, f"training.{field}", PATH_FIELDS[field])
        except RecordError as e:
            raise PublishError(f"the record of {encoder.name} is unsafe to publish: {e}") from None
        stem = figure.rsplit(".", 1)[0]
        sources = [MODEL_CARDS / figure] + [MODEL_CARDS / f"{stem}{x}" for x in data_suffixes]
        if not sources[0].is_file():
            raise PublishError(
                f"the card of {encoder.name} shows {figure}, which is not at {sources[0]} (the figures"
                " ship in a checkout of zoo, under model_cards/); push from a checkout, or export the"
                " folder yourself (zoo export), add the figures, and push the folder"
            )
        for src in sources:
            if src.is_file():
                (folder / src.relative_to(MODEL_CARDS)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, folder / src.relative_to(MODEL_CARDS))
    return folder


def list_files(folder: Path) -> list[PushFile]:
    """Every file below ``folder`` that a push uploads: hidden files and folders are left out."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue  # .cache, .git, an export's .model.onnx.unchecked...
        if path.is_symlink():
            raise PublishError(f"{path} is a symbolic link; copy the file it points to into the folder")
        if path.is_file():
            files.append(PushFile(relative.as_posix(), path.stat().st_size, _sha256(path)))
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_folder(folder: str | os.PathLike) -> tuple[list[PushFile], float]:
    """Check a zoo folder for publishing; return its files and the ONNX max abs difference.

    Raises:
        PublishError: weights that do not load, a missing ``model.onnx`` or one whose features
            differ from PyTorch's, a missing card, or a card number without how it was measured.
    """
    from zoo.folder import CARD_NAME, ONNX_NAME
    from zoo.loading import load_folder

    folder = Path(folder)
    try:
        encoder = load_folder(folder)
    except ZooError as e:
        raise PublishError(f"{folder} is not a loadable zoo folder: {e}") from None
    card = folder / CARD_NAME
    if not card.is_file():
        raise PublishError(
            f"{folder} has no {CARD_NAME} model card; write one with `zoo export` or `zoo card`"
        )
    problems = check_card(card.read_text(encoding="utf-8"), folder)
    if encoder.entry is not None:
        problems += [
            f"the zoo record in config.json has a {m.protocol} number ({m.value}) without how it was measured"
            for m in (*encoder.entry.reported, *encoder.entry.measured)
            if m.how.strip().lower() in _NO_HOW
        ]
    if problems:
        raise PublishError(f"the card in {folder} cannot be published: " + "; ".join(problems))
    diff = _onnx_parity(encoder, folder / ONNX_NAME)
    return list_files(folder), diff


def _onnx_parity(encoder: Any, onnx_path: Path) -> float:
    from zoo import images as _images
    from zoo import onnx as zoo_onnx
    from zoo.export import ONNX_TOLERANCE, sample_images

    if not onnx_path.is_file():
        raise PublishError(
            f"{onnx_path.parent} has no model.onnx; write a verified one with"
            f" `zoo export {onnx_path.parent} --out NEW_DIR` and push NEW_DIR"
        )
    items = sample_images()
    batch = next(_images.batches(items, encoder.preprocess, len(items)))
    try:
        diff, scale = zoo_onnx.relative_parity(encoder.feature_module(), onnx_path, batch)
    except Exception as e:  # ONNX Runtime raises its own types for a corrupted or foreign graph
        raise PublishError(f"{onnx_path} cannot be run by ONNX Runtime ({type(e).__name__}: {e})") from None
    if not np.isfinite(diff) or diff >= ONNX_TOLERANCE:
        raise PublishError(
            f"{onnx_path} does not match the PyTorch weights beside it: difference {diff:.3g}"
            f" ({zoo_onnx.parity_how(scale)}) on {len(batch)} sample images, above {ONNX_TOLERANCE:g}."
            f" Re-export the folder (`zoo export {onnx_path.parent} --out NEW_DIR`) and push NEW_DIR"
        )
    return float(diff * scale)


def check_card(text: str, folder: Path | None = None) -> list[str]:
    """What keeps a card from being published (an empty list when nothing does).

    Every number of the card's ``model-index`` must appear in its evaluation table on a row that
    says how it was measured and where it comes from; every row of that table must say so too.
    With ``folder``, images and files the card links to must be in the folder.
    """
    problems: list[str] = []
    meta: dict[str, Any] = {}
    if text.startswith("---"):
        try:
            meta = yaml.safe_load(text.split("---", 2)[1]) or {}
        except yaml.YAMLError as e:
            return [f"its YAML front matter does not parse ({e})"]
        if not isinstance(meta, dict):
            return ["its YAML front matter is not a mapping"]
    rows = _evaluation_rows(text)
    if rows is None:
        rows = []
        if "model-index" in meta:
            problems.append("it states results in model-index but has no '## Evaluation' table saying how")
    explained = set()
    for row in rows:
        how, source, value = row.get("how"), row.get("source"), row.get("value")
        if how is None or how.strip().lower() in _NO_HOW:
            problems.append(
                f"the evaluation row '{' | '.join(row.values())}' does not say how it was measured"
            )
        elif source is not None and source.strip().lower() in _NO_HOW:
            problems.append(f"the evaluation row '{' | '.join(row.values())}' does not give its source")
        elif value is not None:
            try:
                explained.add(round(float(value), 2))
            except ValueError:
                problems.append(
                    f"the evaluation row '{' | '.join(row.values())}' has no number in its value column"
                )
    for model in meta.get("model-index") or []:
        for result in (model or {}).get("results") or []:
            for metric in (result or {}).get("metrics") or []:
                value = (metric or {}).get("value")
                if isinstance(value, (int, float)) and round(float(value), 2) not in explained:
                    problems.append(
                        f"model-index states {metric.get('name') or metric.get('type')} = {value} with no"
                        " evaluation row saying how it was measured"
                    )
    if folder is not None:
        for link in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text):
            target = urllib.parse.unquote(link.split("#", 1)[0])
            if target and "://" not in target and not target.startswith(("/", "#", "mailto:")):
                if not (folder / target).is_file():
                    problems.append(f"it links to {target}, which is not in the folder")
    return problems


def _evaluation_rows(text: str) -> list[dict[str, str]] | None:
    """The rows of the card's tables of numbers, as {column: cell}; None without '## Evaluation'.

    The first table under '## Evaluation', and every table with a "how" column in the sections
    after it ('## Few labels', '## Transfer'). Columns are named by the first word that
    identifies them: ``value`` (or "top-1"), ``how`` (the header containing "how"), ``source``
    (or "command"); the others keep their header text.
    """
    match = re.search(r"^## Evaluation\s*$(.*)", text, flags=re.M | re.S)
    if match is None:
        return None
    rows: list[dict[str, str]] = []
    sections = re.split(r"^## ", match.group(1), flags=re.M)
    for i, section in enumerate(sections):
        tables: list[list[str]] = [[]]
        for line in section.splitlines():  # a table: consecutive lines starting with '|'
            if line.strip().startswith("|"):
                tables[-1].append(line.strip())
            elif tables[-1]:
                tables.append([])
        for table in tables if i else tables[:1]:
            if len(table) < 2:
                continue
            header = [_column(c) for c in _cells(table[0])]
            if i and "how" not in header:
                continue
            rows += [dict(zip(header, _cells(ln), strict=False)) for ln in table[2:]]
    return rows


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _column(header: str) -> str:
    h = header.lower()
    for key in ("how", "source", "value"):
        if key in h:
            return key
    return {"top-1": "value", "command": "source"}.get(h, h)


# --------------------------------------------------------------------------------------------
# The push
# --------------------------------------------------------------------------------------------


def push(
    name_or_dir: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
) -> PushResult:
    """Publish an encoder (a registry name, anything ``zoo.load`` takes, or a zoo folder) to ``repo_id``.

    A name is exported first (:func:`stage`); the folder is then checked (:func:`check_folder`)
    and uploaded in one commit to branch ``revision`` (default ``main``; created from main when
    missing). ``dry_run`` stops after the checks and returns what would be uploaded.

    Raises:
        PublishError: invalid repo id or branch, a folder that fails its checks, no token, or
            the Hub refused or dropped the upload; nothing was committed then.
    """
    validate_repo_id(repo_id)
    branch = _validate_branch(revision)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        folder = stage(name_or_dir, Path(tmp))
        files, diff = check_folder(folder)
        if dry_run:
            return PushResult(
                repo_id, branch, _url(_endpoint(), repo_id, branch), tuple(files), None, diff, True
            )
        message = commit_message or f"Upload {Path(name_or_dir).name} with zoo"
        commit, endpoint, deleted = _upload(folder, files, repo_id, branch, private, message, token)
    url = _url(endpoint, repo_id, branch)
    return PushResult(repo_id, branch, url, tuple(files), commit, diff, deleted=deleted)


def _endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return str(constants.ENDPOINT).rstrip("/")


def _url(endpoint: str, repo_id: str, branch: str) -> str:
    return f"{endpoint}/{repo_id}" + (
        "" if branch == "main" else f"/tree/{urllib.parse.quote(branch, safe='')}"
    )


def _upload(
    folder: Path,
    files: list[PushFile],
    repo_id: str,
    branch: str,
    private: bool,
    commit_message: str,
    token: str | None,
) -> tuple[str, str, tuple[str, ...]]:
    try:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    except ImportError:
        raise PublishError("pushing needs the huggingface_hub package: pip install 'zoo-ssl[hub]'") from None
    token = token or get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token: set HF_TOKEN to a token with write access, or log in once with"
            " `hf auth login`; nothing was uploaded"
        )
    api = HfApi(token=token)
    endpoint = str(api.endpoint).rstrip("/")
    operations = [
        CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(folder / f.path)) for f in files
    ]
    step = "create the repo"
    try:
        # private=None keeps an existing repo's visibility and gives a new one the account's default.
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if private:
            step = "check the repo is private"
            if not api.repo_info(repo_id).private:  # create_repo leaves an existing repo as it is
                raise PublishError(
                    f"{repo_id} exists and is public, and --private (private=True) was asked: make it"
                    f" private on {endpoint}/{repo_id}/settings first, or push without --private;"
                    " nothing was uploaded"
                )
        if branch != "main":
            step = f"create branch {branch}"
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        # The branch ends up holding this folder and nothing else: curves, an int8 graph or
        # a card figure that earlier pushes left and this folder no longer has would sit beside
        # the new weights. (.gitattributes is the Hub's own.)
        step = "list the files there"
        present = {s.rfilename for s in api.model_info(repo_id, revision=branch).siblings or ()}
        deleted = tuple(sorted(present - {f.path for f in files} - {".gitattributes"}))
        operations += [CommitOperationDelete(path_in_repo=path) for path in deleted]
        step = "upload and commit"
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message,
            revision=branch,
        )
    except PublishError:
        raise
    except Exception as err:
        mapped = _publish_error(err, step, repo_id, branch, endpoint)
        if mapped is None:
            raise
        raise mapped from err
    return str(info.oid), endpoint, deleted


def _publish_error(
    err: Exception, step: str, repo_id: str, branch: str, endpoint: str
) -> PublishError | None:
    """One clear error for what the client raised; None for a bug (re-raised untouched)."""
    from huggingface_hub import errors as hf_errors

    unchanged = (
        "nothing was committed: the files are uploaded first and committed in one atomic step, so"
        f" {repo_id} is as it was (the repo itself may have been created, empty)"
    )
    where = f"cannot push to {endpoint}/{repo_id} ({step})"
    if isinstance(err, RuntimeError) and err.__cause__ is not None and "while uploading" in str(err):
        # The client's LFS uploader wraps the transport or HTTP error of one file.
        cause = err.__cause__
        detail = (
            status_text(cause)
            if isinstance(cause, hf_errors.HfHubHTTPError)
            else f"{type(cause).__name__}: {cause}"
        )
        if is_transport_error(cause):
            detail += " (the connection was dropped before the upload finished)"
        return PublishError(
            f"{where}: {str(err).rstrip('.')}: {detail.rstrip('.')}; {unchanged}. Retry the push"
        )
    if isinstance(err, hf_errors.HFValidationError):
        return PublishError(f"{where}: {err}; {unchanged}")
    if isinstance(err, hf_errors.HfHubHTTPError):
        code = http_status(err)
        if code == 401:
            hint = "the Hub did not accept the token: check HF_TOKEN (or `hf auth login`)"
        elif code == 403:
            hint = f"the token may not write to {repo_id.split('/')[0]}: use a token with write access there"
        elif isinstance(err, hf_errors.RevisionNotFoundError):
            hint = f"branch {branch} does not exist"
        else:
            hint = "the Hub refused the request"
        return PublishError(f"{where}: {status_text(err)}; {hint}; {unchanged}")
    if is_transport_error(err):
        return PublishError(
            f"{where}: {type(err).__name__}: {err}; check your network connection and HF_ENDPOINT;"
            f" {unchanged}"
        )
    if isinstance(err, ValueError):  # malformed server answers, LFS batch errors, README metadata
        return PublishError(f"{where}: {err}; {unchanged}")
    return None
