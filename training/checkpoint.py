"""Checkpoints that resume exactly: one file, written atomically, read with weights_only.

``checkpoint.pt`` holds only tensors, numbers and strings (``torch.load(weights_only=True)``
reads it, so a checkpoint cannot run code): the method's state dict (backbone, heads,
momentum encoders, queues, DINO's centre), the optimiser's and the gradient scaler's state,
torch's RNG states, and a JSON string with the counters, numpy's and Python's RNG states
and the recipe. It replaces the previous one in a single rename, so the file on disk is
always a complete checkpoint of a step whose loss was finite. A write killed before that
rename (kill -9, power loss) leaves a hidden ``.checkpoint.pt.*.tmp`` beside it, as large as
a checkpoint; the next :func:`save_checkpoint` or :func:`load_checkpoint` of the run deletes
such orphans (:func:`remove_orphans`).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.folder import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.pt"
#: Recipe keys that may differ between a run and its resume (besides every ``run.*``).
RESUMABLE_CHANGES = ("train.epochs", "train.max_steps", "train.threads", "train.compile", "augment.workers")


class CheckpointError(ZooError):
    """A checkpoint that cannot be resumed from (missing, damaged, another recipe)."""


@dataclass
class Progress:
    """Where a run is: the next step to run and the results so far."""

    step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch
    step_in_epoch: int = 0  # steps done in the current epoch
    knn: list[dict[str, Any]] = field(default_factory=list)  # monitor results


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
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
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
    removed = []
    for tmp in Path(out_dir).glob(f".{name}.*.tmp"):
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
    if resume and not path.is_file():
        return f"--resume: no checkpoint at {path} (nothing to resume); starting a new run there"
    return None


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    recipe: dict[str, Any] | None = None,
) -> Progress:
    """Restore everything :func:`save_checkpoint` wrote; returns the run's progress.

    ``recipe`` (when given) must match the checkpoint's in everything that shapes the
    trajectory: resuming under another recipe would not continue the same run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    remove_orphans(path.parent, path.name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(state["state"])
    except Exception as e:  # torch raises several private types for damaged files
        raise CheckpointError(f"{path}: damaged checkpoint ({e}); delete it to start over") from None
    if recipe is not None:
        from zoo.training.recipe import RecipeError, recipe_from_dict

        try:
            # Rebuilt through the dataclasses, so keys added to zoo after the checkpoint was
            # written take their defaults (which keep the behaviour the run had).
            saved = recipe_from_dict(meta["recipe"]).to_dict()
        except RecipeError as e:
            raise CheckpointError(f"{path}: the checkpoint's recipe no longer loads ({e})") from None
        diff = _differences(saved, recipe, "")
        # Run-level settings (logging, export, how long, how fast) may change on resume;
        # compiled kernels may round differently from eager ones, so a resume is bit-exact
        # only under the same train.compile.
        diff = [k for k in diff if not k.startswith("run.") and k not in RESUMABLE_CHANGES]
        if diff:
            raise CheckpointError(
                f"{path}: the recipe differs from the checkpoint's in {', '.join(diff)}; resume with"
                " the same recipe or start a new run (another run.out_dir)"
            )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    set_rng_state(meta["rng"])
    return Progress(**meta["progress"])


def _differences(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        a, b = list(a), list(b)
    return [] if a == b else [prefix]
