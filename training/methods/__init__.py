"""The self-supervised methods, one per module, registered by name in :data:`METHODS`."""

from zoo.training.methods import (  # noqa: F401  (register the methods)
    barlow_twins,
    byol,
    dino,
    moco_v2,
    moco_v3,
    simclr,
    simsiam,
    swav,
    vicreg,
)

# Issue 10: memory bank, clustering, mutual information, supervised contrastive, distillation.
from zoo.training.methods import npid  # noqa: F401, E402

# Issue 11: pretext and generative tasks.
from zoo.training.methods import mae, rotnet  # noqa: F401, E402
from zoo.training.methods.base import METHODS, Method, MethodConfig, get_method, register_method

__all__ = ["METHODS", "Method", "MethodConfig", "get_method", "register_method"]
