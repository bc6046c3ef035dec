"""What every method is: a plain ``nn.Module`` over a backbone, heads and a loss.

The trainer (:mod:`zoo.training.loop`) only ever calls the methods below, so a method
knows nothing about optimisers, logging, checkpoints or evaluation:

* ``forward(views)`` = :meth:`Method.training_step` -> ``{"loss": ..., other scalars}``,
  and :meth:`Method.logged` -> the schedules' current values, logged beside them;
* :meth:`Method.param_groups` -> parameter groups (biases and norm layers flagged);
* :meth:`Method.schedule` before the step (momentum, temperatures follow training
  progress), :meth:`Method.before_optimizer_step` (gradient surgery such as DINO's frozen
  last layer) and :meth:`Method.after_optimizer_step` (momentum encoders, prototype
  normalisation): the explicit hooks.

What a method needs beyond its views it *declares*, and the trainer provides it, so no
method is a special case in the loop (see "How a method declares what it needs" in
training/README.md):

* ``needs = Needs(indices=True, labels=True, epoch_pass=True, teacher=True)``: the
  dataset index / class label of every sample as keyword arguments of ``training_step``,
  an epoch pass over the whole training split (:meth:`Method.on_epoch_start`), a frozen
  teacher encoder (:meth:`Method.set_teacher`);
* :meth:`Method.view_spec` -> :class:`zoo.training.augment.ViewSpec`: how many of the
  recipe's views, in which colour space, as a patch grid;
* :meth:`Method.setup_data`: sizes known once the split is loaded (memory banks, one
  pseudo-label per image), and the checks that fail before training starts.

State a method keeps across steps (memory banks, pseudo-labels, centroids) lives in
registered buffers, so checkpoints carry it and ``--resume`` is exact.

Each method has a frozen dataclass ``Config`` whose fields are its hyper-parameters (and
the keys of the ``method:`` section of a recipe), with the paper's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from zoo.training.momentum import cosine_momentum, momentum_copy, update_momentum

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.training.augment import ViewSpec

METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method under ``cls.name``; duplicates are errors."""
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}") from None


class MethodInputError(ZooError, ValueError):
    """A method asked for data the run cannot give (labels of an unlabelled folder, a
    teacher that does not load, more clusters than images); raised before training."""


@dataclass(frozen=True)
class Needs:
    """What a method asks the trainer for, beyond the views of each batch."""

    #: ``training_step(views, indices=...)``: (N,) int64 position of each sample in the
    #: training split, the same on every epoch (memory banks, per-sample pseudo-labels).
    indices: bool = False
    #: ``training_step(views, labels=...)``: (N,) int64 class labels. Only for supervised
    #: references (SupCon); the split must have at least two class folders.
    labels: bool = False
    #: Before each epoch's first step (when :meth:`Method.epoch_pass_due`), the trainer embeds
    #: the whole training split with :meth:`Method.epoch_encoder` (inference mode, centre
    #: crop, batched: the kNN monitor's embedding) and calls :meth:`Method.on_epoch_start`.
    epoch_pass: bool = False
    #: A frozen teacher encoder, named by the config's ``teacher`` field (any zoo name or
    #: folder); the trainer loads it and calls :meth:`Method.set_teacher`.
    teacher: bool = False


@dataclass(frozen=True)
class DataInfo:
    """The training split as a method sees it in :meth:`Method.setup_data`."""

    num_samples: int
    num_classes: int
    #: Seed of the run: epoch passes draw from generators seeded by (seed, epoch), so a
    #: resumed run repeats them exactly.
    seed: int = 0


@dataclass(frozen=True)
class TaskEvaluation:
    """A number of a method's own task measured on a finished run rather than logged while
    training (IIC's clustering accuracy on the test split): shipping records it as the row
    ``task-<protocol>`` of the dataset's ``split`` (None: its test split)."""

    protocol: str
    split: str | None
    value: float
    how: str
    #: Reproduces the number from the run folder that the recipe's training command writes
    #: (``runs/<recipe name>``, the default run.out_dir).
    command: str


@dataclass(frozen=True)
class MethodConfig:
    """Hyper-parameters shared by every method's config (none yet; subclasses add theirs)."""


class Method(nn.Module):
    """Base class: holds ``backbone`` (what gets exported) and the hook defaults."""

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: Whether the method needs multi-crop views (2 global + N local) rather than 2 views.
    multicrop: ClassVar[bool] = False
    #: What the trainer provides beyond the views (see :class:`Needs`).
    needs: ClassVar[Needs] = Needs()
    #: Trained with human labels: a supervised reference point, never listed as
    #: self-supervised (SupCon).
    supervised: ClassVar[bool] = False
    #: How well the method does its own task, from what training_step returns (logged in
    #: metrics.csv): column -> what it measures. Pretext methods name their task accuracy or
    #: reconstruction error; shipping records the last epoch's mean beside the downstream numbers.
    task_metrics: ClassVar[dict[str, str]] = {}
    #: The attribute holding the backbone's momentum (EMA) copy, for methods that keep one
    #: (MoCo's key encoder, BYOL's target, DINO's teacher): what ``run.export_backbone:
    #: momentum`` evaluates and exports in place of the backbone. Made, with the copies of the
    #: heads, by :meth:`keep_momentum_copies`.
    momentum_backbone_name: ClassVar[str] = ""
    #: Whether keys are encoded in a batch shuffled across processes (MoCo's shuffling BN,
    #: :func:`zoo.training.distributed.batch_shuffle`); SyncBatchNorm would pool the statistics
    #: the shuffle keeps apart, so the trainer refuses the two together.
    shuffles_keys: bool = False
    #: (online attribute, copy attribute) of every momentum copy; empty: none kept.
    momentum_pairs: tuple[tuple[str, str], ...] = ()
    #: The copies' current momentum m (``copy = m copy + (1 - m) online`` after each step).
    momentum: float = 0.0

    @classmethod
    def evaluate_task(cls, run_dir: Path, run_name: str, data: str) -> list[TaskEvaluation]:
        """The method's own task measured on the finished run in ``run_dir`` (trained as
        ``run_name`` on ``data``); none by default."""
        return []

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MethodConfig) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.config = config

    def forward(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # DDP wraps forward(), so the step must be the forward for gradients to be synced.
        return self.training_step(views, **batch)

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of one batch (each (N, 3, S, S)) -> ``{"loss": scalar, ...}``; ``batch``
        holds what :attr:`needs` asked for (``indices``, ``labels``)."""
        raise NotImplementedError

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        """How the recipe's views are turned into this method's inputs (default: as drawn)."""
        from zoo.training.augment import ViewSpec

        return ViewSpec()

    def setup_data(self, info: DataInfo) -> None:
        """Called once the training split is loaded, before the checkpoint is restored and
        before training: allocate per-sample buffers, and raise :class:`MethodInputError`
        for data the method cannot use."""

    def keep_momentum_copies(self, heads: dict[str, str]) -> None:
        """Keep momentum (EMA) copies of the backbone (as :attr:`momentum_backbone_name`) and
        of the ``heads`` (online attribute -> copy attribute): frozen deep copies, which the
        base :meth:`after_optimizer_step` moves towards the online modules with
        :attr:`momentum`, which the base :meth:`schedule` raises along
        :meth:`momentum_range` (BYOL's cosine). One mechanism for MoCo's key encoder, BYOL's
        target, DINO's teacher and the momentum memories of SimCLR v2 and CMC."""
        if not self.momentum_backbone_name:
            raise TypeError(f"{type(self).__name__} names no momentum_backbone_name")
        self.momentum_pairs = (("backbone", self.momentum_backbone_name), *heads.items())
        for online, copy in self.momentum_pairs:
            setattr(self, copy, momentum_copy(getattr(self, online)))
        self.momentum = self.momentum_range()[0]

    def momentum_range(self) -> tuple[float, float]:
        """The copies' momentum at the first and the last step (cosine between): the config's
        ``base_momentum`` and ``final_momentum``."""
        return self.config.base_momentum, self.config.final_momentum  # type: ignore[attr-defined]

    def momentum_backbone(self) -> nn.Module | None:
        """The backbone's momentum copy, or None where the method (or this configuration of
        it: SimCLR without a queue) keeps none."""
        return getattr(self, self.momentum_backbone_name) if self.momentum_pairs else None

    def epoch_pass_due(self, epoch: int) -> bool:
        """Whether the epoch pass runs before ``epoch`` (``needs.epoch_pass`` methods)."""
        return True

    def epoch_encoder(self) -> nn.Module:
        """The module the epoch pass embeds the training split with (default: the backbone)."""
        return self.backbone

    def on_epoch_start(self, epoch: int, features: torch.Tensor) -> Iterable[nn.Parameter] | None:
        """The epoch pass: ``features`` (num_samples, D) float32 of every training image, in
        dataset order. Return the parameters it re-initialised (their optimiser state is
        dropped, as after DeepCluster's new classifier)."""
        return None

    def set_teacher(self, teacher: nn.Module, embed_dim: int) -> None:
        """Receive the frozen teacher (``needs.teacher`` methods): normalised images -> (N, D)."""
        raise NotImplementedError(f"{self.name} does not take a teacher")

    def param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters in groups: ``{"name", "params", "exclude_decay"}`` with
        biases and norm parameters (``ndim <= 1``) excluded from weight decay and LARS
        adaptation, as in SimCLR/BYOL; subclasses add flags such as ``fixed_lr`` (no schedule)
        or ``lr_scale`` (a multiple of the scheduled rate)."""
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        return [
            {"name": "weights", "params": decay, "exclude_decay": False},
            {"name": "biases_and_norms", "params": no_decay, "exclude_decay": True},
        ]

    def schedule(self, step: int, total_steps: int, epoch: int) -> None:
        """Set progress-dependent values (EMA momentum, temperatures) before a step; an
        override calls ``super().schedule(...)`` to keep the momentum schedule."""
        if self.momentum_pairs:
            self.momentum = cosine_momentum(step, total_steps, *self.momentum_range())

    def logged(self) -> dict[str, float]:
        """Values the trainer logs beside the step's outputs (a schedule's current value).

        Read after the step, outside ``forward``. Inside it, under ``torch.compile``, a Python
        number is a constant of the graph, so one that changes every step (a momentum, a
        temperature) compiled the step again each time until the recompile limit (8), after
        which the step ran eager for the rest of the run. A value the step itself computes
        with lives in a non-persistent buffer for the same reason (DINO's teacher
        temperature, DCGAN's instance noise)."""
        return {}

    def before_optimizer_step(self, epoch: int) -> None:
        """Adjust gradients after ``backward`` (e.g. freeze a layer during warm-up)."""

    def after_optimizer_step(self) -> None:
        """Update momentum copies (and, in overrides, other non-gradient state) after the
        step; an override calls ``super().after_optimizer_step()``."""
        for online, copy in self.momentum_pairs:
            update_momentum(getattr(self, online), getattr(self, copy), self.momentum)


def split_params(modules: list[nn.Module], name: str, **flags: Any) -> list[dict[str, Any]]:
    """Parameter groups of ``modules`` split as :meth:`Method.param_groups`, with ``flags``."""
    decay, no_decay = [], []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"name": name, "params": decay, "exclude_decay": False, **flags},
        {"name": f"{name}_biases_and_norms", "params": no_decay, "exclude_decay": True, **flags},
    ]


def forward_crops(backbone: nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """Backbone features of each view, running views of the same size as one batch (fewer,
    larger convolutions are faster, and the same size is all a batch needs)."""
    out: list[torch.Tensor | None] = [None] * len(views)
    i = 0
    while i < len(views):
        j = i
        while j < len(views) and views[j].shape[-2:] == views[i].shape[-2:]:
            j += 1
        feats = backbone(torch.cat(views[i:j]))
        for k, chunk in enumerate(feats.chunk(j - i)):
            out[i + k] = chunk
        i = j
    return out  # type: ignore[return-value]
