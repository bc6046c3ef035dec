"""The registry: what each zoo name means.

Two tables live here, both filled at import time by the modules that own the entries:

* architectures (``resnet50``, ``vit_small_patch16_224``, ...): a builder that returns a
  backbone without classifier, registered with :func:`register_arch` by ``zoo/models/*.py``;
* pretrained entries (``supervised-efficientnet-lite0``, ``swav-r50``, ...): one frozen
  :class:`ModelEntry` each, registered with :func:`register_model` from the flat table in
  ``zoo/pretrained.py``.

Entry names follow ``<method>-<arch>[-<dataset>]`` in lower case: upstream ImageNet
releases carry no dataset suffix (``swav-r50``), encoders trained by this project do
(``simclr-r18-cifar10``). Where one release has several variants a tag follows a dot
(``swav-r50.ep400``); the bare name resolves to the entry registered as the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from torch import nn

from zoo.errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Methods that train with human labels: reference points beside the self-supervised
#: encoders, never ranked as one of them (a plain classifier's features; SupCon's upper bound).
SUPERVISED_METHODS = frozenset({"supervised", "supcon"})

_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9_]+)?$")


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the encoder's input: resize, centre crop, scale, normalise.

    The shorter side is resized to ``resize_size`` and the centre ``input_size`` square is
    cropped (``crop_pct = input_size / resize_size`` in timm's terms). Pixels are scaled to
    [0, 1], then normalised with ``mean`` and ``std``; SimCLR's TF releases use no
    normalisation, which is ``mean=(0, 0, 0), std=(1, 1, 1)``.

    ``flip_average`` makes the features the mean of the image's and of its left-right mirror
    image's (test-time augmentation: 2 forward passes, in :meth:`zoo.Encoder.forward`, every
    embedding backend and the exported ONNX graph).
    """

    input_size: int = 224
    resize_size: int = 256
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: Features averaged over the image and its mirror image (2 forward passes).
    flip_average: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.flip_average, bool):
            raise ValueError(f"flip_average must be True or False, got {self.flip_average!r}")
        if self.resize_size < self.input_size:
            raise ValueError(f"resize_size ({self.resize_size}) must be >= input_size ({self.input_size})")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError(f"std must be finite and positive, got {self.std}")
        if not all(math.isfinite(m) for m in self.mean):
            raise ValueError(f"mean must be finite, got {self.mean}")

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize_size

    def __repr__(self) -> str:
        # flip_average only where set: the repr keys feature caches (zoo.evaluate.features), whose
        # keys for plain preprocessing must stay those from before the option existed.
        shown = (f for f in dataclasses.fields(self) if f.name != "flip_average" or self.flip_average)
        return f"{type(self).__qualname__}({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy, as records and hashes hold it: ``flip_average`` only where set, so
        the records (config.json, safetensors metadata) of plain preprocessing are unchanged."""
        data = dataclasses.asdict(self)
        if not self.flip_average:
            del data["flip_average"]
        return data


@dataclass(frozen=True)
class Metric:
    """One evaluation number and how it was obtained.

    ``value`` is a percentage. ``protocol`` names the evaluation (``linear``, ``knn``,
    ``top1``, ``nmi`` ...), ``how`` says exactly how it was measured (features, k,
    temperature, epochs, hardware) and ``source`` is the paper or repository for a
    reported number, or the command that reproduces a measured one.
    """

    dataset: str
    protocol: str
    value: float
    how: str
    source: str


@dataclass(frozen=True)
class Training:
    """How zoo trained an entry's weights, so anyone can rerun it.

    ``command`` is the ``zoo train`` call (recipe + overrides) that produced the weights;
    ``recipe`` the recipe file it names; ``hardware`` and ``minutes`` the CPU budget it ran
    in; ``curves`` the training-curves plot beside the checked-in cards (``model_cards/``);
    ``progress``, for a long run, its kNN-against-CPU-hours figure there (with a ``.json``).
    """

    recipe: str
    command: str
    epochs: int
    steps: int
    batch_size: int
    hardware: str
    minutes: float
    curves: str = ""
    progress: str = ""


@dataclass(frozen=True)
class Weights:
    """Where the weights of an entry come from, in the order they are tried, and how they are checked.

    ``file`` is a path inside an installed Python package written ``package:relative/path``
    (weights that install with the project), then ``hf_hub_id`` (``org/name``, a zoo
    folder on the Hugging Face Hub, at commit ``hf_revision`` when given: a release pinned
    with the 40-hex commit sha that ``zoo push`` prints), then ``url``. When both ``file``
    and ``hf_hub_id`` are set, the installed copy is used (offline) and the Hub only stands in
    for it when the package does not carry the file; both are checked against ``sha256``.
    ``format`` names the container: ``zoo`` for a zoo folder or ``model.safetensors``,
    otherwise the upstream format whose converter
    in ``zoo.convert`` maps it to the architecture's keys. ``companion_urls`` are further
    files of the same release that the converter reads together with ``url`` (a TensorFlow
    checkpoint's data shard beside its ``.index``).

    A file is verified with the strongest of what is known about it (:attr:`verification`):

    * ``sha256``: the full hash, checked on every file read from a package or downloaded;
    * ``sha256_prefix``: the hex prefix upstream publishes in the file name (torchvision's
      ``resnet50-0676ba61.pth``), checked after download;
    * ``md5_prefix``: the hex prefix of the md5 upstream publishes (MoCo's README);
    * none of these: trust on first use. Without a full ``sha256``, the sha256 of the first
      download is recorded beside it in the cache and every later read is checked against it.
    """

    sha256: str = ""
    format: str = "zoo"
    file: str | None = None
    hf_hub_id: str | None = None
    hf_revision: str | None = None
    url: str | None = None
    origin_url: str | None = None
    sha256_prefix: str = ""
    md5_prefix: str = ""
    companion_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # JSON round trips (config.json) turn tuples into lists; keep records comparable.
        object.__setattr__(self, "companion_urls", tuple(self.companion_urls))
        # A record with no source describes weights saved by a user, which only exist in the
        # folder that carries the record: nothing to verify.
        if not self.has_source:
            return
        if self.sha256 and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        for name in ("sha256_prefix", "md5_prefix"):
            value = getattr(self, name)
            if value and not re.fullmatch(r"[0-9a-f]{8,63}", value):
                raise ValueError(f"{name} must be 8 or more lower-case hex digits, got {value!r}")
        if self.hf_revision is not None:
            if not self.hf_hub_id:
                raise ValueError("hf_revision pins a commit of hf_hub_id, which is missing")
            if not re.fullmatch(r"[0-9a-f]{40}", self.hf_revision):
                # A branch or tag can move; a release must name the commit it was published as.
                raise ValueError(f"hf_revision must be a pinned 40-hex commit sha, got {self.hf_revision!r}")
        if (self.file or self.hf_hub_id) and not self.sha256:
            # Trust on first use only makes sense for a URL: package and Hub files are ours.
            raise ValueError("weights installed from a package or the Hub need their full sha256")
        if self.companion_urls and not self.url:
            raise ValueError("companion_urls are read together with url, which is missing")

    @property
    def has_source(self) -> bool:
        return bool(self.file or self.hf_hub_id or self.url)

    @property
    def verification(self) -> Literal["sha256", "sha256-prefix", "md5-prefix", "trust-on-first-use"]:
        """The strongest check applied to the downloaded file (see the class docstring)."""
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return "sha256-prefix"
        if self.md5_prefix:
            return "md5-prefix"
        return "trust-on-first-use"


@dataclass(frozen=True)
class ModelEntry:
    """Everything zoo knows about one pretrained encoder."""

    name: str
    arch: str
    method: str
    weights: Weights
    license: str
    paper: str
    description: str
    dataset: str = "imagenet-1k"
    preprocess: Preprocess = field(default_factory=Preprocess)
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    reported: tuple[Metric, ...] = ()
    measured: tuple[Metric, ...] = ()
    citation: str = ""
    limitations: str = ""
    training: Training | None = None  # set for the encoders zoo trained itself

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"model name {self.name!r} must be lower case '<method>-<arch>[-<dataset>]'"
                " with an optional '.tag'"
            )

    @property
    def embed_dim(self) -> int:
        return get_arch(self.arch).embed_dim

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy, as written into a folder's ``config.json``."""
        data = dataclasses.asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        data = dict(data)
        data["weights"] = Weights(**data["weights"])
        pre = dict(data.get("preprocess", {}))
        for key in ("mean", "std"):
            if key in pre:
                pre[key] = tuple(pre[key])
        data["preprocess"] = Preprocess(**pre)
        data["reported"] = tuple(Metric(**m) for m in data.get("reported", ()))
        data["measured"] = tuple(Metric(**m) for m in data.get("measured", ()))
        if data.get("training") is not None:
            data["training"] = Training(**data["training"])
        return cls(**data)


@dataclass(frozen=True)
class ArchSpec:
    """A backbone architecture: a builder returning an ``nn.Module`` that maps a batch of
    images (N, 3, H, W) to pooled features (N, embed_dim), with no classifier head."""

    name: str
    builder: Callable[..., nn.Module]
    embed_dim: int
    source: Literal["torchvision", "timm"]
    timm_name: str | None = None  # set where timm.create_model(timm_name, num_classes=0) loads our weights
    default_input_size: int = 224
    #: The builder keyword arguments a record read from a file may set, each with its type and
    #: inclusive range (see :func:`validate_record`); any other is refused there.
    record_kwargs: Mapping[str, tuple[type, float, float]] = field(default_factory=dict)


_ARCHS: dict[str, ArchSpec] = {}
_MODELS: dict[str, ModelEntry] = {}
_DEFAULT_TAGS: dict[str, str] = {}
_EXPLICIT_DEFAULTS: set[str] = set()


def register_arch(
    name: str,
    *,
    embed_dim: int,
    source: Literal["torchvision", "timm"],
    timm_name: str | None = None,
    default_input_size: int = 224,
    record_kwargs: Mapping[str, tuple[type, float, float]] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a backbone builder under ``name``; duplicates are errors.

    ``record_kwargs`` lists the builder arguments a saved record may carry in ``arch_kwargs``
    (``{"drop_path_rate": (float, 0.0, 1.0)}``); records with any other are refused on load.
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is registered twice")
        _ARCHS[name] = ArchSpec(
            name, fn, embed_dim, source, timm_name, default_input_size, dict(record_kwargs or {})
        )
        return fn

    return wrap


def register_model(entry: ModelEntry, *, default: bool = False) -> ModelEntry:
    """Add a pretrained entry. ``default=True`` makes the bare name (before the ``.tag``)
    resolve to it. A duplicate name or an unknown architecture is an error."""
    if entry.name in _MODELS:
        raise ValueError(f"model {entry.name!r} is registered twice")
    if entry.arch not in _ARCHS:
        raise ValueError(f"model {entry.name!r} uses unregistered architecture {entry.arch!r}")
    base, _, tag = entry.name.partition(".")
    if tag:
        # The first tag registered is the provisional default; an explicit default wins.
        if default and base in _EXPLICIT_DEFAULTS:
            raise ValueError(f"{base!r} has two default tags: {_DEFAULT_TAGS[base]!r}, {entry.name!r}")
        if default or base not in _DEFAULT_TAGS:
            _DEFAULT_TAGS[base] = entry.name
        if default:
            _EXPLICIT_DEFAULTS.add(base)
    _MODELS[entry.name] = entry
    return entry


def list_archs() -> list[str]:
    return sorted(_ARCHS)


def get_arch(name: str) -> ArchSpec:
    try:
        return _ARCHS[name]
    except KeyError:
        raise UnknownModelError(_unknown_message("architecture", name, list(_ARCHS))) from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered entry names matching a shell-style ``pattern`` (``"*-r50*"``), sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern.lower()))


def default_names() -> dict[str, str]:
    """``{bare name: the registered entry it loads}`` for names such as ``swav-r50`` that
    stand for a default variant (``swav-r50.ep800``) and are not entries themselves."""
    return {base: name for base, name in sorted(_DEFAULT_TAGS.items()) if base not in _MODELS}


def resolve_name(name: str) -> str:
    """The full registered name for ``name`` (a bare name resolves to its default tag)."""
    key = name.strip().lower()
    if key in _MODELS:
        return key
    if key in _DEFAULT_TAGS:
        return _DEFAULT_TAGS[key]
    raise UnknownModelError(
        _unknown_message("model", name, list(_MODELS) + list(_DEFAULT_TAGS))
        + " Run `zoo list` to see every model."
    )


def is_registered(name: str) -> bool:
    key = name.strip().lower()
    return key in _MODELS or key in _DEFAULT_TAGS


def model_info(name: str) -> ModelEntry:
    """The :class:`ModelEntry` registered under ``name``; unknown names suggest close ones."""
    return _MODELS[resolve_name(name)]


def iter_models() -> Iterator[ModelEntry]:
    for name in sorted(_MODELS):
        yield _MODELS[name]


def _unknown_message(kind: str, name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), candidates, n=5, cutoff=0.5)
    if not close:
        # Also match on a shared component ("r50" finds every ResNet-50 entry).
        parts = set(re.split(r"[-._]", name.lower()))
        close = sorted(c for c in candidates if parts & set(re.split(r"[-._]", c)))[:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint}"


# --------------------------------------------------------------------------------------------
# The schema of a record read from a file (config.json, safetensors metadata)
# --------------------------------------------------------------------------------------------

#: Input sizes a record may ask for: below 8 px no backbone works; above 1024 px a crafted
#: record could make preprocessing allocate without bound.
INPUT_SIZE_RANGE = (8, 1024)
RESIZE_SIZE_MAX = 2048
#: Pixels are scaled to [0, 1] before normalising, so these bounds leave room for any real
#: normalisation while refusing values that turn features into infinities.
MEAN_RANGE = (-10.0, 10.0)
STD_RANGE = (1e-3, 100.0)
_TEXT_MAX = 100_000


class RecordError(ValueError):
    """A zoo record that breaks the schema; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _text(value: Any, where: str, *, optional: bool = False, pattern: re.Pattern[str] | None = None) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise RecordError(where, f"must be a string, got {type(value).__name__}")
    if len(value) > _TEXT_MAX:
        raise RecordError(where, f"is {len(value):,} characters long (at most {_TEXT_MAX:,})")
    if pattern is not None and not pattern.fullmatch(value):
        raise RecordError(where, f"{value!r} does not match {pattern.pattern}")


#: The record fields that name files, and the suffixes each may end in. zoo joins them to its
#: own folders and reads the file (cards quote the recipe, read a progress figure's ``.json``)
#: or copies it (``zoo push``), so a record from a download must not name any other file.
PATH_FIELDS: Mapping[str, tuple[str, ...]] = {
    "recipe": (".yaml", ".yml"),
    "curves": (".png",),
    "progress": (".png",),
}


def check_relative_path(value: Any, where: str, suffixes: tuple[str, ...]) -> str:
    """``value`` if it is a relative POSIX path (``curves/x.png``) with one of ``suffixes``,
    and nothing that could leave the folder it is joined to; ``""`` means no file.

    Raises:
        RecordError: naming ``where`` and what is wrong with the path.
    """
    _text(value, where)
    if not value:
        return value
    path = PurePosixPath(value)
    # A backslash or a colon is a separator or a drive on Windows; "~" is expanded by some callers.
    if (
        path.is_absolute()
        or ".." in path.parts
        or value.startswith("~")
        or any(c in value for c in ("\\", ":", "\0"))
    ):
        raise RecordError(
            where,
            f"must be a relative path with '/' separators and no '..' (like curves/name.png), got {value!r}",
        )
    if path.suffix.lower() not in suffixes:
        raise RecordError(where, f"must name a {' or '.join(suffixes)} file, got {value!r}")
    return value


def _number(value: Any, where: str, kind: type, lo: float, hi: float) -> None:
    # bool is an int to Python, never a size or a rate to zoo.
    ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise RecordError(where, f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    # Range first: math.isfinite(10**400) raises OverflowError instead of answering.
    if not lo <= value <= hi or not math.isfinite(value):
        text = repr(value)
        shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
        raise RecordError(where, f"must be a finite number in [{lo:g}, {hi:g}], got {shown}")


def _mapping(value: Any, where: str, cls: type, required: tuple[str, ...] = ()) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(where, f"must be an object, got {type(value).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    for key in value:
        if key not in known:
            raise RecordError(f"{where}.{key}" if where else str(key), "unknown field")
    for key in required:
        if key not in value:
            raise RecordError(f"{where}.{key}" if where else key, "missing")
    return value


def _triple(value: Any, where: str, lo: float, hi: float) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise RecordError(where, f"must be 3 numbers (one per RGB channel), got {value!r}")
    for i, v in enumerate(value):
        _number(v, f"{where}[{i}]", float, lo, hi)


def _metrics(value: Any, where: str) -> None:
    if not isinstance(value, (list, tuple)):
        raise RecordError(where, f"must be a list, got {type(value).__name__}")
    for i, m in enumerate(value):
        at = f"{where}[{i}]"
        _mapping(m, at, Metric, ("dataset", "protocol", "value", "how", "source"))
        for key in ("dataset", "protocol", "how", "source"):
            _text(m[key], f"{at}.{key}")
        _number(m["value"], f"{at}.value", float, -1e9, 1e9)


def validate_record(record: Mapping[str, Any]) -> ModelEntry:
    """Check a record read from a file against zoo's schema, then build its :class:`ModelEntry`.

    Only known fields, of the right types, within ranges: a registered architecture, only the
    ``arch_kwargs`` it declares (:attr:`ArchSpec.record_kwargs`), an input size in
    :data:`INPUT_SIZE_RANGE`, finite means and finite positive stds. A record is data from
    anywhere (a download, the Hub): nothing in it may allocate without bound or yield NaNs.

    Raises:
        RecordError: naming the field (``preprocess.input_size``) and what is wrong with it.
    """
    r = _mapping(
        record, "", ModelEntry, ("name", "arch", "method", "weights", "license", "paper", "description")
    )
    _text(r["name"], "name", pattern=_NAME_RE)
    _text(r["arch"], "arch")
    if r["arch"] not in _ARCHS:
        raise RecordError("arch", _unknown_message("architecture", r["arch"], list(_ARCHS)))
    for key in ("method", "license", "paper", "description", "dataset", "citation", "limitations"):
        if key in r:
            _text(r[key], key)

    w = _mapping(r["weights"], "weights", Weights)
    for key in ("sha256", "format", "sha256_prefix", "md5_prefix"):
        if key in w:
            _text(w[key], f"weights.{key}")
    for key in ("file", "hf_hub_id", "hf_revision", "url", "origin_url"):
        if key in w:
            _text(w[key], f"weights.{key}", optional=True)
    companions = w.get("companion_urls", [])
    if not isinstance(companions, (list, tuple)):
        raise RecordError("weights.companion_urls", "must be a list of URLs")
    for i, url in enumerate(companions):
        _text(url, f"weights.companion_urls[{i}]")

    pre = _mapping(r.get("preprocess", {}), "preprocess", Preprocess)
    size = pre.get("input_size", Preprocess.input_size)
    _number(size, "preprocess.input_size", int, *INPUT_SIZE_RANGE)
    _number(
        pre.get("resize_size", Preprocess.resize_size), "preprocess.resize_size", int, size, RESIZE_SIZE_MAX
    )
    interpolation = pre.get("interpolation", "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        raise RecordError(
            "preprocess.interpolation", f"must be bilinear, bicubic or nearest, got {interpolation!r}"
        )
    _triple(pre.get("mean", IMAGENET_MEAN), "preprocess.mean", *MEAN_RANGE)
    _triple(pre.get("std", IMAGENET_STD), "preprocess.std", *STD_RANGE)
    flip = pre.get("flip_average", False)
    if not isinstance(flip, bool):
        raise RecordError("preprocess.flip_average", f"must be true or false, got {flip!r}")

    kwargs = r.get("arch_kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise RecordError("arch_kwargs", f"must be an object, got {type(kwargs).__name__}")
    allowed = _ARCHS[r["arch"]].record_kwargs
    for key, value in kwargs.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise RecordError(
                f"arch_kwargs.{key}", f"not an argument {r['arch']} accepts from a file (known: {known})"
            )
        kind, lo, hi = allowed[key]
        _number(value, f"arch_kwargs.{key}", kind, lo, hi)

    for key in ("reported", "measured"):
        if key in r:
            _metrics(r[key], key)
    if r.get("training") is not None:
        t = _mapping(
            r["training"],
            "training",
            Training,
            ("recipe", "command", "epochs", "steps", "batch_size", "hardware", "minutes"),
        )
        for key in ("command", "hardware"):
            _text(t[key], f"training.{key}")
        for key, suffixes in PATH_FIELDS.items():
            if key in t:
                check_relative_path(t[key], f"training.{key}", suffixes)
        for key, lo in (("epochs", 0), ("steps", 0), ("batch_size", 1)):
            _number(t[key], f"training.{key}", int, lo, 1e12)
        _number(t["minutes"], "training.minutes", float, 0, 1e9)
    try:
        return ModelEntry.from_dict(dict(r))
    except RecordError:
        raise
    except (TypeError, ValueError, KeyError) as e:  # the dataclasses' own cross-field checks
        raise RecordError("record", str(e)) from None
