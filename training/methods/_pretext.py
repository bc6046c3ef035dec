"""What the pretext-task methods share: one image per sample, and their view declaration."""

from __future__ import annotations

import torch


def single_view(views: list[torch.Tensor], name: str) -> torch.Tensor:
    """The image a pretext task is built from: the first view (the others, if the trainer
    drew any, are not used)."""
    if not views:
        raise ValueError(f"{name} takes at least 1 view, got none")
    return views[0]


def one_view_spec():
    """``ViewSpec(count=1)`` where the trainer supports view declarations: pretext tasks make
    their inputs from one view of each image, so drawing a second would be wasted work."""
    try:
        from zoo.training.augment import ViewSpec
    except ImportError:  # a trainer without view declarations draws the recipe's views
        return None
    return ViewSpec(count=1)
