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


def densecl_state_dict(arch: str = "resnet50") -> dict[str, torch.Tensor]:
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
    result = convert_checkpoint(path, "mmselfsup", "resnet50")
    assert_backbone(result.state_dict, "resnet50")
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
    assert_backbone(convert_checkpoint(path, "mmselfsup", "resnet50").state_dict, "resnet50")
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
