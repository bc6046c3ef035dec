"""CMC: L and ab of Lab through two encoders, the two-way NCE, the exported concatenation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _seed_methods import seed_recipe, short_run_beats_random_init, stop_and_resume_equals_uninterrupted
from zoo.training.augment import LAB_MEAN, LAB_STD, rgb_to_lab
from zoo.training.lab_split import LabSplitEncoder
from zoo.training.loop import Trainer
from zoo.training.losses.cmc import CMCLoss
from zoo.training.losses.nce import NCELoss
from zoo.training.recipe import recipe_from_dict

import zoo

CMC = {"name": "cmc", "out_dim": 16, "num_negatives": 32}


def test_cmc_loss_anchors_each_view_on_the_other_views_memory() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    m1 = (torch.randn(4, 8, generator=g), torch.randn(4, 6, 8, generator=g))
    m2 = (torch.randn(4, 8, generator=g), torch.randn(4, 6, 8, generator=g))
    expected = NCELoss(40, 0.07)(z1, *m2) + NCELoss(40, 0.07)(z2, *m1)
    torch.testing.assert_close(CMCLoss(40, 0.07)(z1, z2, m1, m2), expected)


def test_the_encoder_splits_lab_as_the_training_views_do() -> None:
    torch.manual_seed(0)
    encoder = LabSplitEncoder(zoo.create_model("resnet18_cifar_quarter").backbone).eval()
    assert encoder.l_net.conv1.in_channels == 1 and encoder.ab_net.conv1.in_channels == 2
    rgb = torch.rand(3, 3, 16, 16)
    mean, std = (
        torch.tensor(zoo.registry.IMAGENET_MEAN).view(1, 3, 1, 1),
        torch.tensor(zoo.registry.IMAGENET_STD).view(1, 3, 1, 1),
    )
    lab = (rgb_to_lab(rgb) - torch.tensor(LAB_MEAN).view(1, 3, 1, 1)) / torch.tensor(LAB_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = encoder((rgb - mean) / std)
        l_feats, ab_feats = encoder.l_net(lab[:, :1]), encoder.ab_net(lab[:, 1:])
    assert feats.shape == (3, 256)
    torch.testing.assert_close(feats, torch.cat([l_feats, ab_feats], 1), atol=1e-4, rtol=1e-4)


def test_cmc_trains_both_encoders_and_the_monitor_sees_the_concatenation(
    tmp_path: Path, cifar_root: Path
) -> None:
    recipe = recipe_from_dict(
        seed_recipe(tmp_path / "run", cifar_root, CMC, train__max_steps=5, run__knn_every_epochs=1)
    )
    trainer = Trainer(recipe)
    result = trainer.fit()
    assert result.knn and 0 <= result.knn[-1]["top1"] <= 100
    assert trainer.embed(trainer.images[:4]).shape == (4, 256)
    fresh = Trainer(recipe)
    fresh._setup()
    for half in ("l_net", "ab_net"):
        before = getattr(fresh.method.backbone, half).conv1.weight
        assert not torch.equal(getattr(trainer.method.backbone, half).conv1.weight, before), half


def test_cmc_stops_and_resumes_exactly(tmp_path: Path, cifar_root: Path) -> None:
    stop_and_resume_equals_uninterrupted(tmp_path, cifar_root, CMC, stop=7)


@pytest.mark.slow
def test_a_short_cmc_run_beats_random_init(tmp_path: Path, cifar_root: Path) -> None:
    short_run_beats_random_init(tmp_path, "cmc_r18q_cifar10", cifar_root)
