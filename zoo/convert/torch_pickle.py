"""Reading ``torch.save`` files whose training state pickles objects beside the tensors.

A full training checkpoint is more than its network: VICReg's optimiser state holds the
training script's function ``exclude_bias_and_norm`` (``__main__.exclude_bias_and_norm``
when run as a script), mmengine's ``message_hub`` holds
``mmengine.logging.history_buffer.HistoryBuffer`` objects (with numpy arrays inside), and
solo-learn's scheduler state holds a ``functools.partial`` of ``solo.methods.base.static_lr``
bound to the scheduler and its optimiser. ``torch.load(weights_only=True)`` refuses all of
them, although conversion only needs the model's tensors.

:func:`stand_ins` gives ``weights_only`` loading an inert stand-in for each such global
(found by disassembling the pickle, :func:`globals_in`): a class that records what the
pickle passes to it and imports, calls and runs nothing from the file, so the parts
conversion does not read come back as :class:`StandIn` records. Where a stand-in lands in
a part conversion does need (the state dict), the converter refuses it by name
(:func:`zoo.convert.tensor_mapping`). Globals whose only use is to run code
(``os``, ``subprocess``, ``builtins.eval`` ...) are never stood in for: their presence
refuses the file, naming the global.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

#: Modules and builtins a checkpoint only names to run code; a file naming any is refused.
REFUSED_MODULES = (
    "os", "posix", "nt", "sys", "subprocess", "shutil", "importlib", "runpy", "pickle", "marshal",
    "socket", "ctypes", "code", "codeop", "pty", "webbrowser", "io", "pathlib", "tempfile", "signal",
    "multiprocessing", "threading", "asyncio", "types", "inspect", "operator", "functools.reduce",
    "torch.hub", "torch.ops", "torch.jit", "torch._C", "torch.utils.cpp_extension", "dill",
)  # fmt: skip
# Builtin data types a pickle may name (a defaultdict's factory ...): they are themselves.
_DATA_TYPES = (
    dict,
    list,
    tuple,
    set,
    frozenset,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    bool,
    slice,
    range,
)
_SAFE_BUILTINS = {"getattr", *(t.__name__ for t in _DATA_TYPES)}  # getattr: see _getattr
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class StandIn:
    """An object of a class (or the result of a function) named by the pickle, never built.

    ``global_name`` says which; ``args`` and ``state`` hold what the pickle passed to its
    constructor and ``__setstate__``, as plain data and other stand-ins.
    """

    global_name = "?"
    __slots__ = ("args", "state")

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = object.__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args): record only
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.global_name}>"


def _stand_in(name: str) -> type[StandIn]:
    short = re.sub(r"\W", "_", name.rsplit(".", 1)[-1]) or "StandIn"
    return type(short, (StandIn,), {"global_name": name, "__slots__": ()})


def _getattr(obj: Any, name: Any, *default: Any) -> Any:
    """``builtins.getattr`` as pickles use it for bound methods (``(getattr, (obj, "name"))``):
    answered with a stand-in when ``obj`` is one, refused on anything real."""
    if isinstance(obj, StandIn) and isinstance(name, str):
        return _stand_in(f"{obj.global_name}.{name}")()
    raise pickle.UnpicklingError(f"refused global builtins.getattr on a {type(obj).__name__}")


def _defaultdict(default_factory: Any = None, *args: Any) -> dict:
    # Optimiser state is a defaultdict(dict); weights_only loading fills only plain dicts.
    return dict(*args)


_REPLACEMENTS: dict[str, Any] = {
    **{f"builtins.{t.__name__}": t for t in _DATA_TYPES},
    "builtins.getattr": _getattr,
    "collections.defaultdict": _defaultdict,
}


def refused(name: str) -> bool:
    """Whether the global ``name`` (``module.qualname``) may only be refused."""
    module = name.rsplit(".", 1)[0]
    if module == "builtins":
        return name.rsplit(".", 1)[1] not in _SAFE_BUILTINS
    return any(name == m or name.startswith(m + ".") for m in REFUSED_MODULES)


def globals_in(path: Path) -> list[str]:
    """Every global a ``torch.save`` file's pickles name (``module.qualname``), from their
    opcodes: nothing is imported or run. Zip files have one pickle (``*/data.pkl``); the
    legacy format five in a row before the raw storages."""
    found: list[str] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            for n in names:
                with z.open(n) as f:
                    found += _scan(f)
        return list(dict.fromkeys(found))
    with open(path, "rb") as f:
        for _ in range(5):  # magic, protocol, sys_info, the object, storage keys
            try:
                found += _scan(f)
            except ValueError:  # past the last pickle
                break
    return list(dict.fromkeys(found))


def _scan(f: BinaryIO) -> Iterator[str]:
    out = []
    for op, arg, _ in pickletools.genops(f):
        if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
            module, name = arg.split(" ", 1)
            # Python 2 names, as protocol 2 writes them and as torch's unpickler maps them.
            if (module, name) in NAME_MAPPING:
                module, name = NAME_MAPPING[module, name]
            else:
                module = IMPORT_MAPPING.get(module, module)
            out.append(f"{module}.{name}")
    return out


def stand_ins(path: Path, safe_globals: tuple[type, ...] = ()) -> list[tuple[Any, str]]:
    """``(stand-in, "module.name")`` for each global in the file that weights_only loading does
    not admit; a :class:`pickle.UnpicklingError` naming any global that is refused outright."""
    from torch import _weights_only_unpickler as wou

    admitted = set(wou._get_allowed_globals()) | {f"{g.__module__}.{g.__qualname__}" for g in safe_globals}
    unknown = [g for g in globals_in(path) if g not in admitted]
    bad = [g for g in unknown if refused(g)]
    if bad:
        raise pickle.UnpicklingError(
            f"refused global {', '.join(bad)}: a checkpoint only names it to run code"
        )
    return [(_REPLACEMENTS.get(g) or _stand_in(g), g) for g in unknown]


def load(path: Path, safe_globals: tuple[type, ...] = ()) -> object:
    """``torch.load(weights_only=True)`` with :func:`stand_ins` for the non-tensor objects."""
    extra = stand_ins(path, safe_globals)
    with torch.serialization.safe_globals([*safe_globals, *extra]):
        return torch.load(path, map_location="cpu", weights_only=True)


def reason(error: BaseException) -> str:
    """torch's refusal as one plain sentence: no ANSI codes, no advice to turn safety off."""
    text = _ANSI.sub("", str(error))
    m = re.search(r"GLOBAL (\S+?)(?: was not| whose module)", text)
    if m:
        return f"refused global {m.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [
        line
        for line in lines
        if not re.search(r"weights_only|add_safe_globals|safe_globals|trusted source|documentation", line)
    ]
    return lines[-1] if lines else type(error).__name__
