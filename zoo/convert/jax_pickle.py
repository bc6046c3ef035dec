"""Reading JAX/Haiku parameter pickles without running code from them.

DeepMind's BYOL release (``pretrain_res50x1.pkl``) is a ``dill`` pickle (protocol 2) of
``{"experiment_state": _ByolExperimentState(...), "step": int, "rng": array}``, whose
leaves are numpy arrays (``jax.device_get``), held in Haiku's mappings and in named tuples
(the experiment state, optax/LARS optimiser states). A stock unpickler would import and
call whatever the file names; :class:`_RestrictedUnpickler` instead resolves only:

* numpy's array and dtype reconstructors, also as dill writes them
  (``dill._dill._create_array``) and as JAX arrays pickle themselves
  (``jax._src.array._reconstruct_array``), read as plain numeric numpy arrays;
* plain containers (``dict``, ``list``, ``tuple``, ``collections.OrderedDict``);
* Haiku's immutable mappings, read as plain dicts;
* named tuples, whether pickled by reference (``byol.byol_experiment._ByolExperimentState``,
  optax states) or through dill's ``_create_namedtuple`` constructor, read as
  :class:`Record` (a tuple with field names; no class from the file is ever imported).

Anything else is refused with the name of the global the file asked for.
"""

from __future__ import annotations

import collections
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import WeightsError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Record(tuple):
    """A named tuple read from a pickle: a tuple plus ``fields`` (empty when unknown)."""

    fields: tuple[str, ...] = ()

    def __new__(cls, *values: Any) -> Record:
        return super().__new__(cls, values)

    def as_dict(self) -> dict[str, Any]:
        if len(self.fields) != len(self):
            raise WeightsError(f"record {type(self).__name__} has no field names for its {len(self)} values")
        return dict(zip(self.fields, self, strict=True))


# Field names of the records the BYOL release pickles by reference, so that they read the
# same whichever way dill stored them.
_KNOWN_FIELDS = {
    "_ByolExperimentState": ("online_params", "target_params", "online_state", "target_state", "opt_state"),
}


def _record_type(name: str, fields: Any = None, module: Any = None, *defaults: Any) -> type[Record]:
    """A Record subclass standing for the named tuple ``name``; also dill's ``_create_namedtuple``
    (``name, fields, module[, defaults]``), whose module is never imported."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name.rsplit(".", 1)[-1]):
        raise pickle.UnpicklingError(f"invalid named tuple name {name!r}")
    short = name.rsplit(".", 1)[-1]
    if fields is None:
        fields = _KNOWN_FIELDS.get(short, ())
    if not all(isinstance(f, str) and _IDENTIFIER.match(f) for f in fields):
        raise pickle.UnpicklingError(f"invalid field names for named tuple {name!r}")
    return type(short, (Record,), {"fields": tuple(fields), "__slots__": ()})


class _PlainDict(dict):
    """Haiku's FlatMapping/frozendict, whichever way they pickled: ``cls(mapping)`` or BUILD."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor``, limited to the stand-in classes this unpickler hands out."""
    if isinstance(cls, type) and issubclass(cls, (Record, _PlainDict)):
        return cls.__new__(cls)
    raise pickle.UnpicklingError(f"refused to reconstruct {cls!r}")


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode``, which protocol-2 pickles use for raw bytes (array data), latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _multiarray() -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _array(fun: Any, args: Any, state: Any) -> np.ndarray:
    """``fun(*args).__setstate__(state)`` for numpy's own array record only: ``fun`` must be
    numpy's ``_reconstruct`` (resolved by this unpickler), making a plain ``ndarray`` of a
    numeric dtype; object arrays (which could hold anything) are refused."""
    if fun is not _multiarray()._reconstruct or not isinstance(args, tuple) or not args:
        raise pickle.UnpicklingError(f"refused array record built by {fun!r}")
    if args[0] is not np.ndarray:
        raise pickle.UnpicklingError(f"refused array record of class {args[0]!r}")
    array = fun(*args)
    array.__setstate__(state)
    if array.dtype.hasobject:
        raise pickle.UnpicklingError("refused an object array (numeric arrays only)")
    return array


def _dill_array(fun: Any, args: Any, state: Any, npdict: Any = None) -> np.ndarray:
    """dill's ``_create_array(f, args, state, npdict)``, the record dill writes for every numpy
    array (dill/_dill.py ``save_numpy_array``): ``npdict`` is the array's ``__dict__``, which a
    plain ndarray does not have."""
    if npdict:
        raise pickle.UnpicklingError("refused a numpy array subclass with attributes (dill npdict)")
    return _array(fun, args, state)


def _jax_array(fun: Any, args: Any, arr_state: Any, aval_state: Any = None) -> np.ndarray:
    """A JAX array record, read as the numpy array it holds: ``jax._src.array._reconstruct_array``
    (JAX >= 0.3.17) and ``jax._src.device_array.reconstruct_device_array`` (0.3.11-0.4.6) pickle
    ``(fun, args, arr_state, aval_state)``, the numpy array's own reduction plus the abstract
    value's ``weak_type`` (and ``named_shape``); older DeviceArrays pickled as numpy arrays."""
    if aval_state is not None and not (
        isinstance(aval_state, dict) and set(aval_state) <= {"weak_type", "named_shape"}
    ):
        raise pickle.UnpicklingError(f"refused JAX array record with state {aval_state!r}")
    return _array(fun, args, arr_state)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    multiarray = _multiarray()
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    # Pickles name numpy 1's module path or numpy 2's; both resolve to the same functions.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[module, "_reconstruct"] = multiarray._reconstruct
        allowed[module, "scalar"] = multiarray.scalar
    return allowed


_ALLOWED = {
    **_numpy_globals(),
    **{("builtins", t.__name__): t for t in (dict, list, tuple, set, frozenset)},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("copy_reg", "_reconstructor"): _copyreg_reconstructor,
    ("dill._dill", "_create_namedtuple"): _record_type,
    ("dill.dill", "_create_namedtuple"): _record_type,
    ("dill._dill", "_create_array"): _dill_array,
    ("dill.dill", "_create_array"): _dill_array,
    ("jax._src.array", "_reconstruct_array"): _jax_array,
    ("jax._src.device_array", "reconstruct_device_array"): _jax_array,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module.startswith("haiku.") and name in ("FlatMapping", "FlatMap", "frozendict"):
            return _PlainDict
        if module.split(".")[0] in ("byol", "optax") and _IDENTIFIER.match(name):
            # Named tuples pickled by reference: stand-ins, never the real classes.
            return _record_type(name)
        raise pickle.UnpicklingError(
            f"refused global {module}.{name}: only numpy arrays, plain containers and named"
            " tuples are read from JAX pickles"
        )


def read(path: Path) -> object:
    """The pickle at ``path`` as plain Python: dicts, lists, tuples, Records and numpy arrays."""
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except pickle.UnpicklingError as e:
        raise WeightsError(f"{path}: refused to unpickle ({e})") from None
    except (EOFError, ValueError, TypeError, IndexError, AttributeError, OSError) as e:
        raise WeightsError(f"{path}: corrupted or truncated pickle ({e})") from None
