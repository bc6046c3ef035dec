"""Every exported run's card links the paper its method follows."""

from __future__ import annotations

import importlib

from zoo.training.methods import get_method
from zoo.training.publish import PAPERS, paper_of
from zoo.training.recipe import load_recipe

ISSUE_10 = (
    "npid deepcluster deepcluster_v2 sela pcl iic cmc cpc_v2 dim amdim supcon crd feature_regression"
).split()


def test_issue_10_methods_link_their_papers() -> None:
    for name in ISSUE_10:
        get_method(name)  # a registered method, not a typo
        assert PAPERS[name].startswith("https://arxiv.org/abs/"), name
    # The link each method's module gives as its reference is the one its cards get.
    for name in ISSUE_10:
        doc = importlib.import_module(f"zoo.training.methods.{name}").__doc__ or ""
        assert PAPERS[name] in doc, name


def test_simclr_with_v2_options_follows_simclr_v2() -> None:
    assert paper_of(load_recipe("simclr_r18q_cifar10")) == PAPERS["simclr"]
    assert paper_of(load_recipe("simclr_v2_r18q_cifar10")) == PAPERS["simclr_v2"]
    assert paper_of(load_recipe("simclr_r18q_cifar10", ["method.queue_size=64"])) == PAPERS["simclr_v2"]
    assert paper_of(load_recipe("cmc_r18q_cifar10")) == PAPERS["cmc"]
