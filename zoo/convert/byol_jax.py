"""BYOL (google-deepmind/deepmind-research, byol/): a dill pickle of JAX/Haiku parameters.

``pretrain_res50x1.pkl`` is ``{experiment_state, step, rng}`` (utils/checkpointing.py),
``experiment_state`` the named tuple ``_ByolExperimentState(online_params, target_params,
online_state, target_state, opt_state)`` with the device axis already removed. The
online network is converted; the target network (momentum encoder) and the optimiser
state are not read. Haiku names modules by path (byol_experiment.py, utils/networks.py,
haiku/_src/nets/resnet.py):

* ``res_net50/~/initial_conv`` ``w`` (HWIO) and ``res_net50/~/initial_batchnorm``
  ``scale``/``offset``, whose statistics are the state ``.../~/mean_ema`` and
  ``.../~/var_ema`` (``average``; ``counter`` and ``hidden`` are the average's bookkeeping);
* ``res_net50/~/block_group_G/~/block_B/~/{conv_I, batchnorm_I, shortcut_conv,
  shortcut_batchnorm}``, torchvision's ``layer{G+1}.B.{convI+1, bnI+1, downsample.0/1}``;
* the heads ``projector/~/...``, ``predictor/~/...`` and the online ``classifier``.

Haiku pads its convolutions and the stem max-pool "SAME" (asymmetric for stride 2) where
torchvision pads symmetrically: the weights convert onto ``resnet50_tfsame``
(:mod:`zoo.models.tf_padding`), which pads as Haiku does and so computes the JAX
network's features; plain ``resnet50`` would load them and compute others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

from zoo.convert import (
    Converter,
    StateDict,
    check_complete,
    register_converter,
    require_arch,
)
from zoo.convert.containers import JAX_PICKLE
from zoo.convert.jax_pickle import Record
from zoo.errors import ConversionError
from zoo.registry import Preprocess

ARCHS = ("resnet50_tfsame",)
PREPROCESS = Preprocess(input_size=224, resize_size=256, interpolation="bicubic")
_HEADS = ("projector", "predictor", "classifier")
_MODULE = re.compile(
    r"^(?P<root>[a-z0-9_]+)/~/(?:block_group_(?P<group>\d+)/~/block_(?P<block>\d+)/~/)?"
    r"(?P<module>initial_conv|initial_batchnorm|logits|conv_\d|batchnorm_\d|shortcut_conv|shortcut_batchnorm)"
    r"(?:/~/(?P<ema>mean_ema|var_ema))?/(?P<name>\w+)$"
)
_PARAMS = {"w": "weight", "scale": "weight", "offset": "bias"}
_EMA = {"mean_ema": "running_mean", "var_ema": "running_var"}


def unwrap(obj: object, source: str) -> StateDict:
    """The online parameters and state, flattened to ``module/path/name`` keys."""
    state = obj.get("experiment_state", obj) if isinstance(obj, Mapping) else obj
    if isinstance(state, Record):
        state = state.as_dict()
    if not isinstance(state, Mapping) or not {"online_params", "online_state"} <= set(state):
        found = ", ".join(map(str, list(state)[:10])) if isinstance(state, Mapping) else type(state).__name__
        raise ConversionError(
            f"{source}: not a BYOL checkpoint (expected experiment_state with online_params and"
            f" online_state; found {found})"
        )
    flat: StateDict = {}
    for part in ("online_params", "online_state"):
        for module, values in _mapping(state[part], source).items():
            for name, array in _mapping(values, f"{source}:{module}").items():
                if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
                    raise ConversionError(f"{source}: {module}/{name} is not a numeric array")
                flat[f"{module}/{name}"] = torch.from_numpy(np.array(array, copy=True))
    return flat


def _mapping(obj: object, source: str) -> Mapping:
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{source}: expected a mapping, found {type(obj).__name__}")
    return obj


def matches(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.endswith("/~/initial_conv/w") for k in state_dict)


def convert(state_dict: Mapping[str, torch.Tensor], arch: str) -> StateDict:
    require_arch("byol-jax", arch, ARCHS, "Haiku pads 'SAME': only resnet50_tfsame computes its features")
    mapped: StateDict = {}
    leftovers = []
    for key, value in state_dict.items():
        if key.split("/", 1)[0] in _HEADS:
            continue
        m = _MODULE.match(key)
        if m is None or m["module"] == "logits":
            # The torso's own classifier exists only when built with num_classes.
            if m is not None:
                continue
            leftovers.append(key)
            continue
        if m["ema"] and m["name"] in ("counter", "hidden"):
            continue  # the moving averages' bookkeeping; "average" is the statistic
        target = _target(m)
        if target is None:
            leftovers.append(key)
            continue
        # Haiku: conv kernels (h, w, in, out); BN parameters and statistics (1, 1, 1, C).
        mapped[target] = value.permute(3, 2, 0, 1).contiguous() if m["name"] == "w" else value.reshape(-1)
    return check_complete(mapped, leftovers, "byol-jax", arch)


def _target(m: re.Match) -> str | None:
    module = m["module"]
    if module in ("initial_conv", "initial_batchnorm"):
        tv = "conv1" if module == "initial_conv" else "bn1"
    else:
        block = f"layer{int(m['group']) + 1}.{m['block']}"
        if module.startswith("conv_"):
            tv = f"{block}.conv{int(module[-1]) + 1}"
        elif module.startswith("batchnorm_"):
            tv = f"{block}.bn{int(module[-1]) + 1}"
        else:
            tv = f"{block}.downsample.{0 if module == 'shortcut_conv' else 1}"
    if m["ema"]:
        return f"{tv}.{_EMA[m['ema']]}" if m["name"] == "average" else None
    name = _PARAMS.get(m["name"])
    return f"{tv}.{name}" if name else None


CONVERTER = register_converter(
    Converter(
        name="byol-jax",
        convert=convert,
        matches=matches,
        archs=ARCHS,
        description="BYOL JAX/Haiku pickle (experiment_state.online_params: res_net50/~/block_group_N ...)",
        container=JAX_PICKLE,
        unwrap=unwrap,
        method="byol",
        preprocess=PREPROCESS,
    )
)
