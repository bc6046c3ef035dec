"""Fixtures of the training tests: tiny recipes over the real CIFAR-10 images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CIFAR = Path(__file__).resolve().parents[1] / ".." / ".." / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    root = CIFAR.resolve()
    if not (root / "train").is_dir():
        pytest.fail(f"real data not found at {root}; the repository expects ../shared/data beside it")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, cifar_root: Path) -> Path:
    """3 CIFAR-10 classes, 12 train and 6 test images each (copied into a temp folder)."""
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 12), ("test", 6)):
        for cls in ("airplane", "cat", "ship"):
            (root / split / cls).mkdir(parents=True)
            for f in sorted((cifar_root / split / cls).iterdir())[:n]:
                shutil.copy(f, root / split / cls / f.name)
    return root
