"""Issue 14, item 5: the zoo record of a file is checked against a schema with ranges.

Each crafted record is written into a real zoo folder (``config.json``) or into a real
``model.safetensors`` header, as a hostile download would carry it. Before, some of these
gave tracebacks, attempts to allocate huge tensors, or NaN features.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import zoo
from zoo.folder import CONFIG_NAME, WEIGHTS_NAME, read_safetensors
from zoo.registry import RecordError, iter_models, validate_record


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("quarter")
    zoo.create_model("resnet18_cifar_quarter").save(folder, card=False)
    return folder


def _with(record: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    record = json.loads(json.dumps(record))
    *path, last = field.split(".")
    node = record
    for key in path:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return record


_DELETE = object()
#: A valid training record, as zoo's own trained entries carry.
_TRAINING = {
    "recipe": "training/recipes/simclr_r18q_cifar10.yaml",
    "command": "zoo train simclr_r18q_cifar10",
    "epochs": 1,
    "steps": 10,
    "batch_size": 8,
    "hardware": "1 CPU core",
    "minutes": 1.0,
    "curves": "curves/x.png",
    "progress": "curves/x-progress.png",
}

# (field to change, value, the field the error must name)
CASES = [
    ("arch", "resnet9000", "arch"),
    ("arch", ["resnet18"], "arch"),
    ("arch_kwargs", {"num_classes": 10**12}, "arch_kwargs.num_classes"),
    ("arch_kwargs", {"width": 64}, "arch_kwargs.width"),
    ("arch_kwargs", [1, 2], "arch_kwargs"),
    ("preprocess.input_size", 10**9, "preprocess.input_size"),
    ("preprocess.input_size", 10**400, "preprocess.input_size"),  # too large for a float
    ("preprocess.std", [1.0, -(10**400), 1.0], "preprocess.std[1]"),
    ("preprocess.input_size", 4, "preprocess.input_size"),
    ("preprocess.input_size", "32", "preprocess.input_size"),
    ("preprocess.input_size", True, "preprocess.input_size"),
    ("preprocess.input_size", 32.5, "preprocess.input_size"),
    ("preprocess.resize_size", 10**7, "preprocess.resize_size"),
    ("preprocess.resize_size", 16, "preprocess.resize_size"),
    ("preprocess.interpolation", "lanczos", "preprocess.interpolation"),
    ("preprocess.std", [0.0, 1.0, 1.0], "preprocess.std[0]"),
    ("preprocess.std", [1.0, -1.0, 1.0], "preprocess.std[1]"),
    ("preprocess.std", [1.0, 1.0, math.nan], "preprocess.std[2]"),
    ("preprocess.std", [1e-30, 1.0, 1.0], "preprocess.std[0]"),
    ("preprocess.std", [1.0, 1.0], "preprocess.std"),
    ("preprocess.mean", [math.inf, 0.5, 0.5], "preprocess.mean[0]"),
    ("preprocess.mean", [0.5, math.nan, 0.5], "preprocess.mean[1]"),
    ("preprocess.mean", "grey", "preprocess.mean"),
    ("preprocess.crop", 1, "preprocess.crop"),
    ("evil", "x", "evil"),
    ("name", 123, "name"),
    ("name", "../../etc", "name"),
    ("weights", "model.bin", "weights"),
    ("weights.sha256", 5, "weights.sha256"),
    (
        "measured",
        [{"dataset": "x", "protocol": "knn", "value": math.nan, "how": "", "source": ""}],
        "measured[0].value",
    ),
    ("training", {"recipe": "r"}, "training.command"),
    # Path fields are joined to zoo's folders and read or copied: only relative paths inside them.
    ("training", {**_TRAINING, "recipe": "/etc/passwd.yaml"}, "training.recipe"),
    ("training", {**_TRAINING, "recipe": "README.md"}, "training.recipe"),
    ("training", {**_TRAINING, "curves": "../../../secret.png"}, "training.curves"),
    ("training", {**_TRAINING, "curves": "curves\\..\\..\\x.png"}, "training.curves"),
    ("training", {**_TRAINING, "progress": "curves/../../x.png"}, "training.progress"),
    ("training", {**_TRAINING, "progress": 5}, "training.progress"),
    ("training", {**_TRAINING, "progress": "C:/x.png"}, "training.progress"),
    ("description", _DELETE, "description"),
]


@pytest.mark.parametrize(("field", "value", "named"), CASES, ids=[f"{c[0]}={c[1]!r}"[:40] for c in CASES])
def test_bad_config_record_is_a_weights_error_naming_the_field(
    saved: Path, tmp_path: Path, field: str, value: Any, named: str
) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["zoo"] = _with(config["zoo"], field, value)
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))  # json writes NaN/Infinity literals
    (tmp_path / WEIGHTS_NAME).symlink_to(saved / WEIGHTS_NAME)
    with pytest.raises(zoo.WeightsError) as info:
        zoo.load(tmp_path)
    message = str(info.value)
    assert f"field {named}:" in message, message
    assert str(tmp_path / CONFIG_NAME) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [c for c in CASES if c[0] in ("preprocess.input_size", "preprocess.std", "arch_kwargs", "arch")][:6],
)
def test_bad_safetensors_metadata_record_is_a_weights_error(
    saved: Path, tmp_path: Path, field: str, value: Any, named: str
) -> None:
    from safetensors.torch import save_file

    tensors, metadata = read_safetensors(saved / WEIGHTS_NAME)
    record = _with(json.loads(metadata["zoo"]), field, value)
    save_file(
        tensors, str(tmp_path / "lone.safetensors"), metadata={"format": "pt", "zoo": json.dumps(record)}
    )
    with pytest.raises(zoo.WeightsError, match=re.escape(f"field {named}:")):
        zoo.load(tmp_path / "lone.safetensors")


def test_valid_records_still_load(saved: Path) -> None:
    enc = zoo.load(saved)
    assert enc.arch == "resnet18_cifar_quarter" and enc.preprocess.input_size == 32


def test_a_valid_training_record_with_its_paths_loads(saved: Path, tmp_path: Path) -> None:
    config = json.loads((saved / CONFIG_NAME).read_text())
    config["zoo"]["training"] = _TRAINING
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    (tmp_path / WEIGHTS_NAME).symlink_to(saved / WEIGHTS_NAME)
    training = zoo.load(tmp_path).entry.training
    assert (training.recipe, training.curves, training.progress) == (
        _TRAINING["recipe"],
        _TRAINING["curves"],
        _TRAINING["progress"],
    )


def test_every_registered_entry_passes_the_schema() -> None:
    """What zoo itself writes (every registry record, as saved in config.json) is valid."""
    for entry in iter_models():
        record = json.loads(json.dumps(entry.to_dict()))
        assert validate_record(record) == entry


def test_record_error_is_a_value_error_with_the_field() -> None:
    with pytest.raises(RecordError) as info:
        validate_record({"name": "x"})
    assert isinstance(info.value, ValueError) and info.value.field == "arch"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[" * 100_000, "invalid JSON (nested too deeply)"),
        ('{"zoo": ' * 100_000, "invalid JSON (nested too deeply)"),
        ("1" * 5000, "invalid JSON"),  # over Python's 4300-digit integer limit: a ValueError
        (" " * (17 << 20) + "{}", "far more than a zoo config"),
    ],
    ids=["list", "object", "huge-int", "huge-file"],
)
def test_a_hostile_config_json_is_one_weights_error(
    saved: Path, tmp_path: Path, text: str, named: str
) -> None:
    (tmp_path / CONFIG_NAME).write_text(text)
    (tmp_path / WEIGHTS_NAME).symlink_to(saved / WEIGHTS_NAME)
    with pytest.raises(zoo.WeightsError, match=re.escape(named)) as info:
        zoo.load(tmp_path)
    assert str(tmp_path / CONFIG_NAME) in str(info.value)
    # An export into that folder is refused for what it holds, not with a RecursionError.
    with pytest.raises(zoo.ExportError, match="not empty"):
        zoo.export(zoo.load(saved), tmp_path, onnx=False)


def test_deeply_nested_safetensors_metadata_is_a_weights_error(saved: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    tensors, _ = read_safetensors(saved / WEIGHTS_NAME)
    save_file(tensors, str(tmp_path / "lone.safetensors"), metadata={"format": "pt", "zoo": "[" * 100_000})
    with pytest.raises(zoo.WeightsError, match=r"corrupted zoo metadata .*nested too deeply"):
        zoo.load(tmp_path / "lone.safetensors")
