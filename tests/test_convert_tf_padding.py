"""TensorFlow/Haiku "SAME" padding: BYOL's and SimCLR's ResNet-50s computed exactly.

The reference is written out by hand: torchvision's ResNet-50 with each layer that TF pads
asymmetrically run as an explicit ``F.pad`` with the pads TensorFlow's formula gives for a
224 px input (stem conv: 2 before / 3 after; every later stride-2 layer on an even map:
0 / 1), followed by the unpadded conv or max-pool. zoo's TF-padded architectures must give
its features on real images to ~1e-6 relative, not merely close ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from test_convert import (
    TF_PADDED,
    byol_pickle,
    pad_like_tensorflow,
    reference_weights,
    simclr_variables,
    tf_bundle,
)

import zoo
from zoo.convert import convert_checkpoint
from zoo.images import open_image, preprocess, to_tensor
from zoo.models.tf_padding import Conv2dSame, MaxPool2dSame, same_padding
from zoo.registry import Preprocess

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette" / "val"


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Four real Imagenette validation images, 224 px, ImageNet normalisation."""
    files = sorted(p for d in sorted(DATA.iterdir())[:2] for p in sorted(d.iterdir())[:2])
    cfg = Preprocess(input_size=224, resize_size=256, interpolation="bicubic")
    return torch.stack([preprocess(to_tensor(open_image(f)), cfg) for f in files])


def padded_reference(x: torch.Tensor, arch: str, weights: str = "resnet50") -> torch.Tensor:
    """torchvision's ResNet-50 with TF's pads written out (test_convert.pad_like_tensorflow)."""
    model = torchvision.models.resnet50()
    model.fc = torch.nn.Identity()
    model.load_state_dict(reference_weights(weights))
    pad_like_tensorflow(model, convs=TF_PADDED[arch])
    with torch.inference_mode():
        return model.eval()(x)


def zoo_features(arch: str, x: torch.Tensor, state_dict: dict | None = None) -> torch.Tensor:
    backbone = zoo.create_model(arch).backbone
    backbone.load_state_dict(state_dict or reference_weights("resnet50"), strict=True)
    with torch.inference_mode():
        return backbone.eval()(x)


def assert_exact(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal to float32 rounding: 1e-5 of the features' scale (random weights give large ones)."""
    scale = want.abs().max().item()
    err = (got - want).abs().max().item()
    assert err <= 1e-5 * scale, f"max abs diff {err} for features up to {scale}"


def relative_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_same_padding_is_tensorflows() -> None:
    # (input, kernel, stride) -> (before, after), from TF's formula; the odd pixel goes after.
    cases = {
        (224, 7, 2): (2, 3),
        (225, 7, 2): (3, 3),
        (112, 3, 2): (0, 1),
        (113, 3, 2): (1, 1),
        (56, 1, 2): (0, 0),
        (7, 3, 1): (1, 1),
        (32, 3, 1): (1, 1),
    }
    for (n, k, s), pads in cases.items():
        assert same_padding(n, k, s) == pads, (n, k, s)


def test_byol_arch_equals_the_explicitly_padded_network(images: torch.Tensor) -> None:
    want = padded_reference(images, "resnet50_tfsame")
    assert_exact(zoo_features("resnet50_tfsame", images), want)
    # Plain torchvision padding computes something else on the same weights.
    assert relative_diff(zoo_features("resnet50", images), want) > 0.01


def test_simclr_arch_equals_the_explicitly_padded_network(images: torch.Tensor) -> None:
    want = padded_reference(images, "resnet50_tfpool")
    assert_exact(zoo_features("resnet50_tfpool", images), want)
    assert relative_diff(zoo_features("resnet50", images), want) > 1e-3


def test_odd_sizes_pad_symmetrically_like_torchvision(images: torch.Tensor) -> None:
    # 225 -> 113 -> 57 -> 29 -> 15 -> 8: every "SAME" pad is symmetric, as torchvision's.
    x = F.interpolate(images[:2], size=(225, 225), mode="bilinear", align_corners=False)
    assert_exact(zoo_features("resnet50_tfsame", x), zoo_features("resnet50", x))


def test_byol_and_simclr_convert_onto_the_padded_archs(tmp_path: Path, images: torch.Tensor) -> None:
    (tmp_path / "pretrain_res50x1.pkl").write_bytes(byol_pickle())
    result = convert_checkpoint(tmp_path / "pretrain_res50x1.pkl")
    assert (result.format, result.arch) == ("byol-jax", "resnet50_tfsame")
    sd = {k: v for k, v in result.state_dict.items() if not k.endswith("num_batches_tracked")}
    assert_exact(
        zoo_features("resnet50_tfsame", images, sd | _counters("resnet50_tfsame")),
        padded_reference(images, "resnet50_tfsame", "resnet50_tfsame"),
    )

    index, data = tf_bundle(simclr_variables(2))
    (tmp_path / "model.ckpt-1.index").write_bytes(index)
    (tmp_path / "model.ckpt-1.data-00000-of-00001").write_bytes(data)
    result = convert_checkpoint(tmp_path / "model.ckpt-1.index")
    assert (result.format, result.arch) == ("simclr-tf", "resnet50_tfpool")
    assert_exact(
        zoo_features("resnet50_tfpool", images, result.state_dict),
        padded_reference(images, "resnet50_tfpool", "resnet50_tfpool"),
    )
    # Asking for the plain architecture is refused, with the reason.
    with pytest.raises(zoo.ConversionError, match="only resnet50_tfsame"):
        convert_checkpoint(tmp_path / "pretrain_res50x1.pkl", "byol-jax", "resnet50")


def _counters(arch: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in reference_weights(arch).items() if k.endswith("num_batches_tracked")}


def test_same_layers_export_to_onnx_exactly(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnx

    from zoo.onnx import export_onnx, parity

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        Conv2dSame(3, 8, 7, stride=2, bias=False),
        MaxPool2dSame(3, 2),
        Conv2dSame(8, 8, 3, stride=2),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    ).eval()
    path = export_onnx(net, tmp_path / "same.onnx", (224, 224))
    pads = [n for n in onnx.load(path).graph.node if n.op_type == "Pad"]
    assert len(pads) == 3  # one explicit, asymmetric Pad per layer
    x = torch.randn(3, 3, 224, 224)
    with torch.inference_mode():
        scale = net(x).abs().max().item()
    assert parity(net, path, x) <= 1e-5 * scale


@pytest.mark.slow  # a ResNet-50 export and its check: ~30 s
def test_resnet50_tfsame_exports_to_onnx_exactly(tmp_path: Path, images: torch.Tensor) -> None:
    pytest.importorskip("onnxruntime")
    from zoo.onnx import export_onnx, parity

    backbone = zoo.create_model("resnet50_tfsame").backbone
    backbone.load_state_dict(reference_weights("resnet50"))
    path = export_onnx(backbone.eval(), tmp_path / "r50.onnx", (224, 224))
    assert (
        parity(backbone, path, images)
        <= 1e-5 * padded_reference(images, "resnet50_tfsame").abs().max().item()
    )
