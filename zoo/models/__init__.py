"""Backbone architectures; importing this package registers them."""

from zoo.models import (
    dcgan,
    lab_split,
    middle_layer,
    patch_grid,
    resnet,
    students,
    tf_padding,
    timm_archs,
    whitened,
)

#: Architectures with a family's keys and shapes but other features (TF padding, a missing
#: stem ReLU, a patch-grid read-out): offered only by the formats whose originals compute that
#: way, never picked for a checkpoint by its shapes alone.
FORMAT_SPECIFIC = (*tf_padding.TF_PADDED, "resnet18_cifar_lightly", *patch_grid.PATCH_GRID_ARCHS.values())

__all__ = [
    "FORMAT_SPECIFIC",
    "dcgan",
    "lab_split",
    "middle_layer",
    "patch_grid",
    "resnet",
    "students",
    "tf_padding",
    "timm_archs",
    "whitened",
]
