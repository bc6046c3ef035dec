"""Heads, momentum encoders, the feature queue, LARS and the schedules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn
from zoo.training import heads as H
from zoo.training.momentum import cosine_momentum, momentum_copy, update_momentum
from zoo.training.optim import LARS, warmup_cosine
from zoo.training.queue import FeatureQueue


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    "head,dims,norms",
    [
        (H.SimCLRProjectionHead(), [(2048, 2048), (2048, 128)], 1),
        (H.MoCoV2ProjectionHead(), [(2048, 2048), (2048, 128)], 0),
        (H.MoCoV3ProjectionHead(), [(2048, 4096), (4096, 4096), (4096, 256)], 3),
        (H.MoCoV3PredictionHead(), [(256, 4096), (4096, 256)], 2),
        (H.BYOLProjectionHead(), [(2048, 4096), (4096, 256)], 1),
        (H.BYOLPredictionHead(), [(256, 4096), (4096, 256)], 1),
        (H.SimSiamProjectionHead(), [(2048, 2048), (2048, 2048), (2048, 2048)], 3),
        (H.SimSiamPredictionHead(), [(2048, 512), (512, 2048)], 1),
        (H.SwAVProjectionHead(), [(2048, 2048), (2048, 128)], 1),
    ],
)
def test_heads_have_their_papers_dimensions(head: nn.Module, dims, norms: int) -> None:
    assert [(m.in_features, m.out_features) for m in _linears(head)] == dims
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head.modules()) == norms
    head.eval()
    assert head(torch.randn(2, dims[0][0])).shape == (2, dims[-1][1])


def test_barlow_twins_projector_is_three_8192_layers() -> None:
    head = H.BarlowTwinsProjectionHead(in_dim=16)  # small input: the 8192 layers are the point
    assert [m.out_features for m in _linears(head)] == [8192, 8192, 8192]


def test_linear_layers_before_batch_norm_have_no_bias() -> None:
    layers = list(H.BYOLProjectionHead(8, 16, 4).layers)
    assert layers[0].bias is None and isinstance(layers[1], nn.BatchNorm1d)
    assert layers[-1].bias is not None


def test_dino_head_normalises_and_keeps_a_unit_norm_last_layer() -> None:
    head = H.DINOProjectionHead(in_dim=8, hidden_dim=16, bottleneck_dim=4, out_dim=32)
    out = head(torch.randn(3, 8))
    assert out.shape == (3, 32)
    weight = head.last_layer.weight
    torch.testing.assert_close(weight.norm(dim=1), torch.ones(32))
    assert not head.last_layer.parametrizations.weight.original0.requires_grad
    out.sum().backward()
    head.cancel_last_layer_gradients()
    assert all(p.grad is None for p in head.last_layer.parameters())


def test_swav_prototypes_stay_on_the_unit_sphere() -> None:
    protos = H.SwAVPrototypes(4, 10)
    with torch.no_grad():
        protos.layer.weight.mul_(3)
    protos.normalize()
    torch.testing.assert_close(protos.layer.weight.norm(dim=1), torch.ones(10))


def test_projection_head_validates_blocks() -> None:
    with pytest.raises(ValueError):
        H.ProjectionHead([])
    with pytest.raises(ValueError):
        H.ProjectionHead([(0, 4, None, None)])


def test_momentum_update_is_an_exponential_moving_average() -> None:
    online = nn.Linear(3, 2)
    target = momentum_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    before = [p.clone() for p in target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    update_momentum(online, target, 0.9)
    for b, o, t in zip(before, online.parameters(), target.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    with pytest.raises(ValueError):
        update_momentum(online, target, 1.5)


def test_cosine_momentum_rises_from_base_to_one() -> None:
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)


def test_feature_queue_is_a_ring_buffer() -> None:
    queue = FeatureQueue(5, 2)
    queue.enqueue(torch.ones(3, 2))
    queue.enqueue(torch.full((3, 2), 2.0))
    # Slots 0-2 got ones, then 3, 4 and (wrapping) 0 got twos.
    assert queue.queue[:, 0].tolist() == [2.0, 1.0, 1.0, 2.0, 2.0]
    assert int(queue.pointer) == 1
    assert "queue" in queue.state_dict()  # saved with checkpoints
    big = torch.arange(14.0).view(7, 2)
    queue.enqueue(big)  # more keys than slots: the newest are kept
    assert sorted(queue.queue[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, final_ratio=0.1) == pytest.approx(0.1)
    values = [warmup_cosine(s, 100, 10) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_lars_step_scales_by_the_trust_ratio() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # norm 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS(
        [{"params": [w]}, {"params": [b], "lars_exclude": True, "weight_decay": 0.0}],
        lr=0.1,
        momentum=0.9,
        weight_decay=0.0,
        eta=0.02,
    )
    w.grad = torch.tensor([[0.0, 10.0]])  # norm 10
    b.grad = torch.tensor([2.0])
    opt.step()
    trust = 0.02 * 5 / 10
    torch.testing.assert_close(w.detach(), torch.tensor([[3.0, 4.0 - 0.1 * trust * 10]]))
    torch.testing.assert_close(b.detach(), torch.tensor([1.0 - 0.1 * 2.0]))  # excluded: plain SGD
    assert math.isclose(trust, 0.01)
