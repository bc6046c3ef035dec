"""The self-supervised methods, one per module, registered by name in :data:`METHODS`."""

from zoo.training.methods import (  # noqa: F401  (register the methods)
    amdim,
    barlow_twins,
    byol,
    cmc,
    colorization,
    cpc_v2,
    crd,
    dcgan,
    deepcluster,
    deepcluster_v2,
    dim,
    dino,
    feature_regression,
    iic,
    inpainting,
    jigsaw,
    mae,
    moco_v2,
    moco_v3,
    npid,
    pcl,
    relative_patch,
    rotnet,
    sela,
    simclr,
    simsiam,
    supcon,
    super_resolution,
    swav,
    vicreg,
)
from zoo.training.methods.base import METHODS, Method, MethodConfig, get_method, register_method

__all__ = ["METHODS", "Method", "MethodConfig", "get_method", "register_method"]
