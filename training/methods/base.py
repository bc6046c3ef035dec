"""What every method is: a plain ``nn.Module`` over a backbone, heads and a loss.

The trainer (:mod:`zoo.training.loop`) only ever calls the methods below, so a method
knows nothing about optimisers, logging, checkpoints or evaluation:

* ``forward(views)`` = :meth:`Method.training_step` -> ``{"loss": ..., other scalars}``;
* :meth:`Method.param_groups` -> parameter groups (biases and norm layers flagged);
* :meth:`Method.schedule` before the step (momentum, temperatures follow training
  progress), :meth:`Method.before_optimizer_step` (gradient surgery such as DINO's frozen
  last layer) and :meth:`Method.after_optimizer_step` (momentum encoders, prototype
  normalisation): the explicit hooks.

Each method has a frozen dataclass ``Config`` whose fields are its hyper-parameters (and
the keys of the ``method:`` section of a recipe), with the paper's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

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


@dataclass(frozen=True)
class MethodConfig:
    """Hyper-parameters shared by every method's config (none yet; subclasses add theirs)."""


class Method(nn.Module):
    """Base class: holds ``backbone`` (what gets exported) and the hook defaults."""

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: Whether the method needs multi-crop views (2 global + N local) rather than 2 views.
    multicrop: ClassVar[bool] = False

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MethodConfig) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.config = config

    def forward(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        # DDP wraps forward(), so the step must be the forward for gradients to be synced.
        return self.training_step(views)

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Views of one batch (each (N, 3, S, S)) -> ``{"loss": scalar, ...}``."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters in groups: ``{"name", "params", "exclude_decay"}`` with
        biases and norm parameters (``ndim <= 1``) excluded from weight decay and LARS
        adaptation, as in SimCLR/BYOL; subclasses add flags such as ``fixed_lr``."""
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        return [
            {"name": "weights", "params": decay, "exclude_decay": False},
            {"name": "biases_and_norms", "params": no_decay, "exclude_decay": True},
        ]

    def schedule(self, step: int, total_steps: int, epoch: int) -> None:
        """Set progress-dependent values (EMA momentum, temperatures) before a step."""

    def before_optimizer_step(self, epoch: int) -> None:
        """Adjust gradients after ``backward`` (e.g. freeze a layer during warm-up)."""

    def after_optimizer_step(self) -> None:
        """Update momentum encoders and other non-gradient state after the step."""


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
