"""Pretext labels and targets generated from the images themselves (no annotation).

Pure, batched functions on CPU tensors: each takes a batch of images (uint8, or float
normalised with ImageNet statistics as the views are) and, where it draws anything at
random, a ``torch.Generator``, and returns the inputs and targets of one pretext task:

* :mod:`.rotation`: the four rotations of each image and their labels (RotNet);
* :mod:`.jigsaw`: the greedy max-min Hamming permutation set and 3x3 shuffled tiles (Jigsaw);
* :mod:`.patches`: a centre patch and one of its 8 neighbours with gaps, jitter and colour
  dropping (relative patch location);
* :mod:`.color`: sRGB -> CIE Lab, the in-gamut quantised ab bins, soft encoding, the ab prior
  of a training set and the class-rebalancing weights (colorization);
* :mod:`.masks`: MAE's random patch masks and the context encoder's centre / random blocks;
* :mod:`.images`: undoing the views' normalisation, downsampling (super-resolution);
* :mod:`.features`: the spatial feature maps of a torchvision ResNet backbone, per block.
* :mod:`.probe`, :mod:`.grid_knn`: read-outs of a trained encoder (a linear probe per block;
  kNN of whole images against averaged patch-grid features).

A task whose grid or mask does not fit the image size raises :class:`PretextSizeError`
naming both sizes, before any training step.
"""

from zoo.errors import ZooError


class PretextSizeError(ZooError, ValueError):
    """The image size cannot hold the patch grid, tiles or mask a pretext task asks for."""


__all__ = ["PretextSizeError"]
