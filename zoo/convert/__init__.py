"""Converters from upstream checkpoint layouts to zoo architectures.

A checkpoint goes through three steps, each owned by its :class:`Converter`:

1. ``container.read(path)``: the file becomes plain Python without running code from it
   (:mod:`~zoo.convert.containers`: PyTorch files with ``weights_only=True``, TensorFlow
   tensor bundles, JAX/Haiku pickles through a restricted unpickler);
2. ``unwrap(obj)``: the part of the container that holds the network (``state_dict``,
   DINO's ``teacher``, BYOL's online parameters ...), as a flat ``{name: tensor}`` mapping;
3. ``convert(state_dict, arch)``: every backbone key mapped onto the architecture's own
   keys, only the head keys this format is known to carry dropped (projection heads,
   predictors, prototypes, queues, momentum encoders), anything else a
   :class:`~zoo.errors.ConversionError` that lists it; the result is checked complete
   against the architecture (:func:`check_complete`).

``matches(state_dict)`` tells whether an unwrapped checkpoint looks like the format, for
``zoo convert --from auto`` (:func:`detect_format`). The PyTorch state-dict formats are
rows of one table (:mod:`~zoo.convert.formats`: prefixes, heads, containers, architecture
rules); TensorFlow bundles, JAX pickles and EfficientNet-Lite's renaming are modules of
their own.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.convert.containers import TORCH, Container, sniff_container
from zoo.convert.torch_pickle import StandIn
from zoo.errors import ConversionError, WeightsError
from zoo.registry import Preprocess, get_arch, list_archs

StateDict = dict[str, torch.Tensor]


def unwrap_state_dict(obj: object, source: str) -> StateDict:
    """The tensor mapping of a plain checkpoint: the object itself or its ``state_dict``/``model``."""
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    return tensor_mapping(obj, source)


def tensor_mapping(obj: object, source: str) -> StateDict:
    """``obj`` as a ``{name: tensor}`` dict, or a ConversionError saying what it is instead."""
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{source}: expected a mapping of tensors, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        keys = ", ".join(str(k) for k in list(obj)[:8])
        value = obj[bad[0]]
        # A stand-in is an object the file pickled that zoo did not build: name its class.
        what = f"a {value.global_name} object" if isinstance(value, StandIn) else type(value).__name__
        raise ConversionError(
            f"{source}: not a state dict of tensors (e.g. {str(bad[0])!r} is {what}, not a tensor;"
            f" keys: {keys})"
        )
    return dict(obj)


def pick(obj: object, keys: Sequence[str], source: str) -> StateDict:
    """The first of ``keys`` present in the container ``obj``, as a state dict.

    A container without any of them is a ConversionError naming the keys it does have:
    reading the wrong part of a checkpoint must fail, never yield an empty state dict.
    """
    if isinstance(obj, Mapping):
        for key in keys:
            if key in obj:
                return tensor_mapping(obj[key], f"{source}[{key!r}]")
        found = ", ".join(repr(k) for k in list(obj)[:10])
        raise ConversionError(f"{source}: expected one of {list(keys)} in the checkpoint, found {found}")
    raise ConversionError(f"{source}: expected a dict checkpoint, found {type(obj).__name__}")


@dataclass(frozen=True)
class Converter:
    """One upstream checkpoint format.

    Attributes:
        name: the ``--from`` name (``swav``, ``simclr-tf`` ...).
        convert: ``(state_dict, arch) -> state_dict`` in the architecture's keys; strict.
        matches: whether an unwrapped checkpoint has this format's layout (``--from auto``).
        archs: the architectures the format converts to, in order of preference when more
            than one fits a checkpoint's shapes (``zoo convert`` without ``--arch``).
        description: one line for ``zoo convert --help``.
        container: how the file is read.
        unwrap: ``(obj, source) -> state_dict``: the part of the container holding the network.
        safe_globals: classes the release pickles beside its tensors that ``weights_only``
            loading must admit (DINO's ``argparse.Namespace``); an explicit allow-list.
        method: the training method, recorded in the card of a converted folder.
        preprocess: the input pipeline the upstream evaluation used, when it is not the
            ImageNet default (SimCLR's TF releases take [0, 1] pixels).
    """

    name: str
    convert: Callable[[Mapping[str, torch.Tensor], str], StateDict]
    matches: Callable[[Mapping[str, torch.Tensor]], bool]
    archs: tuple[str, ...]
    description: str
    container: Container = TORCH
    unwrap: Callable[[object, str], StateDict] = unwrap_state_dict
    safe_globals: tuple[type, ...] = ()
    method: str | None = None
    preprocess: Preprocess | None = field(default=None)

    def read(self, path: str | os.PathLike, companions: Sequence[str | os.PathLike] = ()) -> StateDict:
        """The unwrapped state dict of the checkpoint at ``path`` (and its ``companions``)."""
        obj = self.container.read(Path(path), [Path(c) for c in companions], self.safe_globals)
        return self.unwrap(obj, str(path))


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter) -> Converter:
    if converter.name in _CONVERTERS:
        raise ValueError(f"converter {converter.name!r} is registered twice")
    _CONVERTERS[converter.name] = converter
    return converter


def list_formats() -> list[str]:
    return sorted(_CONVERTERS)


def get_converter(name: str) -> Converter:
    try:
        return _CONVERTERS[name]
    except KeyError:
        raise ConversionError(
            f"unknown checkpoint format {name!r}; known formats: {', '.join(list_formats())}"
        ) from None


def detect_format(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> str:
    """The one registered format whose layout the checkpoint at ``source`` has.

    ``source`` is a file or folder (read once per kind of container), or an already-read
    PyTorch state dict. No match, or several, is a ConversionError naming the candidates.
    """
    if isinstance(source, Mapping):
        candidates = [c for c in _CONVERTERS.values() if c.container is TORCH]
        objects = {TORCH.name: source}
        where = "this state dict"
    else:
        path = Path(source)
        container = sniff_container(path)
        candidates = [c for c in _CONVERTERS.values() if c.container is container]
        # One read for every format of this container kind, admitting the union of their
        # allow-lists (each entry of which is a plain data class).
        allowed = tuple({g for c in candidates for g in c.safe_globals})
        objects = {container.name: container.read(path, [], allowed)}
        where = str(path)
    hits = []
    for converter in candidates:
        try:
            state_dict = converter.unwrap(objects[converter.container.name], where)
        except (ConversionError, WeightsError):
            continue
        if converter.matches(state_dict):
            hits.append(converter.name)
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConversionError(
            f"{where}: no known checkpoint format matches its layout ({_found(objects)}); pass --from"
            f" with one of: {', '.join(list_formats())}"
        )
    raise ConversionError(
        f"{where}: ambiguous checkpoint format, candidates: {', '.join(sorted(hits))}; pass one with --from"
    )


def _found(objects: Mapping[str, object]) -> str:
    """What a checkpoint holds, for an error: its top-level keys and, under a ``state_dict``
    or ``model``, the top-level modules."""
    parts = []
    for obj in objects.values():
        if not isinstance(obj, Mapping):
            parts.append(f"a {type(obj).__name__}")
            continue
        parts.append("top-level keys " + ", ".join(sorted({str(k).split(".", 1)[0] for k in obj})[:12]))
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                modules = sorted({str(k).split(".", 1)[0] for k in inner})[:12]
                parts.append(f"{key} modules " + ", ".join(modules))
    return "; ".join(parts) or "nothing"


# --------------------------------------------------------------------------------------------
# Building blocks shared by the format modules
# --------------------------------------------------------------------------------------------


def is_under(key: str, modules: Iterable[str]) -> bool:
    """Whether ``key`` is one of ``modules`` or a parameter inside one (``fc`` holds ``fc.0.weight``)."""
    return any(key == m or key.startswith(m + ".") for m in modules)


def strip_prefix(
    state_dict: Mapping[str, torch.Tensor], prefix: str, heads: Iterable[str] = ()
) -> tuple[StateDict, list[str]]:
    """Keys under ``prefix`` with the prefix removed, minus the ``heads`` modules (full key
    names); everything else is returned as leftovers for :func:`check_complete` to report."""
    heads = tuple(heads)
    mapped: StateDict = {}
    leftovers = []
    for key, value in state_dict.items():
        if is_under(key, heads):
            continue
        if key.startswith(prefix):
            mapped[key[len(prefix) :]] = value
        else:
            leftovers.append(key)
    return mapped, leftovers


def has_layout(
    state_dict: Mapping[str, torch.Tensor], required: Iterable[str], optional: Iterable[str] = ()
) -> bool:
    """Whether every ``required`` module occurs in ``state_dict`` and every key lies under a
    required or optional one: a format's exact set of top-level modules, for ``matches``."""
    required, optional = tuple(required), tuple(optional)
    present = {m for m in required if any(is_under(k, (m,)) for k in state_dict)}
    return len(present) == len(required) and all(is_under(k, required + optional) for k in state_dict)


def module_prefix(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``"module."`` when every key carries DistributedDataParallel's prefix, else ``""``."""
    return "module." if state_dict and all(k.startswith("module.") for k in state_dict) else ""


@functools.cache
def arch_shapes(arch: str) -> dict[str, torch.Size]:
    """Every state-dict key of ``arch`` and its shape, from a model built on the meta device."""
    with torch.device("meta"):
        model = get_arch(arch).builder()
    return {k: v.shape for k, v in model.state_dict().items()}


def archs_of(family: str) -> tuple[str, ...]:
    """Registered architectures of a family: ``resnet`` (torchvision) or ``vit`` (timm).

    :data:`zoo.models.FORMAT_SPECIFIC` (TF-padded ResNets, lightly's CIFAR ResNet) are left
    out: they have the family's keys and shapes but compute other features, so only the
    formats whose originals compute that way (BYOL, SimCLR, lightly) name them.
    """
    from zoo.models import FORMAT_SPECIFIC

    return tuple(a for a in list_archs() if a.startswith(family) and a not in FORMAT_SPECIFIC)


def require_arch(fmt: str, arch: str, archs: Sequence[str], why: str = "") -> None:
    if arch not in archs:
        raise ConversionError(
            f"{fmt} checkpoints convert to {', '.join(archs)}, not {arch!r}" + (f" ({why})" if why else "")
        )


def check_complete(
    mapped: StateDict,
    leftovers: list[str],
    fmt: str,
    expected: Mapping[str, torch.Size] | str | None = None,
) -> StateDict:
    """Fail with every unmapped key listed, so nothing is silently dropped.

    With ``expected`` (an architecture name, or its ``{key: shape}``), the mapping must also
    cover every key of the architecture with the right shape, and nothing else. BatchNorm's
    ``num_batches_tracked`` counter, which TensorFlow, JAX and old PyTorch files do not
    carry, is filled with 0: it is bookkeeping for training, unused in eval mode.
    """
    if leftovers:
        raise ConversionError(
            f"{fmt}: {len(leftovers)} checkpoint keys are not mapped: {_listing(leftovers)}"
        )
    if expected is None:
        return mapped
    shapes = arch_shapes(expected) if isinstance(expected, str) else expected
    arch = f" of {expected}" if isinstance(expected, str) else ""
    for key in shapes:
        if key.endswith(".num_batches_tracked") and key not in mapped:
            if key.removesuffix("num_batches_tracked") + "running_mean" in mapped:
                mapped[key] = torch.tensor(0, dtype=torch.long)
    missing = [k for k in shapes if k not in mapped]
    if missing:
        raise ConversionError(f"{fmt}: the checkpoint lacks {len(missing)} keys{arch}: {_listing(missing)}")
    unexpected = [k for k in mapped if k not in shapes]
    if unexpected:
        raise ConversionError(
            f"{fmt}: {len(unexpected)} mapped keys do not exist in the architecture{arch}"
            f" (a checkpoint of another architecture?): {_listing(unexpected)}"
        )
    wrong = [
        f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(shapes[k])}"
        for k in shapes
        if mapped[k].shape != shapes[k]
    ]
    if wrong:
        raise ConversionError(
            f"{fmt}: {len(wrong)} tensors have the wrong shape for the architecture{arch}: {_listing(wrong)}"
        )
    return {k: mapped[k] for k in shapes}  # the architecture's own key order


def _listing(keys: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(sorted(keys)[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


# --------------------------------------------------------------------------------------------
# Whole-file conversion (zoo convert)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """The result of :func:`convert_checkpoint`."""

    state_dict: StateDict
    format: str
    arch: str


def convert_checkpoint(
    source: str | os.PathLike,
    fmt: str = "auto",
    arch: str | None = None,
    companions: Sequence[str | os.PathLike] = (),
) -> Conversion:
    """Read and strictly convert one checkpoint file (or TensorFlow checkpoint folder).

    ``fmt="auto"`` detects the format from the layout (:func:`detect_format`); without
    ``arch``, the first of the format's architectures whose keys and shapes fit is used.
    """
    path = Path(source)
    if not path.exists() and not Path(f"{path}.index").exists():
        raise WeightsError(f"{path}: no such file or folder")
    name = detect_format(path) if fmt == "auto" else fmt
    converter = get_converter(name)
    state_dict = converter.read(path, companions)
    if arch is not None:  # each converter refuses an architecture it does not produce, saying why
        return Conversion(converter.convert(state_dict, arch), name, arch)
    errors: list[ConversionError] = []
    for candidate in converter.archs:
        try:
            return Conversion(converter.convert(state_dict, candidate), name, candidate)
        except ConversionError as e:
            errors.append(e)
    if errors and (len({str(e) for e in errors}) == 1 or all("not mapped" in str(e) for e in errors)):
        raise errors[0]  # a layout the format does not know: the same answer for every architecture
    raise ConversionError(
        f"{path}: the {name} checkpoint fits none of {', '.join(converter.archs)}; pass --arch to see"
        f" why for one of them (first: {converter.archs[0]}: {errors[0] if errors else 'none'})"
    )


def convert_to_folder(
    source: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str = "auto",
    arch: str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """``zoo convert``: convert a checkpoint strictly and write it as a zoo folder at ``out``.

    The folder (``config.json``, ``model.safetensors``, ``README.md``) loads with
    ``zoo.load(out)`` and exports with ``zoo export``. Its record names the source file and
    its sha256, and the upstream evaluation's preprocessing where the format has its own.
    ``out`` must be new, empty, or a zoo folder of the same name and architecture, unless
    ``overwrite=True``: the rule of ``zoo export`` (:func:`zoo.export.check_export_target`).

    Raises:
        ExportError: ``out`` holds something else (and ``overwrite`` is False).
        OutputError: ``out`` cannot be written (checked before the checkpoint is read).
        ConversionError, WeightsError: the checkpoint cannot be read or converted strictly.
    """
    from zoo import hub
    from zoo.encoder import Encoder
    from zoo.export import check_export_target, remove_stale_graph, save_folder
    from zoo.folder import load_state_dict_strict
    from zoo.loading import create_model
    from zoo.output import check_output_folder
    from zoo.registry import ModelEntry, Weights

    check_output_folder(out)  # a missing parent or a read-only folder fails before the work
    path = Path(source)
    conversion = convert_checkpoint(path, fmt, arch)
    converter = get_converter(conversion.format)
    preprocess = converter.preprocess or create_model(conversion.arch).preprocess
    digest = f", sha256 {hub.sha256_file(path)}" if path.is_file() else ""
    method = converter.method or "custom"
    entry = ModelEntry(
        name=f"{method}-{conversion.arch.replace('_', '-')}",
        arch=conversion.arch,
        method=method if converter.method else "unknown",
        weights=Weights(format="zoo"),
        license="unknown",
        paper="",
        description=(
            f"Converted by `zoo convert --from {conversion.format}` from {path.name}{digest}: every"
            f" backbone key mapped onto {conversion.arch}, only the format's known heads dropped."
        ),
        preprocess=preprocess,
        limitations=(
            "Converted from a checkpoint that no registry entry describes: its licence, training"
            " data and evaluation are whatever its source says; check them before use."
        ),
    )
    backbone = get_arch(conversion.arch).builder()
    load_state_dict_strict(backbone, conversion.state_dict, str(path))
    # Only now is the record known that a folder already at `out` must match.
    directory = check_export_target(out, entry, overwrite=overwrite)
    remove_stale_graph(directory)  # an export's graph there was made from other weights
    return save_folder(Encoder(backbone, conversion.arch, preprocess, entry), directory)


# Importing the format modules registers them (they import the names above): one table for
# the PyTorch state-dict formats, and modules of their own for the readers that are more.
from zoo.convert import byol_jax, efficientnet_lite, formats, simclr_tf  # noqa: E402

__all__ = [
    "Conversion",
    "Converter",
    "StateDict",
    "arch_shapes",
    "archs_of",
    "byol_jax",
    "check_complete",
    "convert_checkpoint",
    "convert_to_folder",
    "detect_format",
    "efficientnet_lite",
    "formats",
    "get_converter",
    "has_layout",
    "is_under",
    "list_formats",
    "module_prefix",
    "pick",
    "register_converter",
    "require_arch",
    "simclr_tf",
    "strip_prefix",
    "tensor_mapping",
    "unwrap_state_dict",
]
