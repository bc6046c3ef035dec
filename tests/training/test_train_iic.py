"""IIC: the mutual-information loss against its definition and its bounds, Hungarian
accuracy against scipy, sub-head selection, and a short real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _seed_methods import build, random_init_knn, seed_recipe, short_recipe
from torch import nn
from zoo.training.loop import Trainer, read_csv
from zoo.training.losses.iic import IICLoss
from zoo.training.methods.iic import (
    IIC,
    cluster_accuracy,
    cluster_accuracy_on_test_split,
    main,
    run_cluster_accuracy,
)
from zoo.training.recipe import load_recipe, recipe_from_dict
from zoo.training.ship import ship

from zoo import results


def test_iic_loss_is_minus_the_mutual_information_of_the_symmetrised_joint() -> None:
    p0 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]])
    p1 = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    joint = [[sum(float(p0[n, i] * p1[n, j]) for n in range(4)) / 4 for j in range(3)] for i in range(3)]
    joint = [[(joint[i][j] + joint[j][i]) / 2 for j in range(3)] for i in range(3)]
    pi = [sum(row) for row in joint]
    pj = [sum(joint[i][j] for i in range(3)) for j in range(3)]
    mi = sum(joint[i][j] * math.log(joint[i][j] / (pi[i] * pj[j])) for i in range(3) for j in range(3))
    assert float(IICLoss()(p0, p1)) == pytest.approx(-mi, rel=1e-5)


def test_iic_loss_reaches_minus_log_c_for_confident_balanced_agreeing_views() -> None:
    onehot = torch.eye(4).repeat(5, 1)
    assert float(IICLoss()(onehot, onehot)) == pytest.approx(-math.log(4), rel=1e-5)
    # Collapsed (every image in one cluster) or uniform: no information.
    collapsed = torch.zeros(20, 4)
    collapsed[:, 0] = 1
    assert float(IICLoss()(collapsed, collapsed)) == pytest.approx(0, abs=1e-5)
    uniform = torch.full((20, 4), 0.25)
    assert float(IICLoss()(uniform, uniform)) == pytest.approx(0, abs=1e-6)


def test_cluster_accuracy_is_the_hungarian_optimum() -> None:
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 10, 300)
        clusters = np.where(rng.random(300) < 0.6, (labels * 3 + 1) % 10, rng.integers(0, 10, 300))
        table = np.zeros((10, 10))
        np.add.at(table, (clusters, labels), 1)
        rows, cols = scipy_optimize.linear_sum_assignment(-table)
        assert cluster_accuracy(clusters, labels) == pytest.approx(100 * table[rows, cols].sum() / 300)
    assert cluster_accuracy(np.array([2, 2, 0, 0]), np.array([0, 0, 1, 1])) == 100.0


def test_a_step_trains_both_heads_and_tracks_the_best_subhead() -> None:
    method = build("iic", num_clusters=3, overcluster=6, num_subheads=2)
    views = [torch.randn(16, 3, 16, 16), torch.randn(16, 3, 16, 16)]
    out = method(views)
    out["loss"].backward()
    assert set(out) == {"loss", "main", "overcluster"}
    torch.testing.assert_close(out["loss"].detach(), out["main"] + out["overcluster"])
    assert all(h.weight.grad.abs().sum() > 0 for h in [*method.main, *method.over])
    method.subhead_loss.copy_(torch.tensor([0.5, -0.9]))
    feats = torch.randn(5, 8)
    torch.testing.assert_close(method.predict_clusters(feats), method.main[1](feats).argmax(1))


def test_the_running_subhead_loss_starts_at_the_first_step_then_moves_by_its_momentum() -> None:
    method = build("iic", num_clusters=3, overcluster=0, num_subheads=1, loss_momentum=0.9)
    losses = []
    for _ in range(2):
        views = [torch.randn(16, 3, 16, 16), torch.randn(16, 3, 16, 16)]
        losses.append(float(method(views)["main"]))
        if len(losses) == 1:
            assert float(method.subhead_loss[0]) == pytest.approx(losses[0], rel=1e-6)
    assert float(method.subhead_loss[0]) == pytest.approx(0.9 * losses[0] + 0.1 * losses[1], rel=1e-5)


def test_a_hidden_layer_before_the_heads_is_trained_and_used_to_predict() -> None:
    method = build("iic", num_clusters=3, overcluster=6, num_subheads=2, proj_hidden_dim=16)
    views = [torch.randn(16, 3, 16, 16), torch.randn(16, 3, 16, 16)]
    method(views)["loss"].backward()
    assert method.main[0].weight.shape == (3, 16) and method.over[0].weight.shape == (6, 16)
    assert all(p.grad.abs().sum() > 0 for p in method.proj.parameters())
    method.subhead_loss.copy_(torch.tensor([0.5, -0.9]))
    feats = torch.randn(5, 8)
    got = method.predict_clusters(feats)
    assert method.proj.training  # evaluated with running statistics, then left as it was
    method.proj.eval()
    torch.testing.assert_close(got, method.main[1](method.proj(feats)).argmax(1))


def test_the_heads_and_the_loss_run_in_fp32_under_bf16_autocast() -> None:
    # The trainer runs every step under bf16 autocast; the backbone may, the cluster heads
    # must not: near IIC's uniform start, logit differences are of the size bf16 rounds away.
    method = build("iic", num_clusters=10, overcluster=0, num_subheads=2)
    method.backbone = nn.Identity()  # the views are the features: only the heads differ
    torch.manual_seed(1)
    h0 = torch.randn(64, 8).bfloat16().float()  # exactly what a bf16 backbone could output
    h1 = (h0 + 0.3 * torch.randn(64, 8)).bfloat16().float()
    expected = method([h0, h1])["main"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = method([h0.bfloat16(), h1.bfloat16()])["main"]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_the_recipes_optimiser_leaves_the_uniform_start(tmp_path: Path, cifar_root: Path) -> None:
    # At initialisation the heads' outputs are near uniform, where the mutual information and
    # its gradient are ~0. The recipe at SGD 0.12 stayed there (every main loss of these 20
    # steps >= -0.0001, and -0.0007 after 78 steps of batch 256); Adam's steps do not. (The
    # milder colour jitter of the other CIFAR recipes, so that 20 tiny steps show it.)
    recipe = load_recipe(
        "iic_r18q_cifar10",
        [
            f"data.path={cifar_root}",
            "data.limit_per_class=32",
            "augment.size=16",
            "augment.jitter_strength=0.5",
            "train.batch_size=64",
            "train.epochs=4",
            "train.compile=false",
            f"run.out_dir={tmp_path}",
            "run.knn_every_epochs=0",
            "run.log_every_steps=1",
            "run.export=false",
        ],
    )
    Trainer(recipe, progress=False).fit()
    main_losses = [float(row["main"]) for row in read_csv(tmp_path / "metrics.csv")]
    assert len(main_losses) == 20
    assert sum(main_losses[-10:]) / 10 < -0.005, main_losses


def test_the_hungarian_accuracy_of_a_finished_run_from_the_command_line(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    method = {"name": "iic", "num_clusters": 10, "overcluster": 20, "num_subheads": 2}
    run = tmp_path / "run"
    trainer = Trainer(recipe_from_dict(seed_recipe(run, cifar_root, method)))
    assert trainer.fit().finished  # 80 real images, 10 steps
    # The in-memory trainer's number is the one the command rebuilds from the run folder.
    expected = cluster_accuracy_on_test_split(trainer)
    assert main([str(run), "--json", str(tmp_path / "acc.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "acc.json").read_text())
    assert printed["hungarian_accuracy"] == pytest.approx(expected, abs=0.006)
    assert printed["test_images"] == 80 and printed["step"] == 10 and printed["finished"]
    assert printed["subhead"] == int(trainer.method.subhead_loss.argmin()) and printed["paper"] == 61.7


def test_shipping_an_iic_run_records_its_clustering_accuracy(
    tmp_path: Path, cifar_root: Path, tiny_dataset: Path
) -> None:
    # The clustering accuracy is measured on the shipped dataset's test split, from the run
    # folder, and lands in the table beside the kNN / linear / NMI rows as `task-cluster-accuracy`.
    method = {"name": "iic", "num_clusters": 10, "overcluster": 20, "num_subheads": 2}
    run = tmp_path / "run"
    recipe = recipe_from_dict(seed_recipe(run, cifar_root, method, run__export=True))
    Trainer(recipe, command="zoo train iic_r18q_cifar10").fit()
    (tmp_path / "run.log").write_text("[10:00:00] start\n[10:01:00] epoch 1 step 10/10 loss -0.1\n")
    (evaluation,) = IIC.evaluate_task(run, "iic-r18q-cifar10", str(tiny_dataset))
    expected = run_cluster_accuracy(run, data=str(tiny_dataset))["hungarian_accuracy"]
    assert evaluation.value == expected and evaluation.split is None
    table = tmp_path / "measured.csv"
    summary = ship(
        run,
        "iic-r18q-tiny",
        data=str(tiny_dataset),
        weights_dir=tmp_path / "weights",
        cards_dir=tmp_path / "cards",
        results_file=table,
    )
    (row,) = [r for r in summary["recorded"] if r.protocol.startswith("task-")]
    assert (row.protocol, row.dataset, row.value) == (
        "task-cluster-accuracy",
        f"{tiny_dataset.name}-test",
        expected,
    )
    assert "18 test images" in row.how and "Hungarian" in row.how and "61.7%" in row.how
    assert (
        row.command
        == "zoo train iic_r18q_cifar10 && python -m zoo.training.methods.iic runs/iic-r18q-cifar10"
    )
    assert row in results.load(table) and row.weights == summary["sha256"][:16]


def test_the_command_names_what_is_wrong_with_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and "no recipe.yaml" in err and err.count("\n") == 1
    # A finished run of another method is refused before its checkpoint is read.
    simclr = Path(__file__).parents[2] / "training" / "recipes" / "simclr_r18q_cifar10.yaml"
    (tmp_path / "recipe.yaml").write_text(simclr.read_text())
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert main([str(tmp_path)]) == 2
    assert "is a simclr run, not a iic run" in capsys.readouterr().err
    # An IIC run whose relative data.path does not resolve from here.
    iic = Path(__file__).parents[2] / "training" / "recipes" / "iic_r18q_cifar10.yaml"
    (tmp_path / "recipe.yaml").write_text(iic.read_text().replace("../shared/data", "../elsewhere/data"))
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "../elsewhere/data/cifar10 is not a folder here" in err and "pass --data ROOT" in err


@pytest.mark.slow
def test_a_short_iic_run_learns_clusters_and_features(tmp_path: Path, cifar_root: Path) -> None:
    # The recipe shortened as for every method (2 epochs of 10,000 images, kNN on 2,000 test
    # images), but measured against the no-learning floor only (the other methods' short runs
    # must beat the random init as is too): re-estimating BatchNorm's running statistics alone
    # moves the random init's kNN from 30.35 to 24.60, and every run does that in its first
    # steps. Measured: kNN 29.00, Hungarian 19.36%. At SGD 0.12 IIC never left its uniform
    # start: kNN 25.75, Hungarian 12.42%.
    recipe = short_recipe(tmp_path, "iic_r18q_cifar10", cifar_root)
    as_is, floor = random_init_knn(recipe)
    trainer = Trainer(recipe)
    after = trainer.fit().knn[-1]["top1"]
    accuracy = cluster_accuracy_on_test_split(trainer)
    print(
        f"IIC kNN top-1: random init {as_is:.2f}% (BatchNorm statistics refreshed: {floor:.2f}%), after"
        f" 2 epochs {after:.2f}%; Hungarian accuracy on the test split {accuracy:.2f}% (paper: 61.7%)"
    )
    assert after > floor + 1, (floor, after)
    assert accuracy > 15  # chance is 10%
