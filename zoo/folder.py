"""The zoo folder: ``config.json`` + ``model.safetensors`` + ``README.md``.

It is laid out like a Hugging Face model repository, so a folder can be pushed to the Hub
as is and read back with ``zoo.load("hf-hub:org/name")``. ``config.json`` carries timm's keys
(``architecture``, ``num_classes``, ``num_features``, ``pretrained_cfg``) next to zoo's own
record under ``"zoo"``, and the same zoo record is stored in the safetensors header
metadata, so a lone ``model.safetensors`` file is self-describing too.

Weights are always loaded with ``strict=True``: a missing, unexpected or mis-shaped key is
an error that lists them, never a silently random layer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import StateDictMismatchError, WeightsError
from zoo.output import output_error
from zoo.registry import ModelEntry, RecordError, get_arch, validate_record

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
ONNX_NAME = "model.onnx"
FORMAT_VERSION = 1
_META_KEY = "zoo"
#: Largest zoo record (config.json, or the record in a safetensors header) zoo parses. Real ones
#: are a few kilobytes; a downloaded file must not make a load read or parse without bound.
MAX_RECORD_BYTES = 16 << 20


# Read once at import (reading the umask means setting it, which is not thread-safe later).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory, so the
    final name only ever holds a complete file.

    Raises:
        OutputError: the file cannot be written (disk full, name too long, permission denied,
            a file where a folder should be); nothing is left behind. It is also an OSError.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name is kept short: a long final name must not fail only as a temp name.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:32]}.", suffix=".tmp")
    except OSError as e:
        raise output_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def zoo_config(entry: ModelEntry) -> dict[str, Any]:
    """The ``config.json`` content for ``entry`` (timm-compatible keys + zoo's record)."""
    spec = get_arch(entry.arch)
    pre = entry.preprocess
    config: dict[str, Any] = {
        "architecture": spec.timm_name or entry.arch,
        "num_classes": 0,
        "num_features": spec.embed_dim,
        "pretrained_cfg": {
            "input_size": [3, pre.input_size, pre.input_size],
            "crop_pct": round(pre.crop_pct, 6),
            "crop_mode": "center",
            "interpolation": pre.interpolation,
            "mean": list(pre.mean),
            "std": list(pre.std),
            "num_classes": 0,
            "license": entry.license,
        },
        _META_KEY: {"format_version": FORMAT_VERSION, **entry.to_dict()},
    }
    return config


def entry_from_config(config: Mapping[str, Any], source: str) -> ModelEntry:
    record = config.get(_META_KEY) if isinstance(config, Mapping) else None
    if not isinstance(record, Mapping):
        raise WeightsError(f"{source}: not a zoo config (no 'zoo' record); was it written by zoo?")
    record = dict(record)
    version = record.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise WeightsError(
            f"{source}: zoo format version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        return validate_record(record)
    except RecordError as e:
        raise WeightsError(
            f"{source}: invalid zoo record, field {e.field}: {str(e).removeprefix(e.field + ': ')}."
            " The file is damaged or was not written by zoo; re-export or re-download it"
        ) from None


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, entry: ModelEntry
) -> Path:
    """Write weights with the zoo record in the header metadata, atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {"format": "pt", _META_KEY: json.dumps(zoo_config(entry)[_META_KEY], sort_keys=True)}
    return atomic_write_bytes(path, _canonical_header(save(tensors, metadata=metadata)))


def _canonical_header(data: bytes) -> bytes:
    """The same safetensors file with its JSON header written in sorted key order.

    safetensors keeps the metadata in a hash map, so two saves of the same weights can order it
    differently and hash differently; a sha256 pinned in the registry or compared after a push
    must not depend on that. Tensor offsets are relative to the end of the header, so only the
    header changes (space-padded to 8 bytes, as safetensors aligns it)."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + n :]


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file; a damaged file is a WeightsError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several private error types
        raise WeightsError(f"{path}: corrupted or truncated safetensors file ({e})") from None
    return tensors, metadata


def entry_from_safetensors_metadata(metadata: Mapping[str, str], source: str) -> ModelEntry | None:
    if _META_KEY not in metadata:
        return None
    text = metadata[_META_KEY]
    if len(text) > MAX_RECORD_BYTES:
        raise WeightsError(
            f"{source}: the zoo metadata in the safetensors header is {len(text):,} characters long"
            f" (at most {MAX_RECORD_BYTES:,}); the file is damaged or was not written by zoo"
        )
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as e:  # "[[[[..." nests past the parser's stack
        raise WeightsError(
            f"{source}: corrupted zoo metadata in the safetensors header ({_json_problem(e)});"
            " the file is damaged or was not written by zoo"
        ) from None
    return entry_from_config({_META_KEY: record}, source)


def _json_problem(e: Exception) -> str:
    return "nested too deeply" if isinstance(e, RecursionError) else str(e)


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error listing every mismatch."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if own[k].shape != state_dict[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
            if keys:
                more = f" (+{len(keys) - 10} more)" if len(keys) > 10 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:10])}{more}")
        raise StateDictMismatchError(
            f"{source}: weights do not fit the architecture; "
            + "; ".join(parts)
            + ". Is this checkpoint for another architecture or an upstream format that needs"
            " conversion (`zoo convert`)?"
        )
    module.load_state_dict(state_dict, strict=True)


def read_config(directory: str | os.PathLike, name: str = CONFIG_NAME) -> dict[str, Any]:
    path = Path(directory) / name
    if not path.is_file():
        raise WeightsError(f"{directory}: not a zoo folder (no {CONFIG_NAME})")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECORD_BYTES + 1)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read it ({e.strerror or e})") from None
    if len(data) > MAX_RECORD_BYTES:
        raise WeightsError(
            f"{path}: over {MAX_RECORD_BYTES:,} bytes, far more than a zoo config; the folder is damaged"
            " or not a zoo folder"
        )
    try:
        return json.loads(data.decode("utf-8"))
    # ValueError covers JSONDecodeError, UnicodeDecodeError and integers of over 4300 digits.
    except (ValueError, RecursionError) as e:
        raise WeightsError(f"{path}: invalid JSON ({_json_problem(e)})") from None
