"""Issue 14, item 9: a checkpoint write killed half-way leaves no orphan for ever.

The orphan is made the way it happens: a process is killed (SIGKILL) inside
``save_checkpoint``, after the temporary file is written and before the rename.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from zoo.training.checkpoint import (
    CHECKPOINT_NAME,
    Progress,
    load_checkpoint,
    remove_orphans,
    resume_note,
    save_checkpoint,
)


def _parts() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def _save(out: Path, step: int) -> None:
    model, opt = _parts()
    save_checkpoint(
        out / CHECKPOINT_NAME,
        model=model,
        optimizer=opt,
        scaler=None,
        progress=Progress(step=step),
        recipe={},
    )


_KILLED_SAVE = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
import zoo.folder
from test_hardening_checkpoint import _save
from pathlib import Path
real = os.replace
def die(src, dst):
    os.kill(os.getpid(), signal.SIGKILL)  # after the temp file is complete, before the rename
zoo.folder.os.replace = die
_save(Path({out!r}), 7)
"""


def _orphans(out: Path) -> list[Path]:
    return sorted(out.glob(f".{CHECKPOINT_NAME}.*.tmp"))


@pytest.fixture(scope="module")
def orphan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp file a checkpoint write killed by SIGKILL leaves (made once: a child process)."""
    if sys.platform == "win32":
        pytest.skip("SIGKILL")
    out = tmp_path_factory.mktemp("killed")
    code = _KILLED_SAVE.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    found = _orphans(out)
    assert len(found) == 1 and found[0].stat().st_size > 64 * 64 * 4  # a whole checkpoint
    assert not (out / CHECKPOINT_NAME).exists()
    return found[0]


def test_orphan_of_a_killed_write_is_removed_when_the_run_resumes(tmp_path: Path, orphan: Path) -> None:
    _save(tmp_path, 3)
    shutil.copy(orphan, tmp_path / orphan.name)
    model, opt = _parts()
    # A reader that does not own the run leaves it: beside a live run it may be a write in flight.
    load_checkpoint(tmp_path / CHECKPOINT_NAME, model=model, optimizer=opt, scaler=None)
    assert _orphans(tmp_path) == [tmp_path / orphan.name]
    path = tmp_path / CHECKPOINT_NAME
    progress = load_checkpoint(path, model=model, optimizer=opt, scaler=None, owner=True)
    assert progress.step == 3
    assert _orphans(tmp_path) == []


def test_orphan_is_removed_by_the_next_save(tmp_path: Path, orphan: Path) -> None:
    # Killed during the very first checkpoint: nothing to resume, the next save cleans up.
    shutil.copy(orphan, tmp_path / orphan.name)
    _save(tmp_path, 1)
    assert _orphans(tmp_path) == [] and (tmp_path / CHECKPOINT_NAME).is_file()


def test_remove_orphans_leaves_other_files_alone(tmp_path: Path) -> None:
    keep = [
        tmp_path / CHECKPOINT_NAME,
        tmp_path / ".metrics.csv.abcd1234.tmp",
        tmp_path / "notes.tmp",
        # a pack's parts being written beside the run
        tmp_path / f".{CHECKPOINT_NAME}.part-00.ab12cd34.tmp",
        tmp_path / f".{CHECKPOINT_NAME}.parts.json.x1y2z3w4.tmp",
    ]
    for f in keep:
        f.write_bytes(b"x")
    (tmp_path / f".{CHECKPOINT_NAME}.q1w2e3r4.tmp").write_bytes(b"y")
    assert [p.name for p in remove_orphans(tmp_path)] == [f".{CHECKPOINT_NAME}.q1w2e3r4.tmp"]
    assert all(f.exists() for f in keep)


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    note = resume_note(tmp_path, resume=True)
    assert note is not None and "no checkpoint" in note and str(tmp_path / CHECKPOINT_NAME) in note
    assert resume_note(tmp_path, resume=False) is None
    _save(tmp_path, 1)
    assert resume_note(tmp_path, resume=True) is None
