"""SupCon: the loss against its formula and against NT-Xent, labels from the trainer, the
supervised label, and an unlabelled folder as one error before training."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _seed_methods import build, seed_recipe, short_run_beats_random_init
from zoo.training.loop import Trainer
from zoo.training.losses import NTXentLoss
from zoo.training.losses.supcon import SupConLoss
from zoo.training.methods import get_method
from zoo.training.methods.base import MethodInputError
from zoo.training.recipe import recipe_from_dict

SUPCON = {"name": "supcon", "proj_hidden_dim": 32, "proj_out_dim": 16}


def _direct(z0: torch.Tensor, z1: torch.Tensor, labels: torch.Tensor, tau: float) -> float:
    z = F.normalize(torch.cat([z0, z1]), dim=1).tolist()
    y = torch.cat([labels, labels]).tolist()
    total = 0.0
    for i in range(len(z)):
        dot = [sum(a * b for a, b in zip(z[i], z[j], strict=True)) / tau for j in range(len(z))]
        denom = sum(math.exp(dot[a]) for a in range(len(z)) if a != i)
        pos = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        total += -sum(math.log(math.exp(dot[p]) / denom) for p in pos) / len(pos)
    return total / len(z)


def test_supcon_loss_matches_the_papers_formula() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    assert float(SupConLoss(0.1)(z0, z1, labels)) == pytest.approx(_direct(z0, z1, labels, 0.1), rel=1e-5)


def test_gathering_changes_nothing_in_one_process() -> None:
    # gather_distributed (the method's default) is the identity without torch.distributed:
    # loss and gradients as before; the two-process equivalence is in test_train_distributed.
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    grads = []
    for gather in (False, True):
        a, b = z0.clone().requires_grad_(), z1.clone().requires_grad_()
        loss = SupConLoss(0.1, gather_distributed=gather)(a, b, labels)
        loss.backward()
        assert loss.item() == pytest.approx(_direct(z0, z1, labels, 0.1), rel=1e-5)
        grads.append((a.grad, b.grad))
    torch.testing.assert_close(grads[0], grads[1])
    assert get_method("supcon").Config().gather_distributed


def test_with_distinct_labels_supcon_is_ntxent() -> None:
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    torch.testing.assert_close(SupConLoss(0.5)(z0, z1, torch.arange(8)), NTXentLoss(0.5)(z0, z1))


def test_supcon_is_registered_as_supervised_and_trains_on_labels() -> None:
    assert get_method("supcon").supervised and get_method("supcon").needs.labels
    assert not any(get_method(n).supervised for n in ("simclr", "npid", "deepcluster", "sela"))
    method = build("supcon", proj_hidden_dim=16, proj_out_dim=8)
    views = [torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)]
    same = method(views, labels=torch.zeros(6, dtype=torch.long))["loss"]
    distinct = method(views, labels=torch.arange(6))["loss"]
    assert torch.isfinite(same) and not torch.equal(same, distinct)


def test_the_trainer_passes_the_class_labels(tmp_path: Path, cifar_root: Path, monkeypatch) -> None:
    from zoo.training.methods.supcon import SupCon

    seen = []
    original = SupCon.training_step

    def recording(self, views, labels):
        seen.append(labels.clone())
        return original(self, views, labels)

    monkeypatch.setattr(SupCon, "training_step", recording)
    recipe = recipe_from_dict(seed_recipe(tmp_path / "run", cifar_root, SUPCON, train__max_steps=2))
    trainer = Trainer(recipe)
    trainer.fit()
    from zoo.training.data import EpochBatches

    batches = EpochBatches(trainer.images, trainer.labels, lambda x, g: [x], batch_size=16, epoch=0, seed=3)
    assert [s.tolist() for s in seen] == [batches[i][1].tolist() for i in range(2)]
    assert len(set(seen[0].tolist())) > 1


def test_an_unlabelled_folder_is_one_error_before_training(tmp_path: Path, cifar_root: Path) -> None:
    folder = tmp_path / "data" / "train" / "unlabelled"
    folder.mkdir(parents=True)
    for f in sorted((cifar_root / "train" / "cat").iterdir())[:20]:
        shutil.copy(f, folder / f.name)
    recipe = recipe_from_dict(
        seed_recipe(tmp_path / "run", cifar_root, SUPCON, data__path=str(tmp_path / "data"))
    )
    with pytest.raises(
        MethodInputError, match=r"supcon trains with class labels.*1 class folder \(unlabelled\)"
    ):
        Trainer(recipe).fit()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_short_supcon_run_beats_random_init(tmp_path: Path, cifar_root: Path) -> None:
    short_run_beats_random_init(tmp_path, "supcon_r18q_cifar10", cifar_root)
