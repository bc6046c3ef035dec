"""A checkpoint carried as parts small enough to commit (``python -m zoo.training.checkpoint
pack``) resumes a run bit-exactly on a clone that has only the parts; damaged, missing or
forged parts stop with an error that names the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _train_recipes import tiny_recipe
from zoo.training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    main,
    pack_checkpoint,
    parts_manifest,
    read_checkpoint_bytes,
)
from zoo.training.loop import Trainer, read_csv
from zoo.training.recipe import recipe_from_dict

from zoo.errors import ZooError

PART = 1 << 20  # the tiny MoCo v2 checkpoint (~8.5 MB) splits into 9 parts


def _losses(run_dir: Path) -> list[tuple[int, str]]:
    return [(int(r["step"]), r["loss"]) for r in read_csv(run_dir / "metrics.csv")]


def _recipe(out: Path, cifar_root: Path, **overrides):
    return recipe_from_dict(tiny_recipe(out, cifar_root, "moco_v2", train__epochs=3, **overrides))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, cifar_root: Path) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    Trainer(_recipe(out, cifar_root)).fit()
    return out


@pytest.fixture
def packed(tmp_path: Path, cifar_root: Path) -> Path:
    """A run stopped at step 7 (a checkpoint is written when a step cap stops it), packed."""
    out = tmp_path / "run"
    Trainer(_recipe(out, cifar_root, train__max_steps=7)).fit()
    pack_checkpoint(out / CHECKPOINT_NAME, PART)
    return out


def test_a_clone_with_only_the_parts_resumes_exactly(packed: Path, full_run: Path, cifar_root: Path) -> None:
    parts = sorted(packed.glob(f"{CHECKPOINT_NAME}.part-*"))
    size = (packed / CHECKPOINT_NAME).stat().st_size
    assert len(parts) == -(-size // PART) > 2 and all(p.stat().st_size <= PART for p in parts)
    manifest = json.loads(parts_manifest(packed / CHECKPOINT_NAME).read_text())
    assert (manifest["step"], manifest["bytes"]) == (7, size)
    (packed / CHECKPOINT_NAME).unlink()  # what a fresh clone has: the committed parts only

    logged: list[str] = []
    trainer = Trainer(_recipe(packed, cifar_root), resume=True)
    trainer.log = logged.append
    trainer.fit()
    assert f"resumed from {len(parts)} parts of {packed / CHECKPOINT_NAME} at step 7 (epoch 1)" in logged
    assert _losses(packed) == _losses(full_run)
    assert len(_losses(full_run)) == 3 * 5


def test_without_resume_the_parts_are_not_overwritten(packed: Path, cifar_root: Path) -> None:
    (packed / CHECKPOINT_NAME).unlink()
    with pytest.raises(ZooError, match=r"checkpoint.pt.parts.json exists: pass --resume"):
        Trainer(_recipe(packed, cifar_root)).fit()


def test_the_later_of_checkpoint_and_parts_wins(packed: Path, cifar_root: Path) -> None:
    ckpt = packed / CHECKPOINT_NAME
    at_step_7 = ckpt.read_bytes()
    assert read_checkpoint_bytes(ckpt) == (at_step_7, str(ckpt))  # equal steps: the file
    Trainer(_recipe(packed, cifar_root, train__max_steps=10), resume=True).fit()
    assert read_checkpoint_bytes(ckpt) == (ckpt.read_bytes(), str(ckpt))  # the file is later
    later = ckpt.read_bytes()
    pack_checkpoint(ckpt, PART)  # e.g. committed on the other machine
    ckpt.write_bytes(at_step_7)  # and this machine's copy is older
    data, source = read_checkpoint_bytes(ckpt)
    assert data == later and source.endswith(f"parts of {ckpt}")


def test_repacking_a_smaller_checkpoint_removes_parts_no_longer_listed(packed: Path) -> None:
    ckpt = packed / CHECKPOINT_NAME
    before = sorted(packed.glob(f"{CHECKPOINT_NAME}.part-*"))
    pack_checkpoint(ckpt, PART * 4)
    after = sorted(packed.glob(f"{CHECKPOINT_NAME}.part-*"))
    assert len(after) < len(before) and after == before[: len(after)]
    ckpt.unlink()
    data, _ = read_checkpoint_bytes(ckpt)
    assert len(data) == json.loads(parts_manifest(ckpt).read_text())["bytes"]


def test_a_damaged_part_is_named(packed: Path) -> None:
    ckpt = packed / CHECKPOINT_NAME
    ckpt.unlink()
    part = packed / f"{CHECKPOINT_NAME}.part-01"
    data = bytearray(part.read_bytes())
    data[100] ^= 1
    part.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"part-01: damaged part"):
        read_checkpoint_bytes(ckpt)


def test_a_missing_part_is_named(packed: Path) -> None:
    (packed / CHECKPOINT_NAME).unlink()
    (packed / f"{CHECKPOINT_NAME}.part-02").unlink()
    with pytest.raises(CheckpointError, match=r"part-02: missing part"):
        read_checkpoint_bytes(packed / CHECKPOINT_NAME)


def test_a_manifest_cannot_point_outside_the_run(packed: Path) -> None:
    ckpt = packed / CHECKPOINT_NAME
    manifest = parts_manifest(ckpt)
    m = json.loads(manifest.read_text())
    m["parts"][0]["name"] = "../../etc/passwd"
    manifest.write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match=r"naming parts checkpoint.pt.part-NN"):
        read_checkpoint_bytes(ckpt)
    manifest.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"not a checkpoint-parts manifest"):
        read_checkpoint_bytes(ckpt)


def test_a_damaged_checkpoint_is_never_packed(tmp_path: Path) -> None:
    ckpt = tmp_path / CHECKPOINT_NAME
    ckpt.write_bytes(b"\0" * 1000)
    with pytest.raises(CheckpointError, match=r"damaged checkpoint"):
        pack_checkpoint(ckpt, PART)
    assert not parts_manifest(ckpt).exists() and not list(tmp_path.glob("*.part-*"))


def test_the_command_prints_what_to_commit(packed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["pack", str(packed), "--part-mib", "2.5"])
    out = capsys.readouterr().out
    parts = -(-(packed / CHECKPOINT_NAME).stat().st_size // (5 << 19))
    assert f"step 7 (epoch 1) in {parts} parts of at most 2.5 MiB" in out
    assert f"git add -f {packed / CHECKPOINT_NAME}.part-00" in out and out.rstrip().endswith("parts.json")
    with pytest.raises(SystemExit, match=r"no checkpoint to pack"):
        main(["pack", str(packed / "nowhere")])
