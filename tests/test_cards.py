"""Model cards: one per registry entry, equal to the registry's record."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import zoo
from zoo.cards import front_matter, render_card

CARDS = Path(__file__).resolve().parents[1] / "model_cards"


def parse(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, body = card[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_entry_has_an_up_to_date_card(name: str) -> None:
    path = CARDS / f"{name}.md"
    assert path.is_file(), "missing card: run `zoo card --all --out model_cards`"
    assert path.read_text() == render_card(zoo.model_info(name)), "stale card: run `zoo card --all`"


@pytest.mark.parametrize("name", zoo.list_models())
def test_card_numbers_equal_the_registry(name: str) -> None:
    entry = zoo.model_info(name)
    meta, body = parse((CARDS / f"{name}.md").read_text())
    assert meta == front_matter(entry)
    assert meta["license"] == entry.license and meta["library_name"] == "zoo"
    values = [m["value"] for r in meta.get("model-index", [{}])[0].get("results", []) for m in r["metrics"]]
    assert values == [m.value for m in entry.reported + entry.measured]
    for m in entry.reported + entry.measured:
        assert f"| {m.value:.2f} | {m.how} |" in body, "the table states each number and how it was measured"
    for section in ("## Method", "## How to use", "## Evaluation", "## Limitations"):
        assert section in body
    assert "torch.hub.load" in body and "onnxruntime" in body


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if zoo.model_info(n).training])
def test_cards_of_trained_encoders_show_how_to_retrain_them(name: str) -> None:
    t = zoo.model_info(name).training
    _, body = parse((CARDS / f"{name}.md").read_text())
    assert "## Training" in body and f"```bash\n{t.command}\n```" in body
    recipe = Path(__file__).resolve().parents[1] / t.recipe
    assert recipe.is_file() and t.command.split()[2] == recipe.stem, "the command runs the recipe named"
    assert t.curves and (CARDS / t.curves).is_file() and f"]({t.curves})" in body


def test_no_orphan_cards() -> None:
    assert sorted(p.stem for p in CARDS.glob("*.md")) == zoo.list_models()
