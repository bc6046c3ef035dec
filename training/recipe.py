"""Recipes: YAML files loaded into typed dataclasses, with ``key=value`` overrides.

A recipe names the method (and its hyper-parameters), the backbone, the data, the views,
the optimiser and the run settings; ``training/recipes/<method>_<arch>_<data>.yaml`` are the
published ones. Loading is strict: an unknown key or a value of the wrong type is a
:class:`RecipeError` that names the key (``optim.lr: expected a number, got 'fast'``), and
suggests the closest known key for a typo.

    recipe = load_recipe("training/recipes/simclr_r18q_cifar10.yaml", ["train.epochs=10"])
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from zoo.training.methods import MethodConfig, get_method

from zoo.errors import ZooError

RECIPES_DIR = Path(__file__).parent / "recipes"
_NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9_]+)?$")


class RecipeError(ZooError, ValueError):
    """A recipe that cannot be used as written; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    #: ImageFolder root holding ``<split>/<class>/<image>``.
    path: str = ""
    train_split: str = "train"
    #: The split the final evaluation (and the kNN monitor, unless ``run.knn_split: holdout``)
    #: classifies ("" = val, else test).
    test_split: str = ""
    #: Images are decoded once, shorter side resized to this and centre-cropped square, and
    #: kept in memory as uint8 (CIFAR-10 at 32 px: 150 MB).
    image_size: int = 32
    #: Use only the first N images of each class (0 = all): smoke tests and quick looks.
    limit_per_class: int = 0
    #: Decode the split into memory once (fast; CIFAR, Imagenette). ``false`` decodes files
    #: as batches are drawn, for datasets larger than memory (use augment.workers > 0).
    in_memory: bool = True

    def __post_init__(self) -> None:
        _check(self.image_size >= 1, "image_size must be >= 1")
        _check(self.limit_per_class >= 0, "limit_per_class must be >= 0")


@dataclass(frozen=True)
class AugmentConfig:
    #: ``simclr`` / ``byol`` (2 views) or ``multicrop`` (2 global + ``num_local`` local views).
    preset: Literal["simclr", "byol", "multicrop"] = "byol"
    size: int = 32
    min_scale: float = 0.08
    #: Gaussian blur (off on 32 px images, as in SimCLR's CIFAR experiments).
    blur: bool = False
    #: SimCLR's colour strength s (jitter 0.8 s, hue 0.2 s); CIFAR recipes use 0.5.
    jitter_strength: float = 1.0
    #: Share of views turned grey (SimCLR's 0.2, every preset's). 0 gives the views of methods
    #: whose papers change no colour (MAE, DCGAN: jitter_strength 0 alone leaves this on).
    grayscale_p: float = 0.2
    num_local: int = 0
    local_size: int = 16
    local_scale: tuple[float, float] = (0.05, 0.14)
    global_scale: tuple[float, float] = (0.14, 1.0)
    #: ``batched`` (all samples at once on tensors: fast on CPU) or ``per_sample``
    #: (torchvision v2, one image at a time).
    backend: Literal["batched", "per_sample"] = "batched"
    #: DataLoader worker processes preparing views (0 = in the training process).
    workers: int = 0

    def __post_init__(self) -> None:
        _check(self.size >= 1 and self.local_size >= 1, "size and local_size must be >= 1")
        _check(0 < self.min_scale <= 1, "min_scale must be in (0, 1]")
        _check(self.num_local >= 0 and self.workers >= 0, "num_local and workers must be >= 0")
        _check(self.jitter_strength >= 0, "jitter_strength must be >= 0")
        _check(0 <= self.grayscale_p <= 1, f"grayscale_p is a probability, got {self.grayscale_p}")
        for key in ("local_scale", "global_scale"):
            lo, hi = getattr(self, key)
            _check(0 < lo <= hi <= 1, f"{key} must satisfy 0 < min <= max <= 1, got {[lo, hi]}")


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "lars", "adamw"] = "sgd"
    #: Learning rate at batch 256; scaled linearly with the global batch (Goyal et al. 2017).
    lr: float = 0.06
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    #: The cosine schedule ends at ``lr * final_lr_ratio``.
    final_lr_ratio: float = 0.0
    lars_eta: float = 0.02
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        _check(self.lr > 0, "lr must be positive")
        _check(self.weight_decay >= 0 and self.momentum >= 0, "weight_decay and momentum must be >= 0")
        _check(self.warmup_epochs >= 0 and 0 <= self.final_lr_ratio <= 1, "invalid schedule")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    #: Global batch (split evenly over processes).
    batch_size: int = 256
    seed: int = 0
    #: ``auto``: bf16 autocast on CPUs with bf16 instructions (AVX-512 BF16 or AMX; else fp32, see
    #: :func:`zoo.machine.cpu_has_bf16`) and on GPUs that support it, else fp16 with scaling.
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    channels_last: bool = True
    #: ``auto``: compile where it was measured to pay (GPUs, CPUs with AMX tiles); see
    #: :func:`zoo.training.loop.compile_pays`.
    compile: bool | Literal["auto"] = False
    #: torch threads per process (0 = torch's default).
    threads: int = 0
    sync_batchnorm: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Stop after this many optimiser steps in total (0 = train all epochs).
    max_steps: int = 0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1")
        _check(self.threads >= 0 and self.max_steps >= 0, "threads and max_steps must be >= 0")


EXPORT_BACKBONES = ("online", "momentum")
KNN_SPLITS = ("test", "holdout")


@dataclass(frozen=True)
class RunConfig:
    #: Output folder; ``{name}`` is replaced by the recipe's name.
    out_dir: str = "runs/{name}"
    checkpoint_every_steps: int = 200
    log_every_steps: int = 20
    #: Online kNN monitor every N epochs (0 = only at the end).
    knn_every_epochs: int = 5
    knn_k: int = 200
    knn_temperature: float = 0.1
    #: Training images (spread evenly over classes) the monitor's kNN votes with (0 = all).
    knn_train_images: int = 10000
    #: Test images the monitor classifies (0 = all).
    knn_test_images: int = 0
    #: What the monitor classifies: ``test``, the test split (as MoCo's CIFAR-10 demo and
    #: lightly's benchmarks do, so the curves compare with theirs), or ``holdout``, a seeded
    #: tenth of each training class voted on by the rest (``knn_train_images`` of them): the
    #: split to tune a recipe on, since choosing settings by test-split readings and then
    #: reporting the test split overstates the result. The final evaluation reads the test
    #: split either way.
    knn_split: str = "test"
    #: Before every evaluation (the monitor, the final one) and in the export, re-estimate the
    #: backbone's batch-norm statistics on this many whole training images, a fixed random
    #: subset (0 = keep those of training). For methods whose backbone trains on patches or
    #: tiles, whose own statistics describe inputs the encoder never embeds in use.
    bn_recalibration_images: int = 0
    #: The encoder that evaluations measure and the export ships: ``online`` (the backbone the
    #: gradients train) or ``momentum``, its EMA copy in the methods that keep one (MoCo's key
    #: encoder, BYOL's target, DINO's teacher: DINO's authors evaluate the teacher, which read
    #: higher than the student throughout their training). May change on ``--resume``.
    export_backbone: str = "online"
    #: At the end, write ``export/`` (zoo folder + ONNX + card) with the final evaluation.
    export: bool = True
    export_onnx: bool = True

    def __post_init__(self) -> None:
        _check(self.checkpoint_every_steps >= 1 and self.log_every_steps >= 1, "step intervals must be >= 1")
        _check(
            self.knn_every_epochs >= 0 and self.knn_k >= 1 and self.knn_temperature > 0,
            "invalid kNN settings",
        )
        _check(
            self.knn_train_images >= 0 and self.knn_test_images >= 0,
            "knn_train_images and knn_test_images must be >= 0 (0 = all)",
        )
        _check(self.bn_recalibration_images >= 0, "bn_recalibration_images must be >= 0")
        _check(
            self.knn_split in KNN_SPLITS,
            f"knn_split must be one of {', '.join(KNN_SPLITS)}, got {self.knn_split!r}",
        )
        _check(
            self.export_backbone in EXPORT_BACKBONES,
            f"export_backbone must be one of {', '.join(EXPORT_BACKBONES)}, got {self.export_backbone!r}",
        )


@dataclass(frozen=True)
class Recipe:
    #: The encoder's zoo name, ``<method>-<arch>-<dataset>`` (``simclr-r18q-cifar10``).
    name: str
    arch: str
    method: MethodConfig
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def method_name(self) -> str:
        return _method_name(self.method)

    def to_dict(self) -> dict[str, Any]:
        """A YAML/JSON-able copy that :func:`recipe_from_dict` reads back."""
        out = dataclasses.asdict(self)
        out["method"] = {"name": self.method_name, **out["method"]}
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(_lists(self.to_dict()), sort_keys=False)


def _method_name(config: MethodConfig) -> str:
    from zoo.training.methods import METHODS

    for name, cls in METHODS.items():
        if type(config) is cls.Config:
            return name
    raise RecipeError(f"{type(config).__name__} belongs to no registered method")


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    return value


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (a path, or the name of a published recipe in
    ``training/recipes``) and apply ``key=value`` overrides (values parsed as YAML)."""
    path = resolve_recipe_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
    for item in overrides:
        apply_override(data, item)
    try:
        return recipe_from_dict(data)
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None


def resolve_recipe_path(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    for name in (str(path), f"{path}.yaml"):
        if (RECIPES_DIR / name).is_file():
            return RECIPES_DIR / name
    known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
    close = difflib.get_close_matches(str(path), known, n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else f" Published recipes: {', '.join(known)}."
    raise RecipeError(f"recipe {path} not found.{hint}")


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in the nested mapping ``data`` (value parsed as YAML)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"override {item!r} must be written key=value (e.g. train.epochs=10)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.strip().split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Build a :class:`Recipe`, checking every key and type."""
    data = dict(data)
    method = data.get("method")
    if not isinstance(method, dict) or "name" not in method:
        raise RecipeError("method: expected a mapping with a 'name' (e.g. method: {name: simclr})")
    method = dict(method)
    name = method.pop("name")
    try:
        cls = get_method(str(name))
    except ValueError as e:
        raise RecipeError(f"method.name: {e}") from None
    data["method"] = _build(cls.Config, method, "method")
    recipe = _build(Recipe, data, "")
    if not _NAME_RE.match(recipe.name):
        raise RecipeError(f"name: {recipe.name!r} must be lower case '<method>-<arch>-<dataset>'")
    if cls.multicrop != (recipe.augment.preset == "multicrop"):
        want = "multicrop" if cls.multicrop else "simclr or byol"
        raise RecipeError(f"augment.preset: {cls.name} needs {want} views, got {recipe.augment.preset!r}")
    if recipe.augment.size > recipe.data.image_size:
        # Views are crops of the stored images, and evaluations centre-crop augment.size from
        # them: a larger size would evaluate on a corner of nothing.
        raise RecipeError(
            f"augment.size: {recipe.augment.size} is larger than data.image_size"
            f" {recipe.data.image_size}; store the images at least that large"
        )
    if cls.needs.teacher and not getattr(recipe.method, "teacher", ""):
        raise RecipeError(f"method.teacher: {cls.name} distils a teacher; name one (a zoo name or a folder)")
    return recipe


def _build(cls: type, data: Any, prefix: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise RecipeError(f"{prefix or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean {_join(prefix, close[0])!r}?)" if close else ""
        raise RecipeError(f"unknown key {_join(prefix, key)!r}{hint}; known keys: {', '.join(fields)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _convert(hints[key], value, _join(prefix, key))
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"missing key {_join(prefix, missing[0])!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{prefix or 'recipe'}: {e}") from None


#: PyYAML follows YAML 1.1, whose floats need a dot: it reads ``1e-5`` as a string (``1.0e-5`` as
#: a number). Python and YAML 1.2 read it as a number, and so do recipes: ``weight_decay=1e-5``.
_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key)
            except RecipeError:
                pass
        wanted = " or ".join(_describe(arg) for arg in args if arg is not type(None))
        raise RecipeError(f"{key}: expected {wanted}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise RecipeError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{key}: expected a string, got {value!r}")
        return value
    raise RecipeError(f"{key}: unsupported type {hint}")  # a recipe field zoo forgot to handle


def _describe(hint: Any) -> str:
    """What a value of ``hint`` looks like in a recipe, for the error of a union-typed key."""
    if typing.get_origin(hint) is Literal:
        return ", ".join(map(repr, typing.get_args(hint)))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, "a mapping" if dataclasses.is_dataclass(hint) else str(hint))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
