"""Record fields that name files (``training.recipe``, ``.curves``, ``.progress``) are joined to
zoo's own folders and read by the card renderer: an unsafe path, or a file there that is not what
its name says, is one CardError naming it, never a read outside the checkout or an
AttributeError/KeyError from deep in the renderer.

The record schema's own refusals (validate_record) are in test_hardening_record.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import zoo
import zoo.cards
from zoo.cards import CardError, render_card
from zoo.registry import ModelEntry, iter_models


def _trained(**training: str) -> ModelEntry:
    """A registered zoo-trained entry (one with a progress figure) with some training fields replaced."""
    entry = next(e for e in iter_models() if e.training is not None and e.training.progress)
    return dataclasses.replace(entry, training=dataclasses.replace(entry.training, **training))


def _checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in repository checkout for the card renderer: training/recipes and model_cards."""
    (tmp_path / "training" / "recipes").mkdir(parents=True)
    (tmp_path / "model_cards" / "curves").mkdir(parents=True)
    monkeypatch.setattr(zoo.cards, "_REPO", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipe", "/etc/passwd.yaml"),
        ("recipe", "../../etc/x.yaml"),
        ("recipe", "zoo/weights/x.safetensors"),
        ("progress", "../../../x.png"),
    ],
)
def test_an_entry_built_in_code_with_an_unsafe_path_is_refused_by_the_card(field: str, value: str) -> None:
    with pytest.raises(CardError, match=f"training.{field}") as info:
        render_card(_trained(**{field: value}))
    assert isinstance(info.value, zoo.ZooError)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("- a\n- b\n", "not a training recipe"),
        ("augment: [1, 2]\n", "not a training recipe"),
        ("a: [\n", "not valid YAML"),
        (b"\xff\xfe#\x00", "cannot read the training recipe"),
    ],
)
def test_a_recipe_that_is_not_a_recipe_is_a_card_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | bytes, named: str
) -> None:
    root = _checkout(tmp_path, monkeypatch)
    recipe = root / "training" / "recipes" / "bad.yaml"
    recipe.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CardError, match=named) as info:
        render_card(_trained(recipe="training/recipes/bad.yaml", progress=""))
    assert str(recipe) in str(info.value)


@pytest.mark.parametrize(
    "text",
    ['{"points": []}', "[1]", '{"points": [{"epoch": 1}], "reference": {}}', "[" * 100_000, "not json"],
)
def test_a_damaged_progress_json_is_a_card_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    root = _checkout(tmp_path, monkeypatch)
    (root / "model_cards" / "curves" / "p.json").write_text(text)
    with pytest.raises(CardError, match="not a progress figure's data") as info:
        render_card(_trained(progress="curves/p.png"))
    assert "p.json" in str(info.value) and "\n" not in str(info.value)


def test_the_checked_in_files_still_render() -> None:
    """A real recipe and progress data render as before (the cards test compares every card)."""
    entry = _trained()
    assert "### Compute" in render_card(entry) and "CPU-hours to epoch" in render_card(entry)
