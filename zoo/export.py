"""Export an encoder: a zoo folder (safetensors + config + card) plus ``model.onnx``.

The ONNX file is checked against PyTorch with ONNX Runtime on real images before it is
put under its final name, so an export that succeeds is one whose features match. A
``model.onnx`` already in the folder is removed before the new weights are written, so the
folder never pairs weights with the graph of other weights, even when the export fails or
is interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zoo import images as _images
from zoo.cards import render_card, render_plain_card
from zoo.encoder import Encoder
from zoo.errors import ChecksumError, ExportError, WeightsError
from zoo.folder import (
    CARD_NAME,
    CONFIG_NAME,
    ONNX_NAME,
    WEIGHTS_NAME,
    atomic_write_bytes,
    atomic_write_text,
    entry_from_config,
    read_config,
    read_safetensors,
    save_safetensors,
    zoo_config,
)
from zoo.output import check_output_folder, output_error
from zoo.registry import ModelEntry

#: Images that install with zoo (see PROVENANCE.md there), used when no others are given.
SAMPLES_DIR = Path(__file__).parent / "data" / "samples"

#: Largest ONNX-vs-PyTorch feature difference an export accepts, relative to the largest
#: feature magnitude where that is above 1 (:func:`zoo.onnx.relative_parity`).
ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    onnx: Path | None
    max_abs_diff: float | None
    images_checked: int
    #: The largest PyTorch feature magnitude on the checked images (1 when below 1): the
    #: tolerance bounds ``max_abs_diff / feature_scale``.
    feature_scale: float = 1.0


def sample_images() -> list[Path]:
    """The bundled sample images, sorted."""
    return _images.find_images(SAMPLES_DIR)


def folder_entry(encoder: Encoder) -> ModelEntry:
    """The record a folder carries: the encoder's registry entry, or a minimal one. Either states
    the encoder's own preprocessing (one set after loading, e.g. ``flip_average``, included)."""
    from zoo.registry import Weights

    if encoder.entry is not None:
        if encoder.entry.preprocess != encoder.preprocess:
            # Read another way than its record says: the record's weights file (re-saved, see
            # pinned_file) and its numbers describe the registry's preprocessing, not this one.
            return dataclasses.replace(
                encoder.entry,
                preprocess=encoder.preprocess,
                weights=Weights(sha256="", format="zoo"),
                reported=(),
                measured=(),
            )
        return encoder.entry

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


def pinned_file(encoder: Encoder) -> Path | None:
    """The installed file that the registry pins for ``encoder``, when the encoder's weights are
    exactly that file's (not fine-tuned since loading); else None.

    A folder then carries that very file rather than a re-save, whose bytes (and sha256, the one
    its card states) would differ: fp16 tensors come back as fp32, and the header record differs."""
    w = encoder.entry.weights if encoder.entry is not None else None
    # A file's header records its preprocessing too: one changed since loading needs a re-save.
    if w is not None and encoder.entry.preprocess != encoder.preprocess:
        return None
    if w is None or not w.file or w.format != "zoo" or not w.sha256:
        return None
    from zoo.loading import _package_file, _verify
    from zoo.registry import is_registered

    if not is_registered(encoder.entry.name):
        return None
    try:
        installed = _package_file(w.file)
        _verify(installed, w.sha256)
        tensors, _ = read_safetensors(installed)
    except (WeightsError, ChecksumError):  # a missing or damaged install is re-saved, not copied
        return None
    state = encoder.backbone.state_dict()
    if state.keys() != tensors.keys():
        return None
    same = all(torch.equal(t.to(state[k].dtype), state[k].detach().cpu()) for k, t in tensors.items())
    return installed if same else None


def save_folder(encoder: Encoder, directory: str | os.PathLike, *, card: bool = True) -> Path:
    """Write ``config.json``, ``model.safetensors`` and (``card=True``) ``README.md``.

    Each file is written atomically; an existing folder is updated in place. A registry
    encoder whose weights are still those of its installed file gets that file byte for byte
    (:func:`pinned_file`), so the sha256 its card states is the file's.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(e, directory) from None
    entry = folder_entry(encoder)
    pinned = pinned_file(encoder)
    if pinned is not None:
        atomic_write_bytes(directory / WEIGHTS_NAME, pinned.read_bytes())
    else:
        save_safetensors(encoder.backbone.state_dict(), directory / WEIGHTS_NAME, entry)
    atomic_write_text(directory / CONFIG_NAME, json.dumps(zoo_config(entry), indent=2) + "\n")
    if card:
        text = render_card(entry) if encoder.entry is not None else render_plain_card(encoder.arch)
        atomic_write_text(directory / CARD_NAME, text)
    return directory


def check_export_target(directory: str | os.PathLike, entry: ModelEntry, *, overwrite: bool = False) -> Path:
    """Refuse to export into a folder that holds something else, before any work is done.

    Accepted: a new folder (its parent must exist), an empty one, a zoo export of the same
    model (its ``config.json`` records the same name and architecture) or, with
    ``overwrite=True``, any folder (zoo's files in it are replaced, others are left alone).

    Raises:
        ExportError: the folder is not empty and holds no export of this model.
        OutputError: the folder cannot be written (missing parent, a file, no permission...).
    """
    directory = check_output_folder(directory)
    if overwrite or not directory.is_dir():
        return directory
    try:
        present = sorted(p.name for p in directory.iterdir())
    except OSError as e:
        raise output_error(e, directory) from None
    if not present:
        return directory
    from zoo.classifier import is_classifier_folder

    if is_classifier_folder(directory):
        # Its config.json has the encoder's name, but also the head and the class names an
        # encoder export would drop, and its model.onnx gives logits.
        raise ExportError(
            f"{directory} holds a fine-tuned classifier (encoder + head + class names); an encoder"
            " export there would drop its head. Choose a new or empty folder, or pass --overwrite"
            " (overwrite=True) to replace it"
        )
    try:
        found = entry_from_config(read_config(directory), str(directory / CONFIG_NAME))
        same = (found.name, found.arch) == (entry.name, entry.arch)
        what = f"an export of {found.name} ({found.arch})"
    except WeightsError:
        same, what = False, f"{len(present)} files that are not a zoo export (e.g. {present[0]})"
    if same:
        return directory
    raise ExportError(
        f"{directory} is not empty: it holds {what}, not an export of {entry.name}. Choose a new or"
        " empty folder, or pass --overwrite (overwrite=True) to write over it"
    )


def remove_stale_graph(directory: Path) -> None:
    """Delete the ``model.onnx`` (and its ``.data``) of a folder whose weights are about to be
    replaced: it goes first, so no moment (and no failed or interrupted write) leaves new weights
    beside the graph of the old ones."""
    for stale in (directory / ONNX_NAME, directory / f"{ONNX_NAME}.data"):
        try:
            stale.unlink(missing_ok=True)
        except OSError as e:
            raise output_error(e, stale) from None


def export(
    encoder: Encoder,
    directory: str | os.PathLike,
    *,
    onnx: bool = True,
    opset: int = 17,
    check_images: list | None = None,
    tolerance: float = ONNX_TOLERANCE,
    overwrite: bool = False,
) -> ExportReport:
    """Save ``encoder`` as a zoo folder and, with ``onnx=True``, a verified ``model.onnx``.

    The ONNX graph (dynamic batch, ``opset``) is exported to a temporary name, run by ONNX
    Runtime on ``check_images`` (default: the bundled samples) and compared with PyTorch;
    only when the max absolute difference, relative to the largest feature where that is above 1
    (:func:`zoo.onnx.relative_parity`), is below ``tolerance`` is it renamed into place.
    ``directory`` must be new, empty, or an export of the same model (see
    :func:`check_export_target`) unless ``overwrite=True``.

    Raises:
        ExportError: the folder holds something else, the export failed or the parity check
            did not pass.
        OutputError: the folder cannot be written (missing parent, disk full...).
    """
    from zoo import onnx as zoo_onnx

    if check_images is not None and not len(check_images):
        raise ExportError(
            "check_images is empty; pass images to check the ONNX graph on, or None for the bundled samples"
        )
    directory = check_export_target(directory, folder_entry(encoder), overwrite=overwrite)
    remove_stale_graph(directory)
    directory = save_folder(encoder, directory)
    if not onnx:
        return ExportReport(directory, None, None, 0)
    items = check_images if check_images is not None else sample_images()
    batch = next(_images.batches(items, encoder.preprocess, len(items)))
    try:
        # The graph is checked under its final name in a hidden folder: a graph of 2 GiB or
        # more keeps its weights in "<graph name>.data" and refers to that name from inside.
        workdir = Path(tempfile.mkdtemp(dir=directory, prefix=f".{ONNX_NAME}.", suffix=".unchecked"))
    except OSError as e:
        raise output_error(e, directory / ONNX_NAME) from None
    tmp = workdir / ONNX_NAME
    try:
        # The encoder's features: its backbone's, averaged with the mirror image's if it says so.
        module = encoder.feature_module()
        zoo_onnx.export_onnx(module, tmp, (encoder.preprocess.input_size,) * 2, opset=opset)
        diff, scale = zoo_onnx.relative_parity(module, tmp, batch)
        if not np.isfinite(diff) or diff >= tolerance:
            raise ExportError(
                f"ONNX Runtime features differ from PyTorch by {diff:.3g} ({zoo_onnx.parity_how(scale)}) on"
                f" {len(batch)} images, above the tolerance {tolerance:g}; model.onnx was not written"
            )
        zoo_onnx.publish_graph(workdir, tmp, directory / ONNX_NAME)
    except OSError as e:
        raise output_error(e, directory / ONNX_NAME) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return ExportReport(directory, directory / ONNX_NAME, diff * scale, len(batch), scale)
