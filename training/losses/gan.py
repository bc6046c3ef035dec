"""The GAN losses (Goodfellow et al. 2014), as DCGAN (Radford et al. 2016) trains them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.precision import full_precision


class GANLoss(nn.Module):
    """Binary cross-entropy on discriminator logits.

    ``discriminator(real_logits, fake_logits)`` = ``-mean log D(x) - mean log(1 - D(G(z)))``;
    ``generator(fake_logits)`` = ``-mean log D(G(z))``, the non-saturating generator loss the
    GAN paper recommends and DCGAN uses.

    ``real_label`` below 1 is one-sided label smoothing (Salimans et al. 2016, "Improved
    techniques for training GANs", section 3.4): the discriminator's target for real images
    becomes e.g. 0.9, so it gains nothing from ever more confident logits on them; generated
    images keep target 0, and the generator's target stays 1.
    """

    def __init__(self, real_label: float = 1.0) -> None:
        super().__init__()
        if not 0.5 < real_label <= 1.0:
            raise ValueError(f"real_label must be in (0.5, 1], got {real_label}")
        self.real_label = real_label

    @full_precision
    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, self.real_label))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake

    @full_precision
    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return self.discriminator(real_logits, fake_logits)
