"""CMC's encoder as a zoo architecture: one network on the L channel and one on the ab
channels of CIELAB, their pooled features concatenated.

CMC (Tian, Krishnan & Isola 2020) trains the two halves against each other and evaluates
"the features from both views" concatenated; that concatenation is what zoo ships. The
module takes what every zoo encoder takes, RGB normalised with the entry's mean/std (zoo's
trainer always normalises with ImageNet's, the default here), un-normalises it, converts it
to CMC's normalised Lab with :func:`rgb_to_lab` (the one conversion the training views also
go through; plain torch ops, so the graph exports to ONNX) and runs the
halves. State-dict keys are ``l_net.*`` and ``ab_net.*``, each the base architecture's keys.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from zoo.models.resnet import resnet18_cifar_half, resnet18_cifar_quarter
from zoo.registry import IMAGENET_MEAN, IMAGENET_STD, register_arch

# The one RGB -> Lab conversion: the training views (zoo.training.augment, ViewSpec(colour="lab"))
# import it from here, so the exported encoder computes exactly what training saw.

#: CMC's Lab normalisation (Tian et al. 2020, their code): each channel's range mapped to [-1, 1].
LAB_MEAN = (50.0, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2)
LAB_STD = (50.0, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2)


#: sRGB (linear) -> XYZ, D65 (IEC 61966-2-1), as skimage's ``rgb2lab``.
SRGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
#: The white point as the matrix's row sums (skimage rounds it to 0.95047, 1.08883): sRGB white,
#: and so every grey, then has a = b = 0 exactly, which colorization's grey inputs rely on.
D65_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (..., 3, H, W) -> CIELAB (D65 white), L in [0, 100], a and b about
    [-110, 100]; the formulas of skimage's ``rgb2lab`` (CMC's preprocessing). The one
    conversion in zoo: CMC's views and encoder and the colorization targets all use it."""
    linear = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    m = torch.tensor(SRGB_TO_XYZ, dtype=x.dtype, device=x.device)  # constants follow x (GPU runs)
    xyz = torch.einsum("ij,...jhw->...ihw", m, linear)
    t = xyz / torch.tensor(D65_WHITE, dtype=x.dtype, device=x.device).view(3, 1, 1)
    f = torch.where(t > 0.008856, t.clamp(min=1e-12) ** (1 / 3), 7.787 * t + 16 / 116)
    fx, fy, fz = f.unbind(-3)
    lum = torch.where(t[..., 1, :, :] > 0.008856, 116 * fy - 16, 903.3 * t[..., 1, :, :])
    return torch.stack([lum, 500 * (fx - fy), 200 * (fy - fz)], -3)


#: Base architecture -> its registered Lab-split architecture: a CMC run trained on the base
#: (recipes before these were registered) exports as the split one, whose keys are the same.
LAB_SPLIT_ARCHS: dict[str, str] = {}


def with_input_channels(module: nn.Module, channels: int) -> nn.Module:
    """``module`` with its first 3-channel convolution replaced by a fresh one taking
    ``channels`` inputs (same kernel, stride, padding, bias)."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3:
            conv = nn.Conv2d(
                channels,
                m.out_channels,
                m.kernel_size,
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                groups=1,
                bias=m.bias is not None,
            )
            parent_name, _, attr = name.rpartition(".")
            setattr(module.get_submodule(parent_name) if parent_name else module, attr, conv)
            return module
    raise ValueError(f"{type(module).__name__} has no 3-channel input convolution to adapt")


class LabSplitEncoder(nn.Module):
    """``l_net`` (1 input channel) and ``ab_net`` (2), built from one backbone; (N, 3, S, S)
    RGB normalised with ``mean``/``std`` -> (N, 2 D) concatenated features."""

    def __init__(
        self,
        backbone: nn.Module,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.l_net = with_input_channels(copy.deepcopy(backbone), 1)
        self.ab_net = with_input_channels(copy.deepcopy(backbone), 2)
        self.mean, self.std = tuple(mean), tuple(std)
        # Not persistent: the weights files (and checkpoints of earlier runs) hold only the halves.
        self.register_buffer("rgb_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("lab_mean", torch.tensor(LAB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("lab_std", torch.tensor(LAB_STD).view(1, 3, 1, 1), persistent=False)

    def to_lab(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB -> normalised Lab, as the training views (in fp32)."""
        rgb = (x.float() * self.rgb_std + self.rgb_mean).clamp(0, 1)
        return ((rgb_to_lab(rgb) - self.lab_mean) / self.lab_std).to(x.dtype)

    def halves(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised Lab (N, 3, S, S) -> (L features, ab features)."""
        return self.l_net(lab[:, :1]), self.ab_net(lab[:, 1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The cube roots and powers of the conversion lose too much in bf16: fp32 under autocast.
        with torch.autocast(x.device.type, enabled=False):
            lab = self.to_lab(x)
        return torch.cat(self.halves(lab), 1)


def _register(name: str, base: str, builder, half_dim: int, doc: str) -> None:
    @register_arch(name, embed_dim=2 * half_dim, source="torchvision", default_input_size=32)
    def build(**kwargs) -> nn.Module:
        return LabSplitEncoder(builder(**kwargs))

    build.__doc__ = doc
    LAB_SPLIT_ARCHS[base] = name


_register(
    "cmc_resnet18_cifar_quarter",
    "resnet18_cifar_quarter",
    resnet18_cifar_quarter,
    128,
    "CMC's two quarter-width CIFAR ResNet-18s (L and ab), 2 x 128 = 256-d features, 1.4 M parameters.",
)
_register(
    "cmc_resnet18_cifar_half",
    "resnet18_cifar_half",
    resnet18_cifar_half,
    256,
    "CMC's two half-width CIFAR ResNet-18s (L and ab), 2 x 256 = 512-d features, 5.6 M parameters.",
)


def lab_split_arch(arch: str) -> str:
    """The registered architecture holding a CMC encoder built on ``arch`` (``arch`` itself
    when it already is one)."""
    if arch in LAB_SPLIT_ARCHS.values():
        return arch
    if arch not in LAB_SPLIT_ARCHS:
        raise ValueError(
            f"no Lab-split (CMC) architecture is registered for {arch!r}; registered:"
            f" {', '.join(f'{b} -> {s}' for b, s in LAB_SPLIT_ARCHS.items())}"
        )
    return LAB_SPLIT_ARCHS[arch]
