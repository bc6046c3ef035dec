"""The narrow CIFAR ResNet-18s that fit a CPU training budget."""

from __future__ import annotations

import pytest
import torch

import zoo


@pytest.mark.parametrize("arch,width", [("resnet18_cifar_half", 32), ("resnet18_cifar_quarter", 16)])
def test_narrow_resnets_keep_torchvision_keys_with_scaled_widths(arch: str, width: int) -> None:
    narrow, full = zoo.create_model(arch).backbone, zoo.create_model("resnet18_cifar").backbone
    assert narrow.state_dict().keys() == full.state_dict().keys()
    assert narrow.conv1.out_channels == width and narrow.conv1.kernel_size == (3, 3)
    assert narrow.layer4[1].conv2.out_channels == 8 * width
    assert zoo.create_model(arch).embed_dim == 8 * width
    # The same network code (torchvision's BasicBlock), only narrower: ~ (width / 64)^2 params.
    ratio = sum(p.numel() for p in narrow.parameters()) / sum(p.numel() for p in full.parameters())
    assert ratio == pytest.approx((width / 64) ** 2, rel=0.05)
    with torch.inference_mode():
        assert narrow.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 8 * width)
