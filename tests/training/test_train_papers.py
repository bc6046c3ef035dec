"""Every exported run's card links the paper its method follows, from the library's one table."""

from __future__ import annotations

import importlib

import pytest
from zoo.training.methods import METHODS, get_method
from zoo.training.publish import paper_of, registry_method
from zoo.training.recipe import load_recipe

from zoo.pretrained import PAPERS


def test_every_trainer_method_links_its_paper() -> None:
    for name in METHODS:
        assert PAPERS[registry_method(name)].startswith("https://arxiv.org/abs/"), name
    # The link each method's module gives as its reference is the one its cards get (the nine
    # joint-embedding modules predate the convention of a link in the docstring).
    for name in METHODS:
        doc = importlib.import_module(f"zoo.training.methods.{name}").__doc__ or ""
        if "arxiv.org" in doc:
            assert PAPERS[registry_method(name)] in doc, name


@pytest.mark.parametrize(
    ("trainer", "registry"),
    [
        ("moco_v2", "moco-v2"),
        ("barlow_twins", "barlowtwins"),
        ("relative_patch", "relative-patch"),
        ("npid", "npid"),
    ],
)
def test_registry_method_names(trainer: str, registry: str) -> None:
    get_method(trainer)  # a registered method, not a typo
    assert registry_method(trainer) == registry
    assert registry_method(registry) == registry  # idempotent: shipping an export twice is safe


def test_simclr_with_v2_options_follows_simclr_v2() -> None:
    assert paper_of(load_recipe("simclr_r18q_cifar10")) == PAPERS["simclr"]
    assert paper_of(load_recipe("simclr_v2_r18q_cifar10")) == PAPERS["simclr-v2"]
    assert paper_of(load_recipe("simclr_r18q_cifar10", ["method.queue_size=64"])) == PAPERS["simclr-v2"]
    assert paper_of(load_recipe("cmc_r18q_cifar10")) == PAPERS["cmc"]
