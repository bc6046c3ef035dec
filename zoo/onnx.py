"""ONNX export and ONNX Runtime inference for zoo encoders.

An encoder is any ``nn.Module`` that maps a normalised float32 batch (N, 3, H, W) to pooled
features (N, D). This module turns one into an ONNX graph and runs that graph on CPU:

* :func:`export_onnx` writes a verified, single-file graph with a dynamic batch axis
  (input ``"images"``, output ``"features"``);
* :class:`OnnxEncoder` runs such a file with the ONNX Runtime settings that were fastest on
  the machines we measured;
* :func:`parity` is the max absolute difference between PyTorch and ONNX Runtime features;
* :func:`quantize_int8` is the opt-in fast path: static int8 quantisation, ~3x the fp32
  throughput on a CPU with VNNI, with features close to (not equal to) fp32.

``onnxruntime`` (and, for the rare fallback exporter, ``onnxscript``) are optional
dependencies, imported only when needed: ``pip install 'zoo-ssl[onnx]'``.

Measured on a 2-core AVX-512/VNNI machine, ResNet-50 at 224 px, batch 64, 2 threads
(``python benchmarks/embed.py``): PyTorch eager fp32 12.5 img/s, bf16 autocast 41.2,
ONNX Runtime fp32 47.3, ONNX Runtime int8 165.5 (``benchmarks/README.md`` has the table).
"""

from __future__ import annotations

import itertools
import os
import platform
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from zoo.errors import ExportError, WeightsError
from zoo.modes import eval_mode
from zoo.output import output_error

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "INPUT_NAME",
    "MIN_OPSET",
    "OUTPUT_NAME",
    "OnnxEncoder",
    "export_onnx",
    "parity",
    "quantize_int8",
]

INPUT_NAME = "images"
OUTPUT_NAME = "features"
#: Oldest opset accepted; 17 is the first with LayerNormalization (one fused op per ViT norm).
MIN_OPSET = 17
# The dynamo exporter's translation library starts at opset 18 (asking it for 17 triggers a
# down-conversion that fails on ReduceMean), so the fallback exporter uses at least 18.
_DYNAMO_MIN_OPSET = 18
# Protobuf cannot serialise a message of 2 GiB or more; past this much weight data (with
# headroom for the graph itself) the weights go to one external ``<name>.data`` file.
_EXTERNAL_DATA_BYTES = 2**31 - 2**27
# Batch sizes the export is verified at: 1 catches a graph whose batch axis was frozen to
# the tracing batch (2), 5 catches one frozen to 1 or broadcast wrongly.
_CHECK_BATCHES = (1, 5)
# Export-time sanity bound: max |torch - ORT| relative to the feature scale. A wrong graph
# (train-mode BN, dropout, a frozen shape) is off by O(1) of the scale; fp32 reassociation
# in ORT's kernels is ~1e-6 of it. Callers wanting a strict absolute bound use `parity`.
_EXPORT_RTOL = 1e-3

# Images per calibration run; bounds the quantiser's memory (see quantize_int8).
_CALIBRATION_CHUNK = 8

_PIP_HINT = "pip install 'zoo-ssl[onnx]' (or: pip install onnxruntime)"


# --------------------------------------------------------------------------------------
# export


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    input_size: tuple[int, int],
    *,
    opset: int = 17,
) -> Path:
    """Export ``module`` to a verified ONNX file at ``path`` and return that path.

    The graph takes ``"images"`` (N, 3, H, W) float32 with a dynamic batch axis N and
    returns ``"features"`` (N, D). ``module`` is exported in eval mode; the train/eval flags
    of all its submodules are restored afterwards. Before the file appears under ``path``,
    ONNX Runtime runs it at batch 1 and 5 and its features are compared with PyTorch's, so a
    graph with a frozen batch axis or a wrong result is never written. The write is atomic:
    everything is produced in a hidden temporary folder beside ``path`` and renamed into
    place, so ``path`` holds either the previous file or the complete new one.

    Models whose weights fit in protobuf's 2 GiB limit are written as one self-contained
    file; larger ones get their weights in ``<path>.data`` beside it (renamed into place
    before the graph, so a visible graph always has its data).

    Exporter: the TorchScript-based exporter (``dynamo=False``) is used first. In torch 2.14
    both exporters handle ResNet-50, CIFAR ResNet-18, EfficientNet-Lite0 and ViT-S/16 with
    a dynamic batch, and ONNX Runtime runs both graphs equally fast for the CNNs (ViT-S/16:
    the TorchScript graph was ~4% faster, 28.1 vs 26.9 img/s at batch 16). The TorchScript exporter is chosen
    because it honours ``opset=17`` exactly (the dynamo exporter emits opset 18 and fails to
    convert down), exports in ~0.5-2 s instead of ~5-8 s, and needs no ``onnxscript``. It
    is deprecated upstream, so the dynamo exporter (``torch.export`` based, needs
    ``onnxscript``) is the fallback when it fails, is missing, or produces a graph that fails
    verification, and the only exporter for models too big for one file.

    Args:
        module: the encoder; float32 parameters, on any device.
        path: where to write the ``.onnx`` file (parent folders are created).
        input_size: (height, width) of the input images; only the batch axis is dynamic.
        opset: ONNX opset, at least 17 (17 for the TorchScript exporter; the dynamo
            fallback uses ``max(opset, 18)``).

    Raises:
        ExportError: bad arguments, onnxruntime missing, the model cannot be exported, the
            exported graph disagrees with PyTorch or has no dynamic batch axis.
        OutputError: the file cannot be written (disk full, no permission...).
        Either way ``path`` is left as it was, with no temporary files beside it.
    """
    path = Path(path)
    height, width = _check_input_size(input_size)
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    if path.is_dir():
        raise ExportError(f"{path} is a directory; pass the path of the .onnx file to write")
    try:
        ort = _import_onnxruntime("verify an ONNX export")
    except ImportError as e:
        raise ExportError(str(e)) from None
    device = _check_float32(module)
    weight_bytes = sum(t.numel() * t.element_size() for t in _tensors(module))
    external = weight_bytes >= _EXTERNAL_DATA_BYTES

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same folder as the target, so the final os.replace is a rename on one filesystem.
        workdir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as e:
        raise ExportError(
            f"cannot write to {path.parent} ({e.strerror or e}); choose a writable folder"
        ) from None

    try:
        # The file gets its final name inside workdir: an external-data graph refers to its
        # data file by name, and that name must survive the move.
        tmp = workdir / path.name
        # Traced with batch 2: the dynamo exporter specialises size-1 axes, and a batch-1
        # trace hides broadcasting bugs that batch 2 exposes.
        sample = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
        exporters = [] if external else [("TorchScript exporter", _export_torchscript)]
        exporters.append(("dynamo exporter", _export_dynamo))
        failures: list[str] = []
        with eval_mode(module):
            # Module problems (forward raises, wrong output) fail here, once, with a plain
            # message, instead of once per exporter in its own words.
            refs = _reference_outputs(module, (height, width), device)
            for name, exporter in exporters:
                _clear(workdir)
                try:
                    exporter(module, sample, tmp, opset, external)
                    _verify(tmp, refs, ort)
                    break
                except ExportError as e:
                    failures.append(f"{name}: {e}")
                except OSError:
                    raise  # a full disk is not the model's fault: reported below as a write error
                except Exception as e:  # exporters raise anything; we report it
                    failures.append(f"{name}: {_describe(e)}")
            else:
                raise ExportError(
                    f"could not export {type(module).__name__} to ONNX. "
                    + "; ".join(failures)
                    + ". Only the batch axis may vary: avoid Python loops or branches on the batch"
                    " size or on tensor values in forward()."
                )
        publish_graph(workdir, tmp, path)
    except OSError as e:
        raise output_error(e, path) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return path


def _export_torchscript(
    module: nn.Module, sample: torch.Tensor, out: Path, opset: int, external: bool
) -> None:
    del external  # only called for single-file models
    with warnings.catch_warnings():
        # The deprecation notice is for zoo's maintainers, not its users; tracer warnings
        # flag Python-side shape logic, which _verify checks for the only axis that varies.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            (sample,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,  # folds BatchNorm into Conv weights
            dynamo=False,
        )


def _export_dynamo(module: nn.Module, sample: torch.Tensor, out: Path, opset: int, external: bool) -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError(f"needs onnxscript ({_PIP_HINT.replace('onnxruntime', 'onnxscript')})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            module,
            (sample,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=max(opset, _DYNAMO_MIN_OPSET),
            dynamo=True,
            external_data=external,
            optimize=True,
            verbose=False,
        )


def _reference_outputs(
    module: nn.Module, size: tuple[int, int], device: torch.device
) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyTorch's (input, features) pairs at the check batch sizes; ExportError if the module
    fails or does not return one (N, D) tensor."""
    gen = torch.Generator().manual_seed(1)
    refs = []
    for n in _CHECK_BATCHES:
        x = torch.randn(n, 3, *size, generator=gen)
        try:
            with torch.inference_mode():
                ref = module(x.to(device))
        except Exception as e:  # whatever forward raises, the export cannot proceed
            raise ExportError(
                f"{type(module).__name__}.forward fails on a float32 batch of shape {tuple(x.shape)}:"
                f" {_describe(e)}"
            ) from e
        if not isinstance(ref, torch.Tensor) or ref.ndim != 2 or ref.shape[0] != n:
            got = f"shape {tuple(ref.shape)}" if isinstance(ref, torch.Tensor) else type(ref).__name__
            raise ExportError(
                f"an encoder must return one tensor of pooled features (N, D); {type(module).__name__}"
                f" returned {got} for a batch of {n}"
            )
        refs.append((x.numpy(), ref.float().cpu().numpy()))
    return refs


def _verify(onnx_path: Path, refs: list[tuple[np.ndarray, np.ndarray]], ort: Any) -> None:
    """Run the graph on the reference inputs and compare with PyTorch; ExportError if off."""
    if not onnx_path.is_file():
        raise ExportError("the exporter wrote no file")
    session = ort.InferenceSession(
        str(onnx_path), _session_options(ort, _physical_cores()), providers=["CPUExecutionProvider"]
    )
    names_in = [i.name for i in session.get_inputs()]
    names_out = [o.name for o in session.get_outputs()]
    if names_in != [INPUT_NAME] or names_out != [OUTPUT_NAME]:
        raise ExportError(
            f"the graph has inputs {names_in} and outputs {names_out}; expected one input"
            f" {INPUT_NAME!r} and one output {OUTPUT_NAME!r}"
        )
    for x, ref in refs:
        n = len(x)
        try:
            out = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        except Exception as e:  # ORT raises its own exception types
            raise ExportError(
                f"ONNX Runtime fails at batch {n} ({_describe(e)}); the batch axis is not dynamic"
            ) from None
        if out.shape != ref.shape:
            raise ExportError(
                f"at batch {n} the graph returns {out.shape}, PyTorch {ref.shape};"
                " the batch axis was frozen during tracing"
            )
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(out - ref).max())
        if not diff <= _EXPORT_RTOL * scale:  # `not <=` also catches NaN
            raise ExportError(
                f"ONNX Runtime features differ from PyTorch by {diff:.3g} (max abs, features up to"
                f" {scale:.3g}) at batch {n}"
            )
    _set_feature_dim(onnx_path, refs[-1][1].shape[1])


def _set_feature_dim(onnx_path: Path, dim: int | None) -> None:
    """Write the verified feature size into the output shape when the exporter left it
    symbolic (the TorchScript exporter does for ViTs), so the graph describes itself."""
    try:
        import onnx
    except ImportError:
        return  # cosmetic only
    model = onnx.load(str(onnx_path), load_external_data=False)
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    if dim is None or len(out_dims) != 2 or out_dims[1].HasField("dim_value"):
        return
    out_dims[1].dim_value = dim
    onnx.save(model, str(onnx_path))  # weights stay where they are (inline or external)


def publish_graph(workdir: Path, graph: Path, path: Path) -> None:
    """Move the verified files into place: data files first, the graph last (atomically)."""
    for f in sorted(workdir.iterdir()):
        _fsync(f)
    for f in sorted(workdir.iterdir()):
        if f != graph:
            os.replace(f, path.parent / f.name)
    os.replace(graph, path)


def _fsync(f: Path) -> None:
    # A rename is only atomic for a reader after a crash if the data reached the disk first.
    fd = os.open(f, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clear(folder: Path) -> None:
    for f in folder.iterdir():
        shutil.rmtree(f) if f.is_dir() else f.unlink()


def _check_input_size(input_size: Any) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in input_size)
        ok = height > 0 and width > 0 and tuple(input_size) == (height, width)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ExportError(
            f"input_size must be (height, width) in pixels, e.g. (224, 224); got {input_size!r}"
        )
    return height, width


def _tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


def _check_float32(module: nn.Module) -> torch.device:
    """The module's device; raises ExportError if its floating weights are not float32."""
    device = torch.device("cpu")
    for t in _tensors(module):
        device = t.device
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ExportError(
                f"the module holds {t.dtype} weights; ONNX export needs float32 (call module.float() first)"
            )
    return device


def _describe(e: BaseException) -> str:
    """``Type: first line`` of the innermost cause: the dynamo exporter wraps the real error
    in a generic "step 1/3 failed" one."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()  # drop terminal colour codes
    line = text.splitlines()[0][:300] if text else ""
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


# --------------------------------------------------------------------------------------
# inference


def _import_onnxruntime(purpose: str) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(f"onnxruntime is needed to {purpose}: {_PIP_HINT}") from None
    return onnxruntime


def runtime_version() -> str:
    """The installed onnxruntime's version: derived int8 graphs are keyed by it (its quantiser)."""
    return str(_import_onnxruntime("quantise a graph to int8").__version__)


def _physical_cores() -> int:
    """Physical cores this process may run on (hyperthread siblings counted once)."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        cpu = phys = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu, phys = int(value), "0"
                elif key == "physical id":
                    phys = value
                elif key == "core id" and cpu in allowed:
                    cores.add((phys or "0", value))
    except (OSError, ValueError):
        pass
    n = min(len(cores) or len(allowed), len(allowed))
    # A container limited with a CPU quota (docker --cpus) still sees every host CPU; more
    # threads than the quota only makes them wait for each other.
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _session_options(ort: Any, threads: int) -> onnxruntime.SessionOptions:
    """The CPU session settings that measured fastest (ResNet-50 fp32 on 2 cores):

    * ORT_ENABLE_ALL: its NCHWc layout transform gave 46 img/s vs 31 with ENABLE_EXTENDED;
    * ``threads`` intra-op threads, one per physical core (ORT's own rule: hyperthread
      siblings share the vector units convolutions saturate); 1 -> 2 threads on 2 cores
      took 25 -> 46 img/s;
    * sequential execution, 1 inter-op thread: encoders are chains of ops, so the parallel
      executor only adds scheduling (batch-1 latency 21.6 vs 20.2 ms);
    * spin-waiting left on (ORT's default): turning it off cost 10% throughput and 2 ms of
      batch-1 latency, at the price of some idle CPU burnt between calls. (Two sessions
      used in alternation in one process steal from each other's spinning threads: int8
      ResNet-50 batch-1 latency went from 7.4 to 11 ms interleaved with an fp32 session.)
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: ORT's warnings are about its own internals
    return so


class OnnxEncoder:
    """An exported encoder run by ONNX Runtime on CPU: float32 (N, 3, H, W) -> (N, D).

    Example::

        enc = OnnxEncoder("model.onnx")
        feats = enc(batch)  # batch: float32 numpy array, already normalised

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx` or :func:`quantize_int8`.
        threads: intra-op threads; default one per physical core available to this process.

    Raises:
        ImportError: onnxruntime is not installed (the message says what to install).
        WeightsError: the file is missing, unreadable, or not an image encoder graph.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        ort = _import_onnxruntime("run an ONNX encoder")
        self.path = Path(path)
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads or _physical_cores()
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such ONNX file; export one with zoo.onnx.export_onnx")
        try:
            self.session = ort.InferenceSession(
                str(self.path), _session_options(ort, self.threads), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ORT raises its own (pybind) exception types
            raise WeightsError(f"{self.path}: not a loadable ONNX model ({_describe(e)})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(outputs) != 1 or len(shape) != 4 or not all(isinstance(s, int) for s in shape[1:]):
            raise WeightsError(
                f"{self.path}: expected one (N, C, H, W) input with fixed C, H, W and one output,"
                f" got inputs {[(i.name, i.shape) for i in inputs]} and outputs {[o.name for o in outputs]}"
            )
        self._input = inputs[0].name
        self._output = outputs[0].name
        self._chw: tuple[int, int, int] = (shape[1], shape[2], shape[3])
        dim = outputs[0].shape[-1] if outputs[0].shape else None
        self.feature_dim: int | None = dim if isinstance(dim, int) else None

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the graph expects."""
        return self._chw[1], self._chw[2]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Features (N, D) float32 of a normalised float32 batch (N, C, H, W)."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1:] != self._chw:
            raise ValueError(
                f"expected a batch of shape (N, {', '.join(map(str, self._chw))}), got {batch.shape}"
            )
        if not np.issubdtype(batch.dtype, np.floating):
            raise ValueError(f"expected a normalised float32 batch, got dtype {batch.dtype}")
        if batch.shape[0] == 0 and self.feature_dim is not None:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        # ORT needs C-contiguous float32; asarray/ascontiguousarray copy only when they must.
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self._output], {self._input: batch})[0]

    def __repr__(self) -> str:
        return f"OnnxEncoder({str(self.path)!r}, input_size={self.input_size}, threads={self.threads})"


def parity(module: nn.Module, onnx_path: str | os.PathLike | OnnxEncoder, batch: torch.Tensor) -> float:
    """Max absolute difference between PyTorch and ONNX Runtime features on ``batch``.

    PyTorch runs in eval mode under ``torch.inference_mode`` (the module's train/eval flags
    are restored afterwards). ``onnx_path`` may also be an :class:`OnnxEncoder`, to reuse a
    session. Returns ``inf`` if the shapes differ and ``nan`` if either side has NaNs.
    """
    return _differences(module, onnx_path, batch)[0]


def relative_parity(
    module: nn.Module, onnx_path: str | os.PathLike | OnnxEncoder, batch: torch.Tensor
) -> tuple[float, float]:
    """``(difference, scale)``: :func:`parity` divided by ``scale``, the largest PyTorch
    feature magnitude where that is above 1 (else 1, so small features are compared in
    absolute terms). What a tolerance should bound: float32 rounding grows with the values, and
    a backbone whose features reach the thousands (one trained on patches, say) differs from a
    faithful graph by 1e-4 in absolute terms through rounding alone."""
    diff, scale = _differences(module, onnx_path, batch)
    scale = max(1.0, scale) if np.isfinite(scale) else 1.0
    return diff / scale, scale


def parity_how(scale: float) -> str:
    """How a :func:`relative_parity` difference was measured, for messages."""
    return "max abs" if scale == 1.0 else f"max abs over the largest feature, {scale:.4g}"


def _differences(
    module: nn.Module, onnx_path: str | os.PathLike | OnnxEncoder, batch: torch.Tensor
) -> tuple[float, float]:
    encoder = onnx_path if isinstance(onnx_path, OnnxEncoder) else OnnxEncoder(onnx_path)
    device = next(_tensors(module), torch.empty(0)).device
    with eval_mode(module), torch.inference_mode():
        ref = module(batch.to(device)).float().cpu().numpy()
    got = encoder(batch.detach().cpu().float().numpy())
    if got.shape != ref.shape:
        return float("inf"), 1.0
    if got.size == 0:
        return 0.0, 1.0
    return float(np.max(np.abs(got - ref))), float(np.max(np.abs(ref)))


# --------------------------------------------------------------------------------------
# int8


def quantize_int8(
    onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: Iterable[np.ndarray],
    *,
    reduce_range: bool | None = None,
) -> Path:
    """Statically quantise an exported fp32 graph to int8 and write it atomically to ``out_path``.

    ``calibration`` yields float32 batches (N, 3, H, W), preprocessed exactly as at inference
    time; it is consumed once (a generator is fine). Activation ranges are their min/max, so
    they should look like the deployment data: 32-256 real images are plenty (on
    EfficientNet-Lite0, 8, 32 and 128 images gave the same fidelity).

    Settings, each measured (ResNet-50 and EfficientNet-Lite0, 2 cores with AVX-512 VNNI):

    * QDQ format: ORT fuses it into the same int8 kernels as QOperator, at equal accuracy and
      equal or better speed (ResNet-50 128 vs 121 img/s), and it is ORT's recommended format;
    * per-channel int8 weights: per-tensor weights wreck depthwise convolutions
      (EfficientNet-Lite0 feature cosine 0.88 vs 0.994) at no speed gain;
    * uint8 activations, int8 weights: the u8s8 VNNI kernels; int8 activations ran 4x slower
      and uint8 weights 14x slower;
    * MinMax calibration: Entropy and Percentile gave the same fidelity, 3-10x slower;
    * every layer quantised: keeping the stem convolution in fp32 gained +0.0008 cosine but
      cost 25% of ResNet-50's speed.

    Expect feature cosine similarity to fp32 of ~0.994 mean (0.98 worst image) on pretrained
    EfficientNet-Lite0 and ~0.9999 on ResNet-50; check yours with real images.

    Args:
        onnx_path: an fp32 graph from :func:`export_onnx`.
        out_path: where to write the int8 graph (a single file).
        calibration: float32 batches (N, 3, H, W) of real, normalised images.
        reduce_range: quantise weights to 7 bits, which avoids overflow in the int8 kernels of
            x86 CPUs without VNNI but costs accuracy. Default: True only on x86 CPUs without
            VNNI (the graph is tuned for the machine that quantises it).

    Raises:
        ImportError: onnxruntime is not installed.
        WeightsError: ``onnx_path`` is missing or not a loadable encoder graph.
        ExportError: no or malformed calibration data, or quantisation/writing failed;
            nothing is written to ``out_path`` then.
    """
    _import_onnxruntime("quantise an ONNX model")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    fp32 = OnnxEncoder(onnx_path)  # validates the graph and gives the expected input shape
    expected = (3, *fp32.input_size)

    def chunks() -> Iterator[np.ndarray]:
        # Chunks of _CALIBRATION_CHUNK images bound the calibration session's memory: it
        # peaked at 8 GB for ResNet-50 fed batches of 32, 3 GB in chunks of 8.
        for batch in calibration:
            batch = np.asarray(batch)
            if batch.ndim != 4 or batch.shape[1:] != expected or not np.issubdtype(batch.dtype, np.floating):
                raise ExportError(
                    "calibration batches must be float32 arrays"
                    f" (N, {', '.join(map(str, expected))}), got {batch.dtype} {batch.shape}"
                )
            for i in range(0, len(batch), _CALIBRATION_CHUNK):
                yield np.ascontiguousarray(batch[i : i + _CALIBRATION_CHUNK], dtype=np.float32)

    feed = chunks()
    first = next(feed, None)  # fail early and clearly on empty data, before any heavy work
    if first is None:
        raise ExportError("calibration yielded no images; pass an iterable of float32 (N, 3, H, W) batches")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feed = itertools.chain([first], feed)

        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(self._feed, None)
            return None if chunk is None else {fp32._input: chunk}

    if reduce_range is None:
        reduce_range = _needs_reduce_range()
    big = onnx_path.stat().st_size + _external_bytes(onnx_path) >= _EXTERNAL_DATA_BYTES
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp"))
    except OSError as e:
        raise ExportError(f"cannot write to {out_path.parent} ({e.strerror or e})") from None
    try:
        prepared = workdir / "prepared.onnx"
        tmp = workdir / out_path.name
        # Shape inference + ORT's basic graph fusions first, as ORT's quantiser expects: it
        # can then quantise every Conv/MatMul whose shapes it knows.
        quant_pre_process(
            str(onnx_path), str(prepared), save_as_external_data=big, all_tensors_to_one_file=True
        )
        quantize_static(
            str(prepared),
            str(tmp),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # No "CalibMaxIntermediateOutputs": in onnxruntime 1.31 it discards the ranges
            # collected so far instead of merging them. MinMax keeps only per-tensor min/max
            # per chunk, so memory is bounded by the chunking above anyway.
        )
        # Load it once before publishing, so a broken graph never reaches out_path.
        check = OnnxEncoder(tmp, threads=1)
        x = np.zeros((1, *expected), dtype=np.float32)
        if check(x).shape != fp32(x).shape:
            raise ExportError("the int8 graph's output shape differs from the fp32 graph's")
        _fsync(tmp)
        os.replace(tmp, out_path)
    except ExportError:
        raise
    except OSError as e:
        raise ExportError(f"cannot write {out_path} ({e.strerror or e})") from None
    except Exception as e:  # the quantiser raises anything
        raise ExportError(f"int8 quantisation of {onnx_path} failed: {_describe(e)}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out_path


def _external_bytes(onnx_path: Path) -> int:
    data = onnx_path.with_name(onnx_path.name + ".data")
    return data.stat().st_size if data.is_file() else 0


def _needs_reduce_range() -> bool:
    """7-bit weights only where 8-bit ones can overflow: x86 without VNNI (u8 x s8 products
    are summed in saturating int16 there). ARM and VNNI CPUs accumulate in int32."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}
    except OSError:
        pass
    return True  # unknown x86 CPU: the safe choice
