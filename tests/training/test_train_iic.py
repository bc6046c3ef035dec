"""IIC: the mutual-information loss against its definition and its bounds, Hungarian
accuracy against scipy, sub-head selection, and a short real run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _seed_methods import build, short_run_beats_random_init
from zoo.training.losses.iic import IICLoss
from zoo.training.methods.iic import cluster_accuracy, cluster_accuracy_on_test_split


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


@pytest.mark.slow
def test_a_short_iic_run_beats_random_init(tmp_path: Path, cifar_root: Path) -> None:
    result = short_run_beats_random_init(tmp_path, "iic_r18q_cifar10", cifar_root)
    accuracy = cluster_accuracy_on_test_split(result["trainer"])
    print(f"IIC Hungarian accuracy on the CIFAR-10 test split: {accuracy:.2f}% (paper: 61.7%)")
    assert accuracy > 15  # chance is 10%
