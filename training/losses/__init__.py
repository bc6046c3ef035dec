"""One loss per module, each an ``nn.Module`` checked against a direct formula in the tests."""

from zoo.training.losses.barlow_twins import BarlowTwinsLoss
from zoo.training.losses.byol import BYOLLoss
from zoo.training.losses.colorization import ColorizationLoss
from zoo.training.losses.dino import DINOLoss
from zoo.training.losses.gan import GANLoss
from zoo.training.losses.info_nce import InfoNCELoss
from zoo.training.losses.mae import MAELoss
from zoo.training.losses.ntxent import NTXentLoss
from zoo.training.losses.pretext_classification import PretextClassificationLoss
from zoo.training.losses.reconstruction import MaskedL2Loss
from zoo.training.losses.simsiam import SimSiamLoss
from zoo.training.losses.swav import SwAVLoss
from zoo.training.losses.vicreg import VICRegLoss

__all__ = [
    "BYOLLoss",
    "BarlowTwinsLoss",
    "ColorizationLoss",
    "DINOLoss",
    "GANLoss",
    "InfoNCELoss",
    "MAELoss",
    "MaskedL2Loss",
    "NTXentLoss",
    "PretextClassificationLoss",
    "SimSiamLoss",
    "SwAVLoss",
    "VICRegLoss",
]
