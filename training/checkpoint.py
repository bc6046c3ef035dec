"""Checkpoints that resume exactly: one file, written atomically, read with weights_only.

``checkpoint.pt`` holds only tensors, numbers and strings (``torch.load(weights_only=True)``
reads it, so a checkpoint cannot run code): the method's state dict (backbone, heads,
momentum encoders, queues, DINO's centre), the optimiser's and the gradient scaler's state,
torch's RNG states, and a JSON string with the counters, numpy's and Python's RNG states
and the recipe. It replaces the previous one in a single rename, so the file on disk is
always a complete checkpoint of a step whose loss was finite. A write killed before that
rename (kill -9, power loss) leaves a hidden ``.checkpoint.pt.*.tmp`` beside it, as large as
a checkpoint; the run's next :func:`save_checkpoint`, or its trainer resuming
(:func:`load_checkpoint` with ``owner=True``), deletes such orphans (:func:`remove_orphans`).
Readers that do not own the run (evaluation scripts, ``pack``) never delete anything: beside a
live run, a temporary file may be a write in flight.

A checkpoint can also travel as parts no larger than a limit (:func:`pack_checkpoint`:
``checkpoint.pt.part-00``, ``-01``, ... and the manifest ``checkpoint.pt.parts.json`` with the
SHA-256 of each part and of the whole), for a repository that refuses large files: a run that
must continue on another machine commits its parts, and ``--resume`` on a fresh clone joins
them in memory, checks every hash and continues bit-exactly. Where both a checkpoint and parts
exist, the later step wins.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.folder import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.pt"
PARTS_SUFFIX = ".parts.json"
PARTS_FORMAT = "zoo checkpoint parts 1"
#: Below GitHub's 50 MiB warning and this project's 30 MiB limit per file, with room to spare.
DEFAULT_PART_MIB = 25
#: Recipe keys that may differ between a run and its resume (besides every ``run.*``).
RESUMABLE_CHANGES = ("train.epochs", "train.max_steps", "train.threads", "train.compile", "augment.workers")
#: ``run.*`` keys that may not change on resume.
FIXED_RUN_KEYS = ("run.knn_split",)


class CheckpointError(ZooError):
    """A checkpoint that cannot be resumed from (missing, damaged, another recipe)."""


@dataclass
class Progress:
    """Where a run is: the next step to run and the results so far."""

    step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch
    step_in_epoch: int = 0  # steps done in the current epoch
    knn: list[dict[str, Any]] = field(default_factory=list)  # monitor results
    #: ``[first step, train.epochs]`` of each stretch of the run: one, unless a resume changed
    #: ``train.epochs`` (a run lengthened from 200 to 400 epochs at step 39,000 has
    #: ``[[0, 200], [39000, 400]]``). The learning-rate and momentum schedules are functions of
    #: the length, so the card's reproduce commands retrace each stretch.
    lengths: list[list[int]] = field(default_factory=list)

    def set_length(self, epochs: int) -> None:
        """Record that the run follows a schedule of ``epochs`` from this step on."""
        if self.lengths and self.lengths[-1][1] == epochs:
            return
        if self.lengths and self.lengths[-1][0] == self.step:  # changed again before any step
            self.lengths.pop()
            if self.lengths and self.lengths[-1][1] == epochs:
                return
        self.lengths.append([self.step, epochs])


def rng_state() -> dict[str, Any]:
    """numpy's and Python's global RNG states as JSON-able values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "python": [version, list(internal), py_gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    progress: Progress,
    recipe: dict[str, Any],
) -> Path:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
        "torch_rng": torch.get_rng_state(),
        # This process's device only: a run may resume on fewer GPUs than saved it.
        "cuda_rng": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else [],
        "state": json.dumps(
            {"progress": vars(progress), "rng": rng_state(), "recipe": recipe}, separators=(",", ":")
        ),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    remove_orphans(Path(path).parent, Path(path).name)
    return atomic_write_bytes(path, buf.getvalue())


def remove_orphans(out_dir: str | Path, name: str = CHECKPOINT_NAME) -> list[Path]:
    """Delete the temporary files that interrupted writes of ``out_dir/name`` left behind.

    Only the run's own process writes its checkpoint, so any such file is an orphan: its write
    was killed before the rename that publishes it. Returns the files deleted.
    """
    # Exactly what zoo.folder.atomic_write_bytes names its temporary file for ``name``
    # (mkstemp: 8 random characters): not the temporaries of checkpoint.pt.part-00 or
    # checkpoint.pt.parts.json, which a pack beside the run may be writing.
    pattern = re.compile(rf"\.{re.escape(name[:32])}\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    for tmp in Path(out_dir).glob(f".{name[:32]}.*.tmp"):
        if not pattern.fullmatch(tmp.name):
            continue
        try:
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # best effort: a leftover must never stop training
    return removed


def resume_note(out_dir: str | Path, resume: bool) -> str | None:
    """What to tell the user when ``resume`` was asked for and there is nothing to resume."""
    path = Path(out_dir) / CHECKPOINT_NAME
    if resume and not has_checkpoint(path):
        return f"--resume: no checkpoint at {path} (nothing to resume); starting a new run there"
    return None


def parts_manifest(path: str | Path) -> Path:
    """Where the manifest of ``path``'s parts lives: ``checkpoint.pt.parts.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + PARTS_SUFFIX)


def has_checkpoint(path: str | Path) -> bool:
    """Whether there is a checkpoint to resume from at ``path``, whole or as parts."""
    return Path(path).is_file() or parts_manifest(path).is_file()


def _progress_of(data: bytes, where: str) -> dict[str, Any]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return json.loads(state["state"])["progress"]
    except Exception as e:  # torch raises several private types for damaged files
        raise CheckpointError(f"{where}: damaged checkpoint ({e}); delete it to start over") from None


def pack_checkpoint(path: str | Path, part_bytes: int = DEFAULT_PART_MIB << 20) -> list[Path]:
    """Write the checkpoint at ``path`` as parts of at most ``part_bytes`` beside it, and
    their manifest last; parts of an earlier packing that are no longer needed are deleted.
    Returns the files written, manifest last. The checkpoint itself is left in place."""
    path = Path(path)
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be >= 1, got {part_bytes}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to pack")
    data = path.read_bytes()
    progress = _progress_of(data, str(path))  # never publish parts of a damaged file
    parts, written = [], []
    count = -(-len(data) // part_bytes)
    for i in range(count):
        chunk = data[i * part_bytes : (i + 1) * part_bytes]
        name = f"{path.name}.part-{i:02d}"
        written.append(atomic_write_bytes(path.with_name(name), chunk))
        parts.append({"name": name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    manifest = {
        "format": PARTS_FORMAT,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "step": progress["step"],
        "epoch": progress["epoch"],
        "parts": parts,
    }
    written.append(atomic_write_bytes(parts_manifest(path), (json.dumps(manifest, indent=1) + "\n").encode()))
    keep = {p["name"] for p in parts}
    for stale in path.parent.glob(f"{path.name}.part-*"):
        if stale.name not in keep and _part_name(path).fullmatch(stale.name):
            stale.unlink()
    return written


def _part_name(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(path.name) + r"\.part-\d{2,}")


def _joined_parts(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The checkpoint that ``path``'s parts hold, every hash checked, and its manifest."""
    manifest_path = parts_manifest(path)
    try:
        manifest = json.loads(manifest_path.read_text())
        parts = manifest["parts"]
        ok = (
            manifest["format"] == PARTS_FORMAT
            and isinstance(parts, list)
            and parts
            and isinstance(manifest["step"], int)
            and all(isinstance(p["name"], str) and _part_name(path).fullmatch(p["name"]) for p in parts)
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{manifest_path}: not a checkpoint-parts manifest ({e})") from None
    if not ok:
        raise CheckpointError(
            f"{manifest_path}: not a {PARTS_FORMAT!r} manifest naming parts {path.name}.part-NN"
        )
    chunks = []
    for p in parts:
        part = path.with_name(p["name"])
        if not part.is_file():
            raise CheckpointError(f"{part}: missing part of the checkpoint {manifest_path} describes")
        chunk = part.read_bytes()
        if hashlib.sha256(chunk).hexdigest() != p.get("sha256"):
            raise CheckpointError(
                f"{part}: damaged part (its SHA-256 is not the manifest's); pack the checkpoint again"
                " from the machine that wrote it, or delete the parts to start over"
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    if len(data) != manifest.get("bytes") or hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise CheckpointError(f"{manifest_path}: the joined parts are not the checkpoint it describes")
    return data, manifest


def read_checkpoint_bytes(path: str | Path) -> tuple[bytes, str]:
    """The bytes of the checkpoint at ``path`` and where they came from: the file itself, or
    its parts where there is no file or the parts hold a later step."""
    path = Path(path)
    if not parts_manifest(path).is_file():
        if not path.is_file():
            raise CheckpointError(f"{path}: no checkpoint to resume from")
        return path.read_bytes(), str(path)
    joined, manifest = _joined_parts(path)
    source = f"{len(manifest['parts'])} parts of {path}"
    if not path.is_file():
        return joined, source
    data = path.read_bytes()
    # The manifest's step is the joined checkpoint's: pack wrote both, and the hash ties them.
    if manifest["step"] > _progress_of(data, str(path))["step"]:
        return joined, source  # e.g. parts committed on another machine, pulled here
    return data, str(path)


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    recipe: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    owner: bool = False,
) -> Progress:
    """Restore everything :func:`save_checkpoint` wrote; returns the run's progress. ``log``
    (when given) is told where the checkpoint came from: the file, or its parts.

    ``recipe`` (when given) must match the checkpoint's in everything that shapes the
    trajectory: resuming under another recipe would not continue the same run. ``owner``: the
    caller is the run's trainer, resuming it, and deletes orphans of killed checkpoint writes.
    """
    path = Path(path)
    data, source = read_checkpoint_bytes(path)
    if owner:
        remove_orphans(path.parent, path.name)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        meta = json.loads(state["state"])
    except Exception as e:  # torch raises several private types for damaged files
        raise CheckpointError(f"{source}: damaged checkpoint ({e}); delete it to start over") from None
    if recipe is not None:
        from zoo.training.recipe import RecipeError, recipe_from_dict

        try:
            # Rebuilt through the dataclasses, so keys added to zoo after the checkpoint was
            # written take their defaults. Those keep the behaviour the run had, with three
            # exceptions of session 26 (VICReg's halved variance term, DINO's head over all
            # crops, MoCo v3's per-backbone heads: training/README.md): runs of those methods
            # started by older code are to be started again, not resumed.
            saved = recipe_from_dict(meta["recipe"]).to_dict()
        except RecipeError as e:
            raise CheckpointError(f"{path}: the checkpoint's recipe no longer loads ({e})") from None
        diff = _differences(saved, recipe, "")
        # Run-level settings (logging, export, how long, how fast) may change on resume;
        # compiled kernels may round differently from eager ones, so a resume is bit-exact
        # only under the same train.compile. The monitor's split may not: knn.csv would hold
        # readings of two splits in one column.
        diff = [
            k
            for k in diff
            if k in FIXED_RUN_KEYS or (not k.startswith("run.") and k not in RESUMABLE_CHANGES)
        ]
        if diff:
            raise CheckpointError(
                f"{path}: the recipe differs from the checkpoint's in {', '.join(diff)}; resume with"
                " the same recipe or start a new run (another run.out_dir)"
            )
        # A run lengthened on an earlier resume (train.epochs=400) is resumed from the recipe file
        # again, which still says the old length: without the override it would end at once and
        # export. A recipe that shortens the run to where it already is, or before, is refused; a
        # finished run resumed with its own length (to export again) is not.
        epoch, before = meta["progress"]["epoch"], saved["train"]["epochs"]
        after = recipe.get("train", {}).get("epochs", before)
        if after < before and after <= epoch:
            raise CheckpointError(
                f"{path}: the checkpoint's run has train.epochs={before} and has completed {epoch} epochs"
                f" (step {meta['progress']['step']}); the recipe's train.epochs={after} would end it"
                f" here. Resume with train.epochs={before} to go on (or a larger value to lengthen it;"
                " to read the run where it stands, python -m zoo.training.interim)"
            )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    cuda_rng = state["cuda_rng"]
    if cuda_rng and torch.cuda.is_available():
        # One state (this process's device); checkpoints of older code hold one per device.
        torch.cuda.set_rng_state(cuda_rng[min(torch.cuda.current_device(), len(cuda_rng) - 1)])
    set_rng_state(meta["rng"])
    progress = Progress(**meta["progress"])
    if not progress.lengths and "epochs" in meta["recipe"].get("train", {}):
        # Checkpoints written before lengths were recorded: a run of one length, as far as the
        # checkpoint can tell (one lengthened before then says so only in its log).
        progress.lengths = [[0, meta["recipe"]["train"]["epochs"]]]
    if log is not None:
        log(f"resumed from {source} at step {progress.step} (epoch {progress.epoch})")
        before = meta["recipe"].get("train", {}).get("epochs")
        after = (recipe or {}).get("train", {}).get("epochs")
        if before is not None and after is not None and before != after:
            # Allowed (a run may be lengthened), but the cosine learning-rate and momentum
            # schedules are functions of the whole length: both jump at this step.
            log(
                f"train.epochs changed from {before} to {after}: the learning-rate and momentum"
                f" schedules now follow a {after}-epoch run from step {progress.step}, so both jump"
                " to that schedule's values here"
            )
    return progress


def _differences(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        a, b = list(a), list(b)
    return [] if a == b else [prefix]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.checkpoint",
        description="Pack a run's checkpoint into parts small enough to commit; --resume joins them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="write RUN_DIR/checkpoint.pt as parts and their manifest")
    pack.add_argument("run_dir", type=Path, help="a zoo train run.out_dir")
    pack.add_argument("--part-mib", type=float, default=DEFAULT_PART_MIB, help="largest part, MiB")
    args = parser.parse_args(argv)
    try:
        written = pack_checkpoint(args.run_dir / CHECKPOINT_NAME, int(args.part_mib * (1 << 20)))
    except (CheckpointError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    manifest = json.loads(written[-1].read_text())
    print(
        f"{args.run_dir / CHECKPOINT_NAME}: step {manifest['step']} (epoch {manifest['epoch']}) in"
        f" {len(written) - 1} parts of at most {args.part_mib:g} MiB; commit them with"
        f" git add -f {' '.join(str(p) for p in written)}"
    )


if __name__ == "__main__":
    main()
