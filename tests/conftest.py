"""Shared fixtures: the real data in ../shared/data, an isolated ZOO_HOME, the default encoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session", autouse=True)
def _isolated_zoo_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test run gets its own cache, so nothing depends on (or pollutes) ~/.cache/zoo.

    Tests that need an empty cache of their own monkeypatch ZOO_HOME again.
    """
    old = os.environ.get("ZOO_HOME")
    os.environ["ZOO_HOME"] = str(tmp_path_factory.mktemp("zoo_home"))
    os.environ.pop("ZOO_OFFLINE", None)
    yield
    if old is None:
        os.environ.pop("ZOO_HOME", None)
    else:
        os.environ["ZOO_HOME"] = old


@pytest.fixture(autouse=True)
def _registry_as_found():
    """Every test leaves the model registry as it found it. Tests that register entries patch
    ``_MODELS``, but registering also writes the default-tag table: a test registering
    ``supervised-tofu.zoo`` left the tag ``supervised-tofu`` behind, and a later test listing
    the hub entry points (tests/test_hubconf.py) failed on it, depending on the order."""
    from zoo import registry

    models, tags = dict(registry._MODELS), dict(registry._DEFAULT_TAGS)
    yield
    for table, saved in ((registry._MODELS, models), (registry._DEFAULT_TAGS, tags)):
        if table != saved:
            table.clear()
            table.update(saved)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "imagenette").is_dir():
        pytest.fail(f"real data not found at {DATA}; the repository expects ../shared/data beside it")
    return DATA


def pick(split_dir: Path, per_class: int, classes: int | None = None) -> tuple[list[Path], list[int]]:
    """The first ``per_class`` images of the first ``classes`` classes of an ImageFolder split."""
    dirs = sorted(d for d in split_dir.iterdir() if d.is_dir())[:classes]
    files, labels = [], []
    for i, d in enumerate(dirs):
        found = sorted(d.iterdir())[:per_class]
        files += found
        labels += [i] * len(found)
    return files, labels


@pytest.fixture(scope="session")
def pick_images():
    """:func:`pick`, for test modules (a conftest cannot be imported by name: there are two)."""
    return pick


@pytest.fixture(scope="session")
def imagenette_val(data_root: Path) -> tuple[list[Path], list[int]]:
    """6 images of each of the 10 Imagenette classes (val split)."""
    return pick(data_root / "imagenette" / "val", 6)


@pytest.fixture(scope="session")
def cifar_test(data_root: Path) -> tuple[list[Path], list[int]]:
    return pick(data_root / "cifar10" / "test", 4)


@pytest.fixture(scope="session")
def default_encoder():
    import zoo

    return zoo.load(zoo.DEFAULT_MODEL)
