"""DCGAN discriminator features (Radford, Metz & Chintala 2016), https://arxiv.org/abs/1511.06434.

A generator maps noise to images and a discriminator tells them from real ones; to win, the
discriminator has to model what real images look like, and the paper showed its features
make a good image representation (section 5.1: CIFAR-10 classification from the
discriminator's features). Here the discriminator's trunk *is* zoo's backbone (its features,
or the part of them the backbone names in ``logit_features``, feed a linear real/fake logit),
and it is what ships; the generator is DCGAN's
(:class:`DCGANGenerator`: a 4x4 projection of 100-d noise and stride-2 transposed
convolutions with BN + ReLU, tanh output; N(0, 0.02) initialisation).

Both players train from one loss per step (zoo's trainer has one optimiser): the
discriminator's term uses the generated images detached, and the generator's
(non-saturating, ``-log D(G(z))``) goes through the discriminator with its parameters
detached (:func:`frozen_call`), so each player's parameters get exactly the gradient of its
own loss, updated simultaneously (the paper alternates one D step and one G step).
Real and generated images go through the discriminator as separate batches, as in DCGAN.

Two recipes: ``dcgan_disc_cifar10`` keeps the paper's all-convolutional discriminator
(:mod:`zoo.models.dcgan`, whose features are the paper's: every layer max-pooled to 4x4 and
concatenated; its logit reads the last layer's map only, as the paper's last convolution);
``dcgan_r18q_cifar10`` puts the leaderboard's quarter-width CIFAR ResNet in its place, with a
linear logit on its pooled output (it needed the stabilisers below and still stayed below
random init: training/README). Adam lr 2e-4, beta1 0.5 (the paper's).

Logged in metrics.csv: ``d_loss``, ``g_loss``, ``d_real_acc`` and ``d_fake_acc`` (% of real /
generated images the discriminator classifies correctly).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from zoo.training.losses import GANLoss
from zoo.training.methods._pretext import (
    DCGANGenerator,
    frozen_call,
    memory_format_of,
    one_view_spec,
    single_view,
)
from zoo.training.methods.base import Method, MethodConfig, register_method, split_params
from zoo.training.pretext import PretextSizeError
from zoo.training.pretext.images import IMAGENET_STD, normalize


@dataclass(frozen=True)
class DCGANConfig(MethodConfig):
    #: Side of the generated images; the views must have this size.
    image_size: int = 32
    latent_dim: int = 100
    generator_width: int = 64
    #: Real and generated images through the discriminator as one batch (DCGAN: separate
    #: batches), so a BatchNorm trunk cannot tell them apart by each batch's statistics. It
    #: did not stop the ResNet discriminator from winning at once at 32 px (training/README).
    mixed_batch: bool = False
    #: Stabilisers against a discriminator that wins at once (training/README): the
    #: discriminator's target for real images (one-sided label smoothing, Salimans et al.
    #: 2016; 1 = none), ...
    real_label: float = 1.0
    #: ... Gaussian instance noise of this standard deviation (in [0, 1] pixel units) on every
    #: image the discriminator sees, real and generated, decaying linearly to 0 over training
    #: (Sonderby et al. 2017, Arjovsky & Bottou 2017: it makes the two distributions overlap,
    #: so the discriminator cannot separate them perfectly and its gradient stays useful), ...
    instance_noise: float = 0.0
    #: ... and each player's learning rate as a multiple of the recipe's (its schedule included).
    discriminator_lr_scale: float = 1.0
    generator_lr_scale: float = 1.0


@register_method
class DCGAN(Method):
    name = "dcgan"
    Config = DCGANConfig
    task_metrics: ClassVar[dict[str, str]] = {
        "d_real_acc": "% of real images the discriminator calls real",
        "d_fake_acc": "% of generated images the discriminator calls fake",
    }

    def __init__(self, backbone: nn.Module, embed_dim: int, config: DCGANConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.generator = DCGANGenerator(config.image_size, config.latent_dim, config.generator_width)
        # A backbone may name the part of its features the real/fake logit reads (DCGAN's own
        # discriminator: its last layer's map, zoo.models.dcgan); otherwise all of them.
        self.logit_features: slice = getattr(backbone, "logit_features", slice(0, embed_dim))
        self.logit = nn.Linear(len(range(embed_dim)[self.logit_features]), 1)
        self.gan = GANLoss(real_label=config.real_label)
        # A buffer the compiled step reads as an input (Method.logged says why not a float).
        self.register_buffer("noise_level", torch.tensor(float(config.instance_noise)), persistent=False)

    @property
    def noise_std(self) -> float:
        """The current instance noise (pixel units): ``instance_noise`` decayed to 0 linearly."""
        return float(self.noise_level)

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec(functools.partial(_check_size, config))

    def param_groups(self) -> list[dict[str, Any]]:
        c = self.config
        return [
            *split_params([self.backbone, self.logit], "discriminator", lr_scale=c.discriminator_lr_scale),
            *split_params([self.generator], "generator", lr_scale=c.generator_lr_scale),
        ]

    def schedule(self, step: int, total_steps: int, epoch: int) -> None:
        self.noise_level.fill_(self.config.instance_noise * max(0.0, 1.0 - step / max(total_steps, 1)))

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (normalised images) with the current instance noise, drawn in pixel units."""
        if not self.training or self.config.instance_noise <= 0:
            return x
        std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        # Divided in float32, then rounded once to the views' dtype, as the float it replaced.
        return x + torch.randn_like(x) * (self.noise_level / std.float()).to(x.dtype)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.backbone(x)[:, self.logit_features])

    def generate(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """``n`` generated images, normalised like the views (ImageNet statistics)."""
        z = torch.randn(n, self.config.latent_dim).to(device)
        return normalize((self.generator(z) + 1) / 2)

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        real = single_view(views, "DCGAN")
        _check_size(self.config, real.shape[-1])
        fake = self.generate(len(real), real.device).contiguous(memory_format=memory_format_of(real))
        real, fake = self.noisy(real), self.noisy(fake)
        n = len(real)
        if self.config.mixed_batch:
            real_logits, fake_logits = self.discriminate(torch.cat([real, fake.detach()])).split(n)
        else:
            real_logits = self.discriminate(real)
            fake_logits = self.discriminate(fake.detach())
        d_loss = self.gan.discriminator(real_logits, fake_logits)
        # The generator's term through the discriminator frozen: gradients reach G only (in
        # the same batch composition the discriminator saw).
        seen = torch.cat([real, fake]) if self.config.mixed_batch else fake
        frozen_features = frozen_call(self.backbone, seen)[-n:, self.logit_features]
        frozen_logits = F.linear(frozen_features, self.logit.weight.detach(), self.logit.bias.detach())
        g_loss = self.gan.generator(frozen_logits)
        with torch.no_grad():
            real_acc = (real_logits > 0).float().mean() * 100
            fake_acc = (fake_logits < 0).float().mean() * 100
        return {
            "loss": d_loss + g_loss,
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real_acc": real_acc,
            "d_fake_acc": fake_acc,
        }

    def logged(self) -> dict[str, float]:
        return {"instance_noise": self.noise_std}


def _check_size(config: DCGANConfig, size: int) -> None:
    if size != config.image_size:
        raise PretextSizeError(
            f"DCGAN: the generator makes {config.image_size} px images but the views are {size} px;"
            " set augment.size and method.image_size to the same"
        )
