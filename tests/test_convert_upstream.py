"""Checkpoints written the way upstream training code writes them, pickled objects included.

Each fixture reproduces what the upstream save code puts in the file (read from its source:
facebookresearch/vicreg main_vicreg.py, open-mmlab/mmengine runner.py + message_hub.py +
history_buffer.py, vturrisi/solo-learn solo/methods/base.py, open-mmlab/mmselfsup
algorithms and tools/model_converters/extract_backbone_weights.py). Upstream's own classes
and functions are defined in throwaway modules under their real qualified names while the
file is written and removed before it is read, so loading cannot import them: what comes
back is only what zoo's readers make of the file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.convert import convert_checkpoint, detect_format, get_converter
from zoo.convert.torch_pickle import StandIn
from zoo.errors import ConversionError, WeightsError


@contextlib.contextmanager
def upstream_module(name: str, **objects: object) -> Iterator[types.ModuleType]:
    """``name`` importable (with its parent packages) while a fixture is written; the objects
    get it as their ``__module__``. Everything is removed from ``sys.modules`` afterwards."""
    parts = name.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    saved = {n: sys.modules.get(n) for n in names}
    module = types.ModuleType(name)
    for attr, obj in objects.items():
        obj.__module__ = name
        setattr(module, attr, obj)
    sys.modules.update({n: types.ModuleType(n) for n in names[:-1] if n not in sys.modules})
    sys.modules[name] = module
    try:
        yield module
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


@functools.cache
def weights(arch: str) -> dict[str, torch.Tensor]:
    """A seeded, randomly initialised zoo backbone's state dict (torchvision's keys)."""
    torch.manual_seed(sum(map(ord, arch)))
    return {k: v.clone() for k, v in zoo.create_model(arch).backbone.state_dict().items()}


def prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def assert_backbone(converted: dict[str, torch.Tensor], arch: str) -> None:
    expected = weights(arch)
    assert list(converted) == list(expected)
    for k, v in expected.items():
        assert torch.equal(converted[k], v), k


def globals_of(path: Path) -> set[str]:
    from zoo.convert.torch_pickle import globals_in

    return set(globals_in(path))


# --------------------------------------------------------------------------------------------
# VICReg: main_vicreg.py's {epoch, model, optimizer} with LARS's filter functions
# --------------------------------------------------------------------------------------------


def vicreg_full(tmp_path: Path, arch: str = "resnet18_cifar_quarter", module: str = "__main__") -> Path:
    """main_vicreg.py, rank 0: ``torch.save(dict(epoch, model=model.state_dict(),
    optimizer=optimizer.state_dict()), exp_dir / "model.pth")``, the model DDP-wrapped
    (``module.backbone``, ``module.projector``: Linear+BN+ReLU ..., last Linear without bias)
    and LARS built with ``weight_decay_filter=exclude_bias_and_norm``: the script's function,
    ``__main__.exclude_bias_and_norm`` when run as ``python main_vicreg.py``."""

    def exclude_bias_and_norm(p):
        return p.ndim == 1

    class LARS(torch.optim.Optimizer):  # main_vicreg.py's constructor (step is not needed)
        def __init__(
            self, params, lr, weight_decay=0, momentum=0.9, eta=0.001, wd_filter=None, lars_filter=None
        ):
            defaults = dict(
                lr=lr,
                weight_decay=weight_decay,
                momentum=momentum,
                eta=eta,
                weight_decay_filter=wd_filter,
                lars_adaptation_filter=lars_filter,
            )
            super().__init__(params, defaults)

    exclude_bias_and_norm.__qualname__ = "exclude_bias_and_norm"
    torch.manual_seed(sum(map(ord, arch)))
    backbone = zoo.create_model(arch).backbone
    dim = zoo.create_model(arch).embed_dim
    projector = torch.nn.Sequential(
        torch.nn.Linear(dim, 32),
        torch.nn.BatchNorm1d(32),
        torch.nn.ReLU(True),
        torch.nn.Linear(32, 32, bias=False),
    )
    model = torch.nn.Module()
    model.backbone, model.projector = backbone, projector
    wrapped = torch.nn.Module()
    wrapped.module = model  # DistributedDataParallel's attribute, hence module.*
    optimizer = LARS(
        wrapped.parameters(),
        lr=0,
        weight_decay=1e-6,
        wd_filter=exclude_bias_and_norm,
        lars_filter=exclude_bias_and_norm,
    )
    for p in wrapped.parameters():
        optimizer.state[p]["mu"] = torch.zeros_like(p)
    state = dict(epoch=100, model=wrapped.state_dict(), optimizer=optimizer.state_dict())
    main = sys.modules["__main__"]
    if module == "__main__":
        exclude_bias_and_norm.__module__ = "__main__"
        main.exclude_bias_and_norm = exclude_bias_and_norm
        try:
            return save(tmp_path / "model.pth", state)
        finally:
            del main.exclude_bias_and_norm
    with upstream_module(module, exclude_bias_and_norm=exclude_bias_and_norm):
        return save(tmp_path / "model.pth", state)


def test_vicreg_full_checkpoint_with_the_scripts_function(tmp_path: Path) -> None:
    path = vicreg_full(tmp_path)
    assert "__main__.exclude_bias_and_norm" in globals_of(path)
    with pytest.raises(pickle.UnpicklingError):  # what torch alone makes of it
        torch.load(path, weights_only=True)
    result = convert_checkpoint(path, "vicreg", "resnet18_cifar_quarter")
    assert_backbone(result.state_dict, "resnet18_cifar_quarter")
    assert detect_format(path) == "vicreg"
    # The optimiser's filter came back as an inert stand-in, not the function.
    from zoo.convert.containers import read_torch_file

    group = read_torch_file(path)["optimizer"]["param_groups"][0]
    assert isinstance(group["weight_decay_filter"], type) and issubclass(
        group["weight_decay_filter"], StandIn
    )
    assert group["weight_decay_filter"].global_name == "__main__.exclude_bias_and_norm"


# --------------------------------------------------------------------------------------------
# mmengine (mmpretrain / mmselfsup 1.x): message_hub holds HistoryBuffer objects
# --------------------------------------------------------------------------------------------


class HistoryBuffer:
    """mmengine/logging/history_buffer.py's constructor: the logs as numpy arrays."""

    def __init__(self, log_history=(), count_history=(), max_length=1000000):
        self.max_length = max_length
        self._log_history = np.array(log_history)
        self._count_history = np.array(count_history)


def mmengine_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """runner.py save_checkpoint: {meta, state_dict, message_hub, optimizer, param_schedulers}."""
    scalars = OrderedDict(
        (k, HistoryBuffer([0.5, 0.4], [1, 1])) for k in ("train/lr", "train/loss", "train/time")
    )
    info = OrderedDict(epoch=200, iter=250200, max_epochs=200, max_iters=250200, dataset_meta=None)
    return {
        "meta": {
            "epoch": 200,
            "iter": 250200,
            "cfg": "model = dict(type='DenseCL', ...)",
            "seed": np.int64(1234),  # numpy scalars also reach the file
            "experiment_name": "densecl_resnet50_8xb32-coslr-200e_in1k_20221208_230145",
            "time": "20221210_101010",
            "mmengine_version": "0.4.0",
            "dataset_meta": {},
        },
        "state_dict": state_dict,
        "message_hub": {"log_scalars": scalars, "runtime_info": info, "resumed_keys": {"train/lr": True}},
        "optimizer": {
            "state": {},
            "param_groups": [{"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4, "params": [0, 1]}],
        },
        "param_schedulers": [{"T_max": 200, "eta_min": 0.0, "begin": 0, "end": 200, "by_epoch": True}],
    }


def write_mmengine(path: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    with upstream_module("mmengine.logging.history_buffer", HistoryBuffer=HistoryBuffer):
        HistoryBuffer.__qualname__ = "HistoryBuffer"
        return save(path, mmengine_checkpoint(state_dict))


def densecl_state_dict(arch: str = "resnet18") -> dict[str, torch.Tensor]:
    """mmselfsup/mmpretrain DenseCL: backbone, neck (DenseCLNeck), head, encoder_k (mmengine's
    ExponentialMovingAverage: module.* and steps), queue/queue_ptr, queue2/queue2_ptr, and the
    data_preprocessor's mean/std buffers."""
    b = weights(arch)
    sd = prefixed("backbone.", b)
    neck = {"neck.mlp.0.weight": torch.zeros(8, 4), "neck.mlp.0.bias": torch.zeros(8)}
    neck |= {"neck.mlp2.0.weight": torch.zeros(8, 4, 1, 1), "neck.mlp2.2.weight": torch.zeros(4, 8, 1, 1)}
    sd |= neck
    sd |= prefixed("encoder_k.module.0.", b) | prefixed(
        "encoder_k.module.1.", {k[5:]: v for k, v in neck.items()}
    )
    sd["encoder_k.steps"] = torch.tensor(250200)
    sd |= {"queue": torch.zeros(4, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    sd |= {"queue2": torch.zeros(4, 16), "queue2_ptr": torch.zeros(1, dtype=torch.long)}
    sd |= {"data_preprocessor.mean": torch.zeros(3, 1, 1), "data_preprocessor.std": torch.ones(3, 1, 1)}
    return sd


def test_mmengine_checkpoint_with_history_buffers(tmp_path: Path) -> None:
    path = write_mmengine(tmp_path / "epoch_200.pth", densecl_state_dict())
    assert "mmengine.logging.history_buffer.HistoryBuffer" in globals_of(path)
    assert "mmengine.logging.history_buffer" not in sys.modules
    result = convert_checkpoint(path, "mmselfsup", "resnet18")
    assert_backbone(result.state_dict, "resnet18")
    assert detect_format(path) == "mmselfsup"


@pytest.mark.parametrize(
    "extra",
    [
        # NPID: SimpleMemory's feature bank and its AliasMethod sampler's buffers.
        {"memory_bank.feature_bank": torch.zeros(16, 4), "memory_bank.multinomial.prob": torch.zeros(16)}
        | {"memory_bank.multinomial.alias": torch.zeros(16, dtype=torch.long)},
        # ODC: ODCMemory's centroids and the loss re-weighting buffer.
        {"memory_bank.centroids": torch.zeros(10, 4), "loss_weight": torch.ones(10) / 10},
        # DeepCluster: the loss re-weighting buffer.
        {"loss_weight": torch.ones(10) / 10},
    ],
    ids=["npid", "odc", "deepcluster"],
)
def test_mmselfsup_memory_banks_and_loss_weights(extra: dict, tmp_path: Path) -> None:
    sd = prefixed("backbone.", weights("resnet18")) | {"neck.fc.weight": torch.zeros(4, 512)} | extra
    sd |= {"head.fc.weight": torch.zeros(10, 4)} if "loss_weight" in extra else {}
    path = write_mmengine(tmp_path / "epoch_200.pth", sd)
    assert_backbone(convert_checkpoint(path, "mmselfsup", "resnet18").state_dict, "resnet18")


def test_mmselfsup_extracted_backbone(tmp_path: Path) -> None:
    """tools/model_converters/extract_backbone_weights.py: ``dict(state_dict={key[9:]: value
    for backbone.* keys}, author='MMSelfSup')``."""
    source = write_mmengine(tmp_path / "epoch_200.pth", densecl_state_dict())
    with upstream_module("mmengine.logging.history_buffer", HistoryBuffer=HistoryBuffer):
        ck = torch.load(source, map_location="cpu", weights_only=False)  # the tool's own load
    output = dict(state_dict=dict(), author="MMSelfSup")
    for key, value in ck["state_dict"].items():
        if key.startswith("backbone"):
            output["state_dict"][key[9:]] = value
    path = save(tmp_path / "densecl_backbone.pth", output)
    assert_backbone(convert_checkpoint(path, "mmselfsup", "resnet18").state_dict, "resnet18")
    assert detect_format(path) == "torchvision"  # the layout is torchvision's own


# --------------------------------------------------------------------------------------------
# solo-learn: SimSiam's scheduler state holds functools.partial(static_lr, get_lr=<bound method>)
# --------------------------------------------------------------------------------------------


def static_lr(get_lr, param_group_indexes, lrs_to_replace):  # solo/methods/base.py
    lrs = get_lr()
    for idx, lr in zip(param_group_indexes, lrs_to_replace, strict=True):
        lrs[idx] = lr
    return lrs


class LinearWarmupCosineAnnealingLR(torch.optim.lr_scheduler.LRScheduler):
    """solo/utils/lr_scheduler.py's constructor (its schedule is not needed here)."""

    def __init__(self, optimizer, warmup_epochs, max_epochs, warmup_start_lr=0.0, eta_min=0.0, last_epoch=-1):
        self.warmup_epochs, self.max_epochs = warmup_epochs, max_epochs
        self.warmup_start_lr, self.eta_min = warmup_start_lr, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]


def solo_simsiam(tmp_path: Path, arch: str = "resnet18") -> Path:
    """A Lightning checkpoint of solo-learn's SimSiam: ``state_dict`` (backbone, projector,
    predictor, classifier), ``optimizer_states`` and ``lr_schedulers``, the scheduler's state
    dict holding ``get_lr = partial(static_lr, get_lr=scheduler.get_lr, ...)`` as
    configure_optimizers sets it when the predictor has ``static_lr`` (base.py)."""
    b = weights(arch)
    dim = zoo.create_model(arch).embed_dim
    projector = torch.nn.Sequential(
        torch.nn.Linear(dim, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 8)
    )
    predictor = torch.nn.Sequential(
        torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Linear(4, 8)
    )
    classifier = torch.nn.Linear(dim, 10)
    sd = prefixed("backbone.", b)
    for name, m in (("projector", projector), ("predictor", predictor), ("classifier", classifier)):
        sd |= prefixed(f"{name}.", m.state_dict())
    groups = [
        {"name": "backbone", "params": [torch.nn.Parameter(torch.zeros(2))]},
        {"name": "predictor", "params": list(predictor.parameters()), "static_lr": True},
    ]
    with (
        upstream_module("solo.methods.base", static_lr=static_lr),
        upstream_module(
            "solo.utils.lr_scheduler", LinearWarmupCosineAnnealingLR=LinearWarmupCosineAnnealingLR
        ),
    ):
        optimizer = torch.optim.SGD(groups, lr=0.05, momentum=0.9)
        scheduler = LinearWarmupCosineAnnealingLR(optimizer, warmup_epochs=10, max_epochs=400)
        scheduler.get_lr = functools.partial(
            static_lr, get_lr=scheduler.get_lr, param_group_indexes=[1], lrs_to_replace=[0.05]
        )
        ckpt = {
            "epoch": 399,
            "global_step": 156000,
            "pytorch-lightning_version": "2.0.2",
            "state_dict": sd,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 400}}}},
            "callbacks": {},
            "optimizer_states": [optimizer.state_dict()],
            "lr_schedulers": [scheduler.state_dict()],
            "hparams_name": "kwargs",
            "hyper_parameters": {"cfg": {"method": "simsiam"}},
        }
        return save(tmp_path / "simsiam-solo.ckpt", ckpt)


def test_solo_learn_simsiam_with_a_partial_in_the_scheduler(tmp_path: Path) -> None:
    path = solo_simsiam(tmp_path)
    names = globals_of(path)
    assert {
        "functools.partial",
        "solo.methods.base.static_lr",
        "solo.utils.lr_scheduler.LinearWarmupCosineAnnealingLR",
    } <= names
    assert "solo.methods.base" not in sys.modules
    assert_backbone(convert_checkpoint(path, "solo-learn", "resnet18").state_dict, "resnet18")
    assert detect_format(path) == "solo-learn"


# --------------------------------------------------------------------------------------------
# What is refused, and how it is said
# --------------------------------------------------------------------------------------------


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_hostile_torch_checkpoints_are_refused_by_name(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for fn, args, name in (
        (os.system, (f"touch {marker}",), "posix.system"),
        (eval, (f"open({str(marker)!r}, 'w')",), "builtins.eval"),
        (getattr, ({"a": 1}, "clear"), "builtins.getattr"),  # getattr on a real object
    ):
        path = save(tmp_path / "evil.pth", {"state_dict": {"x": torch.zeros(1)}, "extra": _Reduce(fn, args)})
        with pytest.raises(WeightsError) as err:
            get_converter("torchvision").read(path)
        message = str(err.value)
        assert f"refused global {name}" in message or f"refused to unpickle (refused global {name}" in message
        assert "\x1b[" not in message and "add_safe_globals" not in message and "\n" not in message
        assert not marker.exists()


def test_cli_refusal_is_one_plain_line(tmp_path: Path, capsys) -> None:
    from zoo.cli import main

    path = save(
        tmp_path / "evil.pth", {"state_dict": {"x": torch.zeros(1)}, "x": _Reduce(os.system, ("true",))}
    )
    assert main(["convert", str(path), "--from", "torchvision", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1
    assert "refused global posix.system" in err and "\x1b[" not in err and "add_safe_globals" not in err


def test_a_stand_in_where_conversion_needs_tensors_is_refused_by_name(tmp_path: Path) -> None:
    with upstream_module("mmengine.logging.history_buffer", HistoryBuffer=HistoryBuffer):
        HistoryBuffer.__qualname__ = "HistoryBuffer"
        sd = prefixed("backbone.", weights("resnet18")) | {"neck.fc.weight": torch.zeros(1)}
        path = save(tmp_path / "bad.pth", {"state_dict": sd | {"neck.log": HistoryBuffer([1.0], [1])}})
    with pytest.raises(
        ConversionError, match=r"'neck\.log' is a mmengine\.logging\.history_buffer\.HistoryBuffer object"
    ):
        convert_checkpoint(path, "mmselfsup", "resnet18")


def test_corrupted_torch_file_message_is_one_plain_line(tmp_path: Path) -> None:
    good = save(tmp_path / "good.pth", {"x": torch.zeros(3)})
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupted or truncated") as err:
        get_converter("torchvision").read(tmp_path / "cut.pth")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# lightly: MoCo's key_* copies, and lightly's own CIFAR ResNet (ResNetGenerator)
# --------------------------------------------------------------------------------------------


class LightlyBasicBlock(torch.nn.Module):
    """lightly/models/resnet.py BasicBlock (num_splits=0: plain BatchNorm2d)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.conv2 = torch.nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.shortcut = torch.nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = torch.nn.Sequential(
                torch.nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                torch.nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return torch.relu(out)


class LightlyResNet(torch.nn.Module):
    """lightly/models/resnet.py ResNet as ``ResNetGenerator("resnet-18")`` builds it."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 10) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.linear = torch.nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, n: int, stride: int) -> torch.nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(LightlyBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return torch.nn.Sequential(*blocks)


def cifar_images(n: int = 4) -> torch.Tensor:
    from zoo.images import open_image, to_tensor

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "test"
    files = [sorted(d.iterdir())[0] for d in sorted(root.iterdir())[:n]]
    x = torch.stack([to_tensor(open_image(f)) for f in files])
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor([0.247, 0.243, 0.261]).view(1, 3, 1, 1)


def _randomise_bn(module: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine, so a missing ReLU would show."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)


def test_lightly_cifar_resnet_generator(tmp_path: Path) -> None:
    """cifar10_benchmark.py: ``resnet = ResNetGenerator("resnet-18")``, ``self.backbone =
    nn.Sequential(*list(resnet.children())[:-1], nn.AdaptiveAvgPool2d(1))``; MoCo's momentum
    copies are ``backbone_momentum``/``projection_head_momentum``."""
    torch.manual_seed(0)
    resnet = LightlyResNet()
    _randomise_bn(resnet)
    backbone = torch.nn.Sequential(*list(resnet.children())[:-1], torch.nn.AdaptiveAvgPool2d(1)).eval()
    head = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 128))
    sd = prefixed("backbone.", backbone.state_dict()) | prefixed("projection_head.", head.state_dict())
    sd |= prefixed("backbone_momentum.", backbone.state_dict()) | prefixed(
        "projection_head_momentum.", head.state_dict()
    )
    sd |= {
        "criterion.memory_bank.bank": torch.zeros(128, 4096),
        "criterion.memory_bank.bank_ptr": torch.zeros(1),
    }
    path = save(tmp_path / "moco.ckpt", {"epoch": 799, "global_step": 1, "state_dict": sd})
    result = convert_checkpoint(path, "lightly")
    assert result.arch == "resnet18_cifar_lightly"
    x = cifar_images()
    model = zoo.create_model("resnet18_cifar_lightly").backbone
    model.load_state_dict(result.state_dict)
    with torch.inference_mode():
        want = backbone(x).flatten(1)
        assert_close(model.eval()(x), want)
        # zoo's plain CIFAR ResNet-18 (a stem ReLU) would compute something else: refused.
        other = zoo.create_model("resnet18_cifar").backbone
        other.load_state_dict(result.state_dict)
        assert ((other.eval()(x) - want).norm() / want.norm()) > 0.01
    with pytest.raises(ConversionError, match=r"no ReLU after the stem.*not 'resnet18_cifar'"):
        convert_checkpoint(path, "lightly", "resnet18_cifar")


class SplitBatchNorm(torch.nn.BatchNorm2d):
    """lightly/models/batchnorm.py SplitBatchNorm: per-split statistics while training, their
    mean (collated when switching to eval) at evaluation."""

    def __init__(self, num_features: int, num_splits: int) -> None:
        super().__init__(num_features)
        self.num_splits = num_splits
        self.register_buffer("running_mean", torch.zeros(num_features * num_splits))
        self.register_buffer("running_var", torch.ones(num_features * num_splits))

    def train(self, mode: bool = True) -> SplitBatchNorm:
        if self.training and not mode:
            c, s = self.num_features, self.num_splits
            self.running_mean = self.running_mean.view(s, c).mean(0).repeat(s)
            self.running_var = self.running_var.view(s, c).mean(0).repeat(s)
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.training:
            return torch.nn.functional.batch_norm(
                x.view(-1, c * self.num_splits, h, w), self.running_mean, self.running_var,
                self.weight.repeat(self.num_splits), self.bias.repeat(self.num_splits), True, 0.1, self.eps,
            ).view(n, c, h, w)  # fmt: skip
        c = self.num_features
        return torch.nn.functional.batch_norm(
            x, self.running_mean[:c], self.running_var[:c], self.weight, self.bias, False, 0.1, self.eps
        )


def test_lightly_split_batchnorm_checkpoint_converts_to_the_evaluated_network(tmp_path: Path) -> None:
    """lightly's CIFAR MoCo benchmark builds ``ResNetGenerator("resnet-18", num_splits=8)``: every
    BatchNorm keeps 8 copies of its statistics. A checkpoint saved mid-training (Lightning saves
    in train mode) holds 8 different ones; the converted network must equal lightly's own
    network in eval mode, which uses their mean."""
    torch.manual_seed(0)
    resnet = LightlyResNet()
    for parent in list(resnet.modules()):
        for name, child in parent.named_children():
            if type(child) is torch.nn.BatchNorm2d:
                split = SplitBatchNorm(child.num_features, 8)
                torch.nn.init.uniform_(split.weight, 0.5, 1.5)
                torch.nn.init.uniform_(split.bias, -0.5, 0.5)
                setattr(parent, name, split)
    backbone = torch.nn.Sequential(*list(resnet.children())[:-1], torch.nn.AdaptiveAvgPool2d(1)).train()
    x = cifar_images(10).repeat(2, 1, 1, 1)[:16]
    with torch.no_grad():
        for _ in range(3):
            backbone(x + 0.3 * torch.randn_like(x))  # per-split statistics that differ
    sd = backbone.state_dict()
    assert sd["1.running_mean"].shape == (64 * 8,)
    assert not torch.allclose(sd["1.running_mean"][:64], sd["1.running_mean"][64:128])
    path = save(tmp_path / "moco.ckpt", {"state_dict": prefixed("backbone.", sd)})
    result = convert_checkpoint(path, "lightly")
    assert result.state_dict["bn1.running_mean"].shape == (64,)
    model = zoo.create_model(result.arch).backbone
    model.load_state_dict(result.state_dict)
    test = cifar_images(4)
    with torch.inference_mode():
        want = backbone.eval()(test).flatten(1)
        assert_close(model.eval()(test), want)


def assert_close(got: torch.Tensor, want: torch.Tensor) -> None:
    err = (got - want).abs().max().item()
    assert err <= 1e-5 * want.abs().max().item(), err


def test_lightly_moco_key_copies(tmp_path: Path) -> None:
    """benchmarks/imagenet/resnet50/mocov2.py: backbone (torchvision ResNet, fc dropped by the
    Sequential), projection_head, key_backbone, key_projection_head, criterion, online_classifier."""
    b = weights("resnet18")
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    seq = {index[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v for k, v in b.items()}
    head = {
        "layers.0.weight": torch.zeros(16, 512),
        "layers.0.bias": torch.zeros(16),
        "layers.2.weight": torch.zeros(8, 16),
    }
    sd = prefixed("backbone.", seq) | prefixed("projection_head.", head)
    sd |= prefixed("key_backbone.", seq) | prefixed("key_projection_head.", head)
    sd |= {"online_classifier.classification_head.weight": torch.zeros(1000, 512)}
    path = save(tmp_path / "mocov2.ckpt", {"epoch": 99, "state_dict": sd})
    assert detect_format(path) == "lightly"
    assert_backbone(convert_checkpoint(path, "lightly", "resnet18").state_dict, "resnet18")


# --------------------------------------------------------------------------------------------
# solo-learn DeepCluster-v2's memory bank; VISSL's ClassyVision conversion output
# --------------------------------------------------------------------------------------------


def test_solo_learn_deepcluster_v2_memory_bank(tmp_path: Path) -> None:
    """deepclusterv2.py registers local_memory_index / local_memory_embeddings buffers; its
    prototypes are a ModuleList of Linear layers."""
    sd = prefixed("backbone.", weights("resnet18"))
    sd |= {"projector.0.weight": torch.zeros(16, 512), "projector.0.bias": torch.zeros(16)}
    sd |= {f"prototypes.{i}.weight": torch.zeros(30, 16) for i in range(3)}
    sd |= {
        "local_memory_index": torch.zeros(64, dtype=torch.long),
        "local_memory_embeddings": torch.zeros(2, 64, 16),
    }
    sd |= {"classifier.weight": torch.zeros(10, 512), "classifier.bias": torch.zeros(10)}
    path = save(
        tmp_path / "deepclusterv2.ckpt",
        {"epoch": 399, "state_dict": sd, "pytorch-lightning_version": "2.0.2"},
    )
    assert detect_format(path) == "solo-learn"
    assert_backbone(convert_checkpoint(path, "solo-learn", "resnet18").state_dict, "resnet18")


def test_vissl_classy_vision_conversion_output(tmp_path: Path) -> None:
    """extra_scripts/convert_classy_vision_to_vissl_resnet.py: ``{"model_state_dict": trunk}``
    with the trunk's ``_feature_blocks.*`` keys."""
    trunk = prefixed("_feature_blocks.", weights("resnet18"))
    path = save(tmp_path / "converted_vissl.torch", {"model_state_dict": trunk})
    assert detect_format(path) == "vissl"
    assert_backbone(convert_checkpoint(path, "vissl", "resnet18").state_dict, "resnet18")


# --------------------------------------------------------------------------------------------
# MoCo v3's ViT-S after its own convert_to_deit.py: 12 heads, timm's shapes
# --------------------------------------------------------------------------------------------


def mocov3_vit_small() -> torch.nn.Module:
    """moco-v3 vits.py ``vit_small``: timm's VisionTransformer with 12 heads, LayerNorm eps 1e-6
    and a fixed 2-D sin-cos position embedding (``build_2d_sincos_position_embedding``, copied)."""
    import timm

    torch.manual_seed(3)
    model = timm.create_model("vit_small_patch16_224", num_heads=12, num_classes=0)
    h, w = model.patch_embed.grid_size
    grid_w, grid_h = torch.meshgrid(
        torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij"
    )
    pos_dim = model.embed_dim // 4
    omega = 1.0 / (10000.0 ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim))
    out_w = torch.einsum("m,d->md", [grid_w.flatten(), omega])
    out_h = torch.einsum("m,d->md", [grid_h.flatten(), omega])
    pos_emb = torch.cat([torch.sin(out_w), torch.cos(out_w), torch.sin(out_h), torch.cos(out_h)], dim=1)[None]
    model.pos_embed = torch.nn.Parameter(torch.cat([torch.zeros(1, 1, model.embed_dim), pos_emb], dim=1))
    return model.eval()


def convert_to_deit(checkpoint: dict) -> dict:
    """moco-v3 convert_to_deit.py, as written."""
    state_dict = checkpoint["state_dict"]
    for k in list(state_dict.keys()):
        if k.startswith("module.base_encoder") and not k.startswith("module.base_encoder.head"):
            state_dict[k[len("module.base_encoder.") :]] = state_dict[k]
        del state_dict[k]
    return {"model": state_dict}


def test_mocov3_vit_small_after_convert_to_deit(tmp_path: Path, capsys) -> None:
    from zoo.cli import main

    model = mocov3_vit_small()
    base = model.state_dict() | {"head.0.weight": torch.zeros(16, 384), "head.1.weight": torch.ones(16)}
    sd = prefixed("module.base_encoder.", base) | prefixed("module.momentum_encoder.", base)
    sd |= {"module.predictor.0.weight": torch.zeros(16, 16)}
    path = save(
        tmp_path / "vit-s-deit.pth", convert_to_deit({"epoch": 300, "arch": "vit_small", "state_dict": sd})
    )
    result = convert_checkpoint(path)  # auto: timm's layout, MoCo v3's position embedding
    assert (result.format, result.arch) == ("timm", "vit_small_patch16_224_mocov3")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    encoder = zoo.create_model("vit_small_patch16_224_mocov3").backbone
    encoder.load_state_dict(result.state_dict)
    with torch.inference_mode():
        assert_close(encoder.eval()(x), model(x))
    with pytest.raises(ConversionError, match="12 attention heads: use --arch vit_small_patch16_224_mocov3"):
        convert_checkpoint(path, "timm", "vit_small_patch16_224")
    with pytest.raises(ConversionError, match="MoCo v3's fixed sin-cos"):
        convert_checkpoint(path, "dino", "vit_small_patch16_224")
    out = tmp_path / "converted"
    args = [
        "convert",
        str(path),
        "--from",
        "timm",
        "--arch",
        "vit_small_patch16_224_mocov3",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert zoo.load(out).backbone.blocks[0].attn.num_heads == 12


def test_learned_position_embedding_is_not_mocov3(tmp_path: Path) -> None:
    """A DINO/DeiT/timm ViT-S (6 heads, learned position embedding) is never given 12 heads."""
    import timm

    torch.manual_seed(4)
    sd = timm.create_model("vit_small_patch16_224", num_classes=0).state_dict()
    path = save(tmp_path / "dino_deitsmall16_pretrain.pth", sd)
    assert convert_checkpoint(path).arch == "vit_small_patch16_224"
    with pytest.raises(ConversionError, match="this checkpoint's is learned"):
        convert_checkpoint(path, "timm", "vit_small_patch16_224_mocov3")


def test_dino_folders_get_dinos_bicubic_preprocessing(tmp_path: Path) -> None:
    from zoo.convert import convert_to_folder

    path = save(tmp_path / "dino_resnet50_pretrain.pth", weights("resnet50"))  # dino-r50's arch
    enc = zoo.load(convert_to_folder(path, tmp_path / "dino", "dino"))
    assert enc.preprocess == zoo.model_info("dino-r50").preprocess
    assert enc.preprocess.interpolation == "bicubic"


# --------------------------------------------------------------------------------------------
# Errors say what was expected and what was found
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["moco", "moco-v3", "simsiam", "solo-learn", "lightly", "vissl"])
def test_a_foreign_layout_names_expected_and_found(fmt: str) -> None:
    foreign = {"trunk.conv1.weight": torch.zeros(1), "classifier.weight": torch.zeros(1)}
    if fmt == "vissl":
        foreign = {"_feature_blocks.conv1.weight": torch.zeros(1), "heads.0.weight": torch.zeros(1)}
    converter = get_converter(fmt)
    with pytest.raises(ConversionError) as err:
        converter.convert(foreign, converter.archs[0])
    message = str(err.value)
    assert message.startswith(f"{fmt}: ")
    assert "expected" in message and ("found top-level modules" in message or "not mapped" in message)


def test_auto_detection_names_what_it_found(tmp_path: Path) -> None:
    path = save(tmp_path / "x.pth", {"state_dict": {"trunk.conv1.weight": torch.zeros(1)}, "epoch": 3})
    with pytest.raises(ConversionError, match=r"top-level keys epoch, state_dict; state_dict modules trunk"):
        detect_format(path)
