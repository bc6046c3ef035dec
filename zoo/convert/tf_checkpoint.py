"""A reader of TensorFlow checkpoints (the "tensor bundle" format) that needs no TensorFlow.

A checkpoint ``PREFIX`` is two kinds of file (tensorflow/core/util/tensor_bundle):

* ``PREFIX.index``: an immutable sorted table in LevelDB's format (data blocks of
  prefix-compressed key/value entries, an index block, a 48-byte footer ending in a magic
  number). The entry under the empty key is a ``BundleHeaderProto`` (number of shards,
  endianness); every other key is a variable name whose value is a ``BundleEntryProto``
  (dtype, shape, shard, offset, size, crc32c);
* ``PREFIX.data-SSSSS-of-NNNNN``: the raw little-endian tensor bytes, at those offsets.

Only the few protobuf fields needed are decoded, by hand, so reading a checkpoint runs no
code from it and pulls in no protobuf runtime. String tensors (TF2's object graph,
metadata) are not weights and are skipped; partitioned variables are refused. Index blocks
are checked against their crc32c; tensor bytes are not (zoo hashes the whole file instead).

``read`` accepts a checkpoint prefix, its ``.index`` file, a folder holding one checkpoint
(or a ``checkpoint`` file naming it), or a ``.zip`` of such a folder (SimCLR v1's release),
and returns ``{variable name: tensor}``.
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from zoo.errors import WeightsError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_SHARD_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")

# tensorflow/core/framework/types.proto: DataType -> numpy dtype (bfloat16 handled apart).
_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}
_DT_STRING = 7
_DT_BFLOAT16 = 14


def looks_like(path: Path) -> bool:
    """Whether ``path`` names a TensorFlow checkpoint (not a zip of one: see sniff_container)."""
    if path.is_dir():
        return (path / "checkpoint").is_file() or any(path.glob("*.index"))
    return path.suffix == ".index" or bool(_SHARD_RE.search(path.name)) or Path(f"{path}.index").is_file()


def read(path: Path, data_files: Sequence[Path] = ()) -> dict[str, torch.Tensor]:
    """Every numeric variable of the checkpoint at ``path`` (see the module docstring).

    ``data_files`` gives the ``.data-*`` shards explicitly when they are not beside the
    index under the checkpoint's own names (downloads cached under separate keys).
    """
    try:
        if path.is_file() and zipfile.is_zipfile(path):
            return _read_zip(path)
        index = _index_path(path)
        shards = {_shard_number(p): p for p in data_files}
        return _read_bundle(index.read_bytes(), lambda i, n: _shard_bytes(index, shards, i, n), str(index))
    except (OSError, IndexError, struct.error, ValueError) as e:
        raise WeightsError(f"{path}: corrupted or truncated TensorFlow checkpoint ({e})") from None


def _index_path(path: Path) -> Path:
    if path.is_dir():
        named = _named_by_checkpoint_file(path / "checkpoint")
        if named is not None:
            return path / f"{named}.index"
        found = sorted(path.glob("*.index"))
        if len(found) != 1:
            raise WeightsError(
                f"{path}: expected one TensorFlow checkpoint (*.index) in the folder, found {len(found)}"
            )
        return found[0]
    if path.suffix == ".index":
        return path
    match = _SHARD_RE.search(path.name)
    if match:
        return path.with_name(path.name[: match.start()] + ".index")
    return Path(f"{path}.index")


def _named_by_checkpoint_file(path: Path) -> str | None:
    """The prefix a TF ``checkpoint`` state file names (``model_checkpoint_path: "..."``)."""
    if not path.is_file():
        return None
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', path.read_text(errors="replace"), re.M)
    return Path(match.group(1)).name if match else None


def _shard_number(path: Path) -> int:
    match = _SHARD_RE.search(path.name)
    if not match:
        raise WeightsError(
            f"{path}: not a TensorFlow data shard (expected a name ending .data-NNNNN-of-NNNNN)"
        )
    return int(match.group(1))


def _shard_bytes(index: Path, shards: dict[int, Path], i: int, n: int) -> bytes:
    path = shards.get(i) or index.with_name(f"{index.name[: -len('.index')]}.data-{i:05d}-of-{n:05d}")
    if not path.is_file():
        raise WeightsError(f"{index}: data shard {i} of {n} is missing (expected {path})")
    return path.read_bytes()


def _read_zip(path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        indexes = [n for n in names if n.endswith(".index")]
        # Prefer the checkpoint a `checkpoint` state file names (the zip may also hold a
        # TF-Hub export with its own variables.index).
        for state in (n for n in names if n.rsplit("/", 1)[-1] == "checkpoint"):
            text = z.read(state).decode(errors="replace")
            match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text, re.M)
            if match:
                folder = state[: -len("checkpoint")]
                wanted = folder + Path(match.group(1)).name + ".index"
                if wanted in names:
                    indexes = [wanted]
                    break
        if len(indexes) != 1:
            raise WeightsError(
                f"{path}: expected one TensorFlow checkpoint in the archive, found {len(indexes)}:"
                f" {', '.join(indexes)}"
            )
        index = indexes[0]
        prefix = index[: -len(".index")]

        def shard(i: int, n: int) -> bytes:
            member = f"{prefix}.data-{i:05d}-of-{n:05d}"
            if member not in names:
                raise WeightsError(f"{path}: data shard {member} is missing from the archive")
            return z.read(member)

        return _read_bundle(z.read(index), shard, f"{path}:{index}")


def _read_bundle(index: bytes, shard: object, source: str) -> dict[str, torch.Tensor]:
    entries = dict(_table_entries(index, source))
    if b"" not in entries:
        raise WeightsError(f"{source}: not a TensorFlow checkpoint index (no bundle header)")
    header = _fields(entries.pop(b""))
    num_shards = header.get(1, [1])[0]
    if header.get(2, [0])[0] != 0:
        raise WeightsError(f"{source}: big-endian TensorFlow checkpoints are not supported")
    cache: dict[int, bytes] = {}
    tensors: dict[str, torch.Tensor] = {}
    for key, value in entries.items():
        name = key.decode("utf-8")
        entry = _fields(value)
        if 7 in entry:
            raise WeightsError(f"{source}: variable {name!r} is partitioned (slices), which is not supported")
        dtype = entry.get(1, [0])[0]
        if dtype == _DT_STRING:
            continue
        dims = _fields(entry[2][0]).get(2, []) if 2 in entry else []  # a scalar has no shape field
        shape = [_fields(dim).get(1, [0])[0] for dim in dims]
        shard_id, offset, size = entry.get(3, [0])[0], entry.get(4, [0])[0], entry.get(5, [0])[0]
        if shard_id not in cache:
            cache[shard_id] = shard(shard_id, num_shards)  # type: ignore[operator]
        data = cache[shard_id][offset : offset + size]
        if len(data) != size:
            raise WeightsError(f"{source}: variable {name!r} runs past the end of data shard {shard_id}")
        tensors[name] = _tensor(data, dtype, shape, name, source)
    return tensors


def _tensor(data: bytes, dtype: int, shape: list[int], name: str, source: str) -> torch.Tensor:
    if dtype == _DT_BFLOAT16:
        raw = np.frombuffer(data, dtype="<u2").astype(np.int16)
        return torch.from_numpy(raw.reshape(shape).copy()).view(torch.bfloat16)
    if dtype not in _DTYPES:
        raise WeightsError(f"{source}: variable {name!r} has unsupported TensorFlow dtype {dtype}")
    array = np.frombuffer(data, dtype=np.dtype(_DTYPES[dtype]).newbyteorder("<"))
    return torch.from_numpy(array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=True))


# --------------------------------------------------------------------------------------------
# LevelDB table format (table/format.cc, block.cc)
# --------------------------------------------------------------------------------------------


def _table_entries(data: bytes, source: str) -> Iterator[tuple[bytes, bytes]]:
    if len(data) < _FOOTER_SIZE or struct.unpack("<Q", data[-8:])[0] != _TABLE_MAGIC:
        raise WeightsError(f"{source}: not a TensorFlow checkpoint index (bad table magic)")
    footer = data[-_FOOTER_SIZE:]
    _, pos = _block_handle(footer, 0)  # metaindex: unused
    (index_offset, index_size), _ = _block_handle(footer, pos)
    for _, handle in _block_entries(_block(data, index_offset, index_size, source)):
        (offset, size), _ = _block_handle(handle, 0)
        yield from _block_entries(_block(data, offset, size, source))


def _block(data: bytes, offset: int, size: int, source: str) -> bytes:
    contents = data[offset : offset + size]
    trailer = data[offset + size : offset + size + 5]
    if len(contents) != size or len(trailer) != 5:
        raise WeightsError(f"{source}: truncated index block")
    if trailer[0] != 0:
        raise WeightsError(f"{source}: compressed index blocks (type {trailer[0]}) are not supported")
    if _unmask(struct.unpack("<I", trailer[1:])[0]) != crc32c(contents + trailer[:1]):
        raise WeightsError(f"{source}: index block at offset {offset} fails its crc32c check")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    num_restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * num_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def _block_handle(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(data, pos)
    size, pos = _varint(data, pos)
    return (offset, size), pos


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(message: bytes) -> dict[int, list]:
    """A protobuf message as ``{field number: [values]}`` (varints as ints, the rest as bytes)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            value, pos = message[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = message[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


# --------------------------------------------------------------------------------------------
# crc32c (Castagnoli), masked as LevelDB stores it
# --------------------------------------------------------------------------------------------


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
