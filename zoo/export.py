"""Export an encoder: a zoo folder (safetensors + config + card) plus ``model.onnx``.

The ONNX file is checked against PyTorch with ONNX Runtime on real images before it is
put under its final name, so an export that succeeds is one whose features match.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo import images as _images
from zoo.cards import render_card, render_plain_card
from zoo.encoder import Encoder
from zoo.errors import CacheError, ExportError
from zoo.folder import (
    CARD_NAME,
    CONFIG_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    atomic_write_text,
    save_safetensors,
    zoo_config,
)
from zoo.registry import ModelEntry

#: Images that install with zoo (see PROVENANCE.md there), used when no others are given.
SAMPLES_DIR = Path(__file__).parent / "data" / "samples"

ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    onnx: Path | None
    max_abs_diff: float | None
    images_checked: int


def sample_images() -> list[Path]:
    """The bundled sample images, sorted."""
    return _images.find_images(SAMPLES_DIR)


def folder_entry(encoder: Encoder) -> ModelEntry:
    """The record a folder carries: the encoder's registry entry, or a minimal one."""
    if encoder.entry is not None:
        return encoder.entry
    from zoo.registry import Weights

    return ModelEntry(
        name="custom-" + encoder.arch.replace("_", "-"),
        arch=encoder.arch,
        method="unknown",
        weights=Weights(sha256="", format="zoo"),
        license="unknown",
        paper="",
        description=f"An encoder of architecture {encoder.arch} saved by zoo, with no registry record.",
        dataset="unknown",
        preprocess=encoder.preprocess,
    )


def save_folder(encoder: Encoder, directory: str | os.PathLike, *, card: bool = True) -> Path:
    """Write ``config.json``, ``model.safetensors`` and (``card=True``) ``README.md``.

    Each file is written atomically; an existing folder is updated in place.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"cannot create the output folder {directory} ({e.strerror or e})") from None
    entry = folder_entry(encoder)
    save_safetensors(encoder.backbone.state_dict(), directory / WEIGHTS_NAME, entry)
    atomic_write_text(directory / CONFIG_NAME, json.dumps(zoo_config(entry), indent=2) + "\n")
    if card:
        text = render_card(entry) if encoder.entry is not None else render_plain_card(encoder.arch)
        atomic_write_text(directory / CARD_NAME, text)
    return directory


def export(
    encoder: Encoder,
    directory: str | os.PathLike,
    *,
    onnx: bool = True,
    opset: int = 17,
    check_images: list | None = None,
    tolerance: float = ONNX_TOLERANCE,
) -> ExportReport:
    """Save ``encoder`` as a zoo folder and, with ``onnx=True``, a verified ``model.onnx``.

    The ONNX graph (dynamic batch, ``opset``) is exported to a temporary name, run by ONNX
    Runtime on ``check_images`` (default: the bundled samples) and compared with PyTorch;
    only when the max absolute difference is below ``tolerance`` is it renamed into place.

    Raises:
        ExportError: the export failed or the parity check did not pass.
    """
    from zoo import onnx as zoo_onnx

    directory = save_folder(encoder, directory)
    if not onnx:
        return ExportReport(directory, None, None, 0)
    items = check_images if check_images is not None else sample_images()
    batch = next(_images.batches(items, encoder.preprocess, len(items)))
    tmp = directory / f".{ONNX_NAME}.unchecked"
    try:
        zoo_onnx.export_onnx(encoder.backbone, tmp, (encoder.preprocess.input_size,) * 2, opset=opset)
        diff = zoo_onnx.parity(encoder.backbone, tmp, batch)
        if not np.isfinite(diff) or diff >= tolerance:
            raise ExportError(
                f"ONNX Runtime features differ from PyTorch by {diff:.3g} (max abs) on {len(batch)}"
                f" images, above the tolerance {tolerance:g}; model.onnx was not written"
            )
        os.replace(tmp, directory / ONNX_NAME)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(directory, directory / ONNX_NAME, diff, len(batch))
