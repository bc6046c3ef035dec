"""Train/eval mode for the duration of a call, each submodule's own flag restored after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; restores each submodule's own flag, not just the top
    module's: a model can be partly frozen (BatchNorm kept in eval during fine-tuning), and
    ``module.train()`` afterwards would wake those layers up."""
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in flags:
            m.training = training
