"""SimCLR v2's options on the SimCLR method: the memory loss against NT-Xent and its formula,
the momentum memory network, and v1 left exactly as it was."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _seed_methods import build
from zoo.training.losses import NTXentLoss
from zoo.training.losses.ntxent_memory import NTXentMemoryLoss


def test_with_an_empty_memory_it_is_ntxent() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    torch.testing.assert_close(NTXentMemoryLoss(0.5)(z0, z1, torch.empty(0, 5)), NTXentLoss(0.5)(z0, z1))


def test_memory_entries_are_extra_negatives_of_every_anchor() -> None:
    g = torch.Generator().manual_seed(1)
    z0, z1, mem = (
        torch.randn(3, 4, generator=g),
        torch.randn(3, 4, generator=g),
        torch.randn(5, 4, generator=g),
    )
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    m = F.normalize(mem, dim=1)
    total = 0.0
    for i in range(6):
        j = (i + 3) % 6
        den = sum(math.exp(float(z[i] @ z[k]) / 0.2) for k in range(6) if k != i)
        den += sum(math.exp(float(z[i] @ row) / 0.2) for row in m)
        total += -math.log(math.exp(float(z[i] @ z[j]) / 0.2) / den)
    assert float(NTXentMemoryLoss(0.2)(z0, z1, mem)) == pytest.approx(total / 6, rel=1e-5)


def test_the_memory_option_fills_a_queue_from_a_momentum_network() -> None:
    v1 = build("simclr", proj_hidden_dim=16, proj_out_dim=8)
    assert not hasattr(v1, "queue") and not any(k.startswith("key_") for k in v1.state_dict())
    v2 = build(
        "simclr", proj_hidden_dim=16, proj_out_dim=8, proj_layers=3, queue_size=12, memory_momentum=0.9
    )
    assert sum(isinstance(m, torch.nn.Linear) for m in v2.projection.modules()) == 3
    views = [torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)]
    opt = torch.optim.SGD([p for g in v2.param_groups() for p in g["params"]], lr=0.5)
    key_before = v2.key_backbone[0].weight.clone()
    out = v2(views)
    out["loss"].backward()
    opt.step()
    v2.after_optimizer_step()
    assert int(v2.queue.pointer) == 12 % 12 and torch.isfinite(out["loss"])
    torch.testing.assert_close(v2.key_backbone[0].weight, 0.9 * key_before + 0.1 * v2.backbone[0].weight)
    assert all(p.grad is None for p in v2.key_backbone.parameters())
