"""PCL: ProtoNCE against its formula, the concentration estimate, the warm-up, exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _seed_methods import (
    WHOLE_SPLIT,
    build,
    short_run_beats_random_init,
    stop_and_resume_equals_uninterrupted,
)
from zoo.training.kmeans import kmeans
from zoo.training.losses.proto_nce import ProtoNCELoss
from zoo.training.methods.base import DataInfo
from zoo.training.methods.pcl import concentration

PCL = {
    "name": "pcl",
    "proj_hidden_dim": 32,
    "proj_out_dim": 16,
    "queue_size": 64,
    "base_momentum": 0.99,
    "final_momentum": 0.99,
    "num_clusters": [3, 4, 6],
    "warmup_epochs": 1,
    "kmeans_iterations": 5,
}


def test_proto_nce_is_infonce_plus_the_mean_prototype_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, neg = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    protos = [
        (
            F.normalize(torch.randn(2, 4, generator=g), dim=1),
            torch.tensor([0.1, 0.3]),
            torch.tensor([0, 1, 1]),
        ),
        (
            F.normalize(torch.randn(3, 4, generator=g), dim=1),
            torch.tensor([0.2, 0.2, 0.5]),
            torch.tensor([2, 0, 1]),
        ),
    ]
    loss = ProtoNCELoss(0.2)(q, k, neg, protos)
    qn, kn, nn_ = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(neg, dim=1)
    expected = 0.0
    for i in range(3):
        pos = math.exp(float(qn[i] @ kn[i]) / 0.2)
        den = pos + sum(math.exp(float(qn[i] @ n) / 0.2) for n in nn_)
        term = math.log(pos / den)
        proto_terms = []
        for c, phi, a in protos:
            logits = [float(qn[i] @ c[j]) / float(phi[j]) for j in range(len(c))]
            s = int(a[i])
            proto_terms.append(math.log(math.exp(logits[s]) / sum(math.exp(x) for x in logits)))
        expected += -(term + sum(proto_terms) / len(proto_terms))
    assert float(loss) == pytest.approx(expected / 3, rel=1e-5)
    # Warm-up: no prototypes, the instance term alone.
    torch.testing.assert_close(ProtoNCELoss(0.2)(q, k, neg, []), ProtoNCELoss(0.2).instance(q, k, neg))


def test_concentration_is_tighter_for_tighter_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    spread = torch.tensor([0.02, 0.05, 0.1, 0.2]).repeat_interleave(50).unsqueeze(1)
    x = centres.repeat_interleave(50, 0) + spread * torch.randn(200, 8, generator=g)
    r = kmeans(x, 4, iterations=20, generator=torch.Generator().manual_seed(0), spherical=True)
    phi = concentration(r, temperature=0.2)
    order = [int(r.assignments[i * 50]) for i in range(4)]  # cluster of each spread
    assert phi.mean().item() == pytest.approx(0.2, rel=1e-5)
    assert phi[order[0]] <= phi[order[1]] <= phi[order[2]] <= phi[order[3]]
    # By the formula (before clipping and scaling): mean distance / log(Z + alpha).
    members = r.assignments == order[1]
    raw = (x[members].div(x[members].norm(dim=1, keepdim=True)) - r.centroids[order[1]]).norm(dim=1).mean()
    raw = raw / math.log(int(members.sum()) + 10)
    raw_all = []
    for c in range(4):
        m = r.assignments == c
        d = (F.normalize(x[m], dim=1) - r.centroids[c]).norm(dim=1).mean() / math.log(int(m.sum()) + 10)
        raw_all.append(d)
    raw_all = torch.stack(raw_all)
    lo, hi = torch.quantile(raw_all.double(), 0.1), torch.quantile(raw_all.double(), 0.9)
    clipped = raw_all.double().clamp(lo, hi)
    assert float(phi[order[1]]) == pytest.approx(float(0.2 * clipped[order[1]] / clipped.mean()), rel=1e-3)
    assert raw > 0


def test_prototypes_join_after_the_warm_up() -> None:
    config = {k: v for k, v in PCL.items() if k != "name"}
    method = build("pcl", **{**config, "num_clusters": (3, 4, 6), "warmup_epochs": 2})
    method.setup_data(DataInfo(num_samples=24, num_classes=2))
    assert [e for e in range(4) if method.epoch_pass_due(e)] == [2, 3]
    views = [torch.randn(24, 3, 16, 16), torch.randn(24, 3, 16, 16)]
    method(views, indices=torch.arange(24))
    assert method.logged() == {"prototypes": 0.0}
    method.eval()
    with torch.no_grad():
        feats = method.epoch_encoder()(views[0])
    method.train()
    method.on_epoch_start(2, feats)
    out = method(views, indices=torch.arange(24))
    assert method.logged() == {"prototypes": 1.0} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert method.backbone[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.key_backbone.parameters())


def test_symmetric_pcl_averages_both_directions_and_queues_both_keys() -> None:
    config = {k: v for k, v in PCL.items() if k != "name"}
    views = [torch.randn(24, 3, 16, 16), torch.randn(24, 3, 16, 16)]
    feats = F.normalize(torch.randn(24, 16), dim=1)

    def ready(**changes):
        method = build("pcl", **{**config, **changes})
        method.setup_data(DataInfo(num_samples=24, num_classes=2))
        method.on_epoch_start(1, feats)
        return method

    both = ready(symmetric=True)
    loss = both(views, indices=torch.arange(24))["loss"]
    one_way = ready()(views, indices=torch.arange(24))["loss"]
    other_way = ready()(views[::-1], indices=torch.arange(24))["loss"]
    torch.testing.assert_close(loss, (one_way + other_way) / 2)
    assert int(both.queue.pointer) == 48  # both views' keys entered the queue


def test_pcl_stops_and_resumes_exactly(tmp_path: Path, cifar_root: Path) -> None:
    stop_and_resume_equals_uninterrupted(tmp_path, cifar_root, PCL, stop=7)


@pytest.mark.slow
def test_a_short_pcl_run_beats_random_init(tmp_path: Path, cifar_root: Path) -> None:
    # The whole training split (390 steps): on the short runs' 10,000 images (78 steps) it still
    # read below random init (27.80 against 30.35, session 15).
    short_run_beats_random_init(
        tmp_path, "pcl_r18q_cifar10", cifar_root, "method.warmup_epochs=1", WHOLE_SPLIT
    )
