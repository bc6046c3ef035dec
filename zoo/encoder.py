"""The encoder users get from :func:`zoo.load`: a backbone plus the preprocessing it expects.

``Encoder`` is a plain ``nn.Module`` whose ``forward`` maps a normalised batch (N, 3, S, S)
to pooled features (N, D), so it fine-tunes like any torchvision model. On top of that,
:meth:`Encoder.embed` takes images in any everyday form and returns float32 features, with
a choice of backend:

* ``"torch"``: fp32, inference mode, channels-last memory layout;
* ``"onnx"``: the same weights exported to ONNX and run by ONNX Runtime (features within
  1e-4 of ``"torch"``, several times faster on CPU); the export is cached;
* ``"onnx-int8"``: ONNX Runtime with int8 weights and activations, calibrated on the
  images of the first call; opt-in, for throughput;
* ``"torch-bf16"``: bf16 autocast, opt-in;
* ``"auto"`` (default): ``"onnx"`` when onnxruntime is installed, else ``"torch"``.

With ``preprocess.flip_average`` the features are the mean of the image's and its mirror
image's (2 forward passes) in ``forward`` and so in every backend: the ONNX graphs run both.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from zoo import derived
from zoo import images as _images
from zoo.modes import eval_mode
from zoo.progress_bar import progress_bar
from zoo.registry import ModelEntry, Preprocess

Backend = Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"]
BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")

# ONNX Runtime sessions are kept beside (not inside) the module so that deepcopy, pickling
# and state_dict() of an Encoder never see them.
#: The opset of the graphs the onnx backends export and cache (part of :meth:`Encoder.graph_key`).
GRAPH_OPSET = 17
_SESSIONS: weakref.WeakKeyDictionary[nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


class Encoder(nn.Module):
    """A pretrained image encoder without classifier head.

    Attributes:
        backbone: the torchvision/timm module; its state dict is what ``model.safetensors``
            holds.
        entry: the registry record (method, weights, preprocessing, metrics, licence), or
            ``None`` for an architecture built without weights.
        preprocess: how images are resized, cropped and normalised for this encoder.
    """

    def __init__(
        self, backbone: nn.Module, arch: str, preprocess: Preprocess, entry: ModelEntry | None = None
    ):
        super().__init__()
        self.backbone = backbone
        self.arch = arch
        self.preprocess = preprocess
        self.entry = entry
        self.eval()

    @property
    def name(self) -> str:
        return self.entry.name if self.entry else self.arch

    @property
    def embed_dim(self) -> int:
        from zoo.registry import get_arch

        return get_arch(self.arch).embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, embed_dim) pooled features (with
        ``preprocess.flip_average``, the mean of the images' and their mirror images')."""
        return mirror_averaged(self.backbone, x) if self.preprocess.flip_average else self.backbone(x)

    def feature_module(self) -> nn.Module:
        """The module that computes this encoder's features from a normalised batch, as exported
        to ONNX: the backbone itself, or with ``preprocess.flip_average`` a :class:`FlipAverage`
        around it (sharing its weights)."""
        return FlipAverage(self.backbone) if self.preprocess.flip_average else self.backbone

    def transform(self, image: _images.ImageInput) -> torch.Tensor:
        """One image (path, PIL, tensor or array) -> the normalised (3, S, S) input tensor."""
        return _images.prepare(image, self.preprocess)

    def embed(
        self,
        images: _images.ImageInput | Sequence[_images.ImageInput],
        *,
        batch_size: int = 64,
        backend: Backend = "auto",
        normalize: bool = False,
        progress: bool = False,
        calibration: Sequence[_images.ImageInput] | None = None,
    ) -> np.ndarray:
        """Features of ``images`` as a float32 array of shape (N, embed_dim).

        Args:
            images: one image or a sequence of them (paths, PIL images, uint8 or [0, 1]
                float tensors (C, H, W) / arrays (H, W, C), or 4-D batches of either).
            batch_size: images preprocessed and run together.
            backend: see the module docstring.
            normalize: L2-normalise each feature vector (for cosine similarity).
            progress: show a progress bar.
            calibration: images that set int8 activation ranges for ``onnx-int8``
                (default: ``images`` themselves).

        Raises:
            ImageError: an input is not a readable image; the message names it.
        """
        items = _images.split_inputs(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not items:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        run = None
        out = np.empty((len(items), self.embed_dim), dtype=np.float32)
        done = 0
        # Closed on errors too: an open bar would swallow the start of the error's line.
        with progress_bar(len(items), f"embed {self.name}", "img", enabled=progress) as bar:
            for batch in _images.batches(items, self.preprocess, batch_size):
                # Built after the first batch decodes, so a bad image fails before any export.
                run = run or self.runner(backend, calibration=calibration or items)
                out[done : done + len(batch)] = run(batch)
                done += len(batch)
                bar.update(len(batch))
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def embed_files(
        self,
        files: Sequence[str | os.PathLike],
        *,
        batch_size: int = 64,
        backend: Backend = "auto",
        normalize: bool = False,
        progress: bool = False,
    ) -> EmbeddedFiles:
        """Features of the readable ``files``; unreadable ones are skipped and listed.

        Like :meth:`embed`, but a file that is not a readable image (truncated, not an image,
        a decompression bomb, gone) is left out instead of failing the whole call.

        Raises:
            ImageError: none of the files is readable (the message gives the first reason).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        paths = [Path(f) for f in files]
        kept: list[Path] = []
        skipped: list[str] = []
        outs: list[np.ndarray] = []
        run = None
        with progress_bar(len(paths), f"embed {self.name}", "img", enabled=progress) as bar:
            for start in range(0, len(paths), batch_size):
                tensors = []
                for f in paths[start : start + batch_size]:
                    try:
                        tensors.append(_images.prepare(f, self.preprocess))
                    except _images.ImageError as e:
                        skipped.append(str(e))  # the message starts with the file's path
                        continue
                    kept.append(f)
                if tensors:
                    if run is None:
                        calibration = _readable(paths) if backend == "onnx-int8" else None
                        run = self.runner(backend, calibration=calibration)
                    outs.append(run(torch.stack(tensors)))
                bar.update(len(paths[start : start + batch_size]))
        if not kept:
            first = skipped[0] if skipped else "no files given"
            raise _images.ImageError(f"none of the {len(paths)} images could be read (first: {first})")
        out = np.concatenate(outs).astype(np.float32, copy=False)
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return EmbeddedFiles(out, kept, skipped)

    def runner(
        self, backend: Backend = "auto", *, calibration: Sequence[_images.ImageInput] | None = None
    ) -> Callable[[torch.Tensor], np.ndarray]:
        """The function ``embed`` runs on each preprocessed batch (N, 3, S, S) -> (N, D).

        Exposed for benchmarks and servers that preprocess on their own. ``calibration``
        images set the int8 activation ranges (``onnx-int8`` only; default: the bundled
        samples); up to 256 of them, spread evenly, are used.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if backend == "auto":
            backend = "onnx" if _has_onnxruntime() else "torch"
        if backend in ("torch", "torch-bf16"):
            return self._torch_runner(bf16=backend == "torch-bf16")
        return self._onnx_runner(int8=backend == "onnx-int8", calibration=calibration)

    def _torch_runner(self, *, bf16: bool) -> Callable[[torch.Tensor], np.ndarray]:
        # channels_last lets oneDNN pick its fastest convolution kernels on CPU.
        if any(p.ndim == 4 for p in self.parameters()):
            self.to(memory_format=torch.channels_last)

        def run(batch: torch.Tensor) -> np.ndarray:
            device = next(self.parameters()).device
            x = batch.to(device).contiguous(memory_format=torch.channels_last)
            # Eval mode per batch, each module's own flag restored after it: embed() on a model
            # being fine-tuned must neither use nor update batch statistics, nor leave it in eval.
            with eval_mode(self), torch.inference_mode():
                with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                    return self(x).float().cpu().numpy()

        return run

    def _onnx_runner(
        self, *, int8: bool, calibration: Sequence[_images.ImageInput] | None
    ) -> Callable[[torch.Tensor], np.ndarray]:
        from zoo import onnx as zoo_onnx

        fingerprint = self.graph_key()
        if int8:
            if not calibration:
                from zoo.export import sample_images

                calibration = sample_images()
            step = max(1, len(calibration) // 256)
            calib_batches = list(_images.batches(list(calibration)[::step][:256], self.preprocess, 32))
            h = hashlib.blake2b(digest_size=8)
            h.update(zoo_onnx.runtime_version().encode())  # the quantiser is onnxruntime's
            for b in calib_batches:
                h.update(b.numpy().tobytes())
            key = f"{fingerprint}.int8-{h.hexdigest()}"
        else:
            key = fingerprint
        session = _SESSIONS.setdefault(self, {}).get(key)
        if session is None:
            # Cached graphs are verified before use, like downloads: each carries a manifest with
            # what it was made from (the weights' fingerprint; for int8, the fp32 graph and the
            # calibration) and its own sha256, and is exported again when either differs.
            folder = _onnx_cache_dir()
            fp32 = folder / f"{fingerprint}.onnx"
            size = (self.preprocess.input_size,) * 2
            if not derived.is_intact(fp32, fingerprint):
                zoo_onnx.export_onnx(self.feature_module(), fp32, size, opset=GRAPH_OPSET)
                derived.write_manifest(fp32, fingerprint, _graph_files(fp32))
            path = fp32
            if int8:
                path = folder / f"{key}.onnx"
                source = f"{derived.manifest_path(fp32).read_text(encoding='utf-8')}|{key}"
                if not derived.is_intact(path, source):
                    zoo_onnx.quantize_int8(fp32, path, (b.numpy() for b in calib_batches))
                    derived.write_manifest(path, source, _graph_files(path))
            session = zoo_onnx.OnnxEncoder(path)
            _SESSIONS[self] = {key: session}  # one session per encoder: its weights may change
        return lambda batch: session(batch.numpy())

    def graph_key(self) -> str:
        """What names this encoder's cached ONNX graph: the weights' fingerprint, the input size,
        as a graph is fixed to one size (the same weights at a test resolution chosen after
        training are another graph), whether it averages over the mirror image (``-flip``), and
        the code that exports it (:func:`zoo.derived.code_key`: zoo's derived-files version,
        torch's version, the opset)."""
        code = derived.code_key(f"opset{GRAPH_OPSET}")
        flip = "-flip" if self.preprocess.flip_average else ""
        return f"{self.fingerprint()}-{self.preprocess.input_size}px{flip}-{code}"

    def fingerprint(self) -> str:
        """A hash of the architecture and every weight, so caches follow fine-tuning."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.arch.encode())
        for k, v in self.backbone.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def save(self, directory: str | Path, *, card: bool = True) -> Path:
        """Write this encoder as a zoo folder (config.json, model.safetensors, README.md)."""
        from zoo.export import save_folder

        return save_folder(self, directory, card=card)


class FlipAverage(nn.Module):
    """``backbone``'s features averaged over the images and their left-right mirror images:
    what an :class:`Encoder` with ``preprocess.flip_average`` computes, as one module to export."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mirror_averaged(self.backbone, x)


def mirror_averaged(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of ``backbone``'s features of ``x`` and of ``x`` mirrored left-right."""
    return (backbone(x) + backbone(x.flip(-1))) / 2


@dataclass(frozen=True)
class EmbeddedFiles:
    """What :meth:`Encoder.embed_files` returns: one feature row per file in ``files`` (the
    readable ones, in input order) and, in ``skipped``, one ``"path: reason"`` per other."""

    features: np.ndarray
    files: list[Path]
    skipped: list[str]


def _readable(paths: Sequence[Path], limit: int = 256) -> list[Path]:
    """Up to ``limit`` readable files spread over ``paths``: int8 calibration images."""
    step = max(1, len(paths) // limit)
    found = []
    for p in paths[::step][:limit]:
        try:
            _images.open_image(p)
        except _images.ImageError:
            continue
        found.append(p)
    return found


def _graph_files(graph: Path) -> list[str]:
    """The files of an ONNX graph: itself, and its external weights when it has them."""
    data = graph.with_name(graph.name + ".data")
    return [graph.name, data.name] if data.is_file() else [graph.name]


def _onnx_cache_dir() -> Path:
    """Where exported graphs are cached; if the cache is read-only, a temp folder private to
    this user (see :func:`zoo.derived.private_dir`), since an export is cheap to redo and
    embedding must not fail over it."""
    from zoo.hub import cache_dir

    path = cache_dir() / "onnx"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return derived.private_dir("zoo-onnx")


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
