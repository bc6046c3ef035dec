"""``python -m zoo.training RECIPE [key=value ...] [--resume]``, also under torchrun:

    torchrun --nproc-per-node 2 -m zoo.training simclr_r18q_cifar10 data.path=../shared/data/cifar10

The same as ``zoo train``; see :mod:`zoo.training.cli`.
"""

import sys

from zoo.training.cli import main

sys.exit(main())
