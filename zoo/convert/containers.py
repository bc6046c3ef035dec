"""The kinds of checkpoint file zoo reads, none of them by running code from the file.

* ``torch``: ``torch.save`` files (zip or legacy pickle), read with ``weights_only=True``
  plus an explicit allow-list of plain classes a release pickles beside its tensors;
* ``tf-checkpoint``: TensorFlow tensor bundles (``.index`` + ``.data-*``), read by
  :mod:`zoo.convert.tf_checkpoint`, a reader of the format that needs no TensorFlow;
* ``jax-pickle``: pickles of JAX/Haiku parameters (BYOL), read by
  :mod:`zoo.convert.jax_pickle`, an unpickler that admits only numpy arrays and plain
  containers.

:func:`sniff_container` tells them apart from the first bytes and file names, so
``zoo convert --from auto`` reads a file once.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import WeightsError

# torch.save's legacy (non-zip) format starts with this pickled magic number.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


@dataclass(frozen=True)
class Container:
    """A kind of checkpoint file: ``read(path, companions, safe_globals) -> plain object``."""

    name: str
    read: Callable[[Path, Sequence[Path], tuple[type, ...]], object]


def read_torch_file(
    path: Path, companions: Sequence[Path] = (), safe_globals: tuple[type, ...] = ()
) -> object:
    """``torch.load(weights_only=True)``: tensors and plain containers, plus ``safe_globals``;
    any other object the training state pickles comes back as an inert
    :class:`~zoo.convert.torch_pickle.StandIn` (see :mod:`zoo.convert.torch_pickle`)."""
    from zoo.convert import torch_pickle

    if companions:
        raise WeightsError(f"{path}: a PyTorch checkpoint is one file; got extra files {list(companions)}")
    try:
        return torch_pickle.load(path, safe_globals)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path}: refused to unpickle ({torch_pickle.reason(e)}); zoo reads tensors and plain"
            " data from checkpoints and never runs code from them"
        ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise WeightsError(f"{path}: corrupted or truncated checkpoint ({torch_pickle.reason(e)})") from None


def _read_tf(path: Path, companions: Sequence[Path], safe_globals: tuple[type, ...]) -> object:
    from zoo.convert import tf_checkpoint

    return tf_checkpoint.read(path, companions)


def _read_jax(path: Path, companions: Sequence[Path], safe_globals: tuple[type, ...]) -> object:
    from zoo.convert import jax_pickle

    if companions:
        raise WeightsError(f"{path}: a JAX pickle is one file; got extra files {list(companions)}")
    return jax_pickle.read(path)


TORCH = Container("torch", read_torch_file)
TF_CHECKPOINT = Container("tf-checkpoint", _read_tf)
JAX_PICKLE = Container("jax-pickle", _read_jax)


def sniff_container(path: Path) -> Container:
    """Which kind of file ``path`` is, from its name and first bytes."""
    from zoo.convert import tf_checkpoint

    if tf_checkpoint.looks_like(path):
        return TF_CHECKPOINT
    if not path.is_file():
        raise WeightsError(f"{path}: no such file (nor a TensorFlow checkpoint prefix)")
    with open(path, "rb") as f:
        head = f.read(len(_TORCH_LEGACY_MAGIC))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("data.pkl") for n in names):
            return TORCH
        if any(n.endswith(".index") for n in names):
            return TF_CHECKPOINT
        raise WeightsError(f"{path}: a zip archive holding neither a PyTorch nor a TensorFlow checkpoint")
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return TORCH
    if head[:1] == b"\x80":  # the PROTO opcode: a plain pickle, as JAX/Haiku releases are
        return JAX_PICKLE
    raise WeightsError(
        f"{path}: not a checkpoint zoo can read (a PyTorch file, a TensorFlow checkpoint or a pickle)"
    )
