"""ResNet-50s padded the way the TensorFlow and JAX/Haiku originals pad.

TensorFlow's and Haiku's ``padding="SAME"`` pads a strided layer *asymmetrically*: the
total padding ``max((ceil(n / s) - 1) * s + k - n, 0)`` is split with the extra pixel
after (bottom/right). torchvision pads ``k // 2`` on both sides. For a stride-2 layer on an
even-sized input the two disagree by one pixel of shift, so the same weights compute other
features (BYOL's ResNet-50 on real images: max abs difference 0.42, 6% relative):

* ``resnet50_tfsame``: Haiku's ResNet-50 v1 as BYOL builds it (deepmind-research
  byol/utils/networks.py ``ResNetTorso``; Haiku's ``Conv2D`` pads "SAME" by default): the
  7x7 stride-2 stem, every stride-2 3x3 conv and the 3x3 stride-2 max-pool are "SAME";
* ``resnet50_tfpool``: SimCLR's TF ResNet-50 (google-research/simclr resnet.py): its convs
  use ``conv2d_fixed_padding`` (symmetric, torchvision's), only the stem max-pool is
  ``max_pooling2d(..., padding="SAME")``.

Stride-1 "SAME" equals torchvision's symmetric padding for odd kernels, and 1x1 stride-2
convs never pad, so only the strided k>1 layers are swapped. The swapped layers keep their
parameter names: state dicts are torchvision's, keys and shapes alike. The padding is
computed from the input size at call time, as TensorFlow does; an ONNX export (fixed H, W)
records it as constant ``Pad`` nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.resnet import resnet50
from zoo.registry import register_arch


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one spatial axis: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation=(1, 1)) -> list[int]:
    top, bottom = same_padding(int(x.shape[-2]), kernel[0], stride[0], dilation[0])
    left, right = same_padding(int(x.shape[-1]), kernel[1], stride[1], dilation[1])
    return [left, right, top, bottom]  # F.pad's order: last axis first


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding (parameters and their names unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, _pads(x, self.kernel_size, self.stride, self.dilation))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MaxPool2dSame(nn.MaxPool2d):
    """``nn.MaxPool2d`` with TensorFlow "SAME" padding: padded cells never win the max."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = nn.modules.utils._pair(self.kernel_size), nn.modules.utils._pair(self.stride)
        x = F.pad(x, _pads(x, k, s), value=float("-inf"))
        return F.max_pool2d(x, k, s, 0, self.dilation, self.ceil_mode)


def _same_conv(conv: nn.Conv2d) -> Conv2dSame:
    same = Conv2dSame(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        padding=0,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    same.weight = conv.weight
    if conv.bias is not None:
        same.bias = conv.bias
    return same


def tf_same(model: nn.Module, *, convs: bool = True, pool: bool = True) -> nn.Module:
    """Swap ``model``'s strided layers with k > 1 for their "SAME"-padded versions, in place."""
    for name, module in list(model.named_modules()):
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        attr = name.rsplit(".", 1)[-1]
        if convs and type(module) is nn.Conv2d and max(module.kernel_size) > 1 and max(module.stride) > 1:
            setattr(parent, attr, _same_conv(module))
        elif pool and type(module) is nn.MaxPool2d:
            setattr(parent, attr, MaxPool2dSame(module.kernel_size, module.stride, 0, module.dilation))
    return model


#: Architectures that differ from a torchvision ResNet only in padding: never offered for a
#: checkpoint of another format (the weights would load and compute other features).
TF_PADDED = ("resnet50_tfsame", "resnet50_tfpool")


@register_arch("resnet50_tfsame", embed_dim=2048, source="torchvision")
def resnet50_tfsame(**kwargs) -> nn.Module:
    """Haiku's ResNet-50 v1 (BYOL): "SAME" stem conv, stride-2 3x3 convs and max-pool."""
    return tf_same(resnet50(**kwargs), convs=True, pool=True)


@register_arch("resnet50_tfpool", embed_dim=2048, source="torchvision")
def resnet50_tfpool(**kwargs) -> nn.Module:
    """SimCLR's TF ResNet-50: torchvision's convs, "SAME" stem max-pool."""
    return tf_same(resnet50(**kwargs), convs=False, pool=True)
