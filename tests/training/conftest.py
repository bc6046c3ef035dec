"""Fixtures of the training tests: tiny recipes over the real CIFAR-10 images."""

from __future__ import annotations

from pathlib import Path

import pytest

CIFAR = Path(__file__).resolve().parents[1] / ".." / ".." / "shared" / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    root = CIFAR.resolve()
    if not (root / "train").is_dir():
        pytest.fail(f"real data not found at {root}; the repository expects ../shared/data beside it")
    return root
