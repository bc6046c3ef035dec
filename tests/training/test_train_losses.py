"""Each loss against a direct (naive, numpy) formula of its paper on small tensors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from zoo.training.losses import (
    BarlowTwinsLoss,
    BYOLLoss,
    DINOLoss,
    InfoNCELoss,
    NTXentLoss,
    SimSiamLoss,
    SwAVLoss,
    VICRegLoss,
)
from zoo.training.sinkhorn import sinkhorn_knopp


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n,d,t", [(2, 3, 0.5), (5, 8, 0.1), (8, 4, 1.0)])
def test_ntxent_equals_the_paper_formula(n: int, d: int, t: float) -> None:
    g = torch.Generator().manual_seed(n)
    z0, z1 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    z = _unit(np.concatenate([z0.numpy(), z1.numpy()]).astype(np.float64))
    sim = z @ z.T / t
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)  # the other view of the same image
        denom = sum(np.exp(sim[i, k]) for k in range(2 * n) if k != i)
        total += -np.log(np.exp(sim[i, j]) / denom)
    expected = total / (2 * n)
    got = NTXentLoss(temperature=t)(z0, z1)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert NTXentLoss(temperature=t)(z1, z0).item() == pytest.approx(expected, rel=1e-5)  # symmetric


def test_info_nce_is_cross_entropy_with_the_positive_at_index_0() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, neg = (
        torch.randn(4, 6, generator=g),
        torch.randn(4, 6, generator=g),
        torch.randn(10, 6, generator=g),
    )
    t = 0.2
    qn, kn, nn_ = (_unit(x.numpy().astype(np.float64)) for x in (q, k, neg))
    pos = (qn * kn).sum(1)
    logits = np.concatenate([pos[:, None], qn @ nn_.T], axis=1) / t
    expected = np.mean(-logits[:, 0] + np.log(np.exp(logits).sum(1)))
    assert InfoNCELoss(t)(q, k, neg).item() == pytest.approx(expected, rel=1e-5)
    # In-batch form (MoCo v3): row i's positive is key i, scaled by 2 tau.
    logits = qn @ kn.T / t
    expected = np.mean(-np.diag(logits) + np.log(np.exp(logits).sum(1))) * 2 * t
    assert InfoNCELoss(t, scale_by_temperature=True)(q, k).item() == pytest.approx(expected, rel=1e-5)


def test_byol_loss_is_two_minus_two_cosine() -> None:
    g = torch.Generator().manual_seed(1)
    p, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    cos = (_unit(p.numpy()) * _unit(z.numpy())).sum(1)
    assert BYOLLoss()(p, z).item() == pytest.approx(np.mean(2 - 2 * cos), rel=1e-5)
    assert BYOLLoss()(p, p).item() == pytest.approx(0.0, abs=1e-6)
    # Stop-gradient: the target gets none.
    p.requires_grad_(True)
    z.requires_grad_(True)
    BYOLLoss()(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_simsiam_loss_is_negative_cosine() -> None:
    g = torch.Generator().manual_seed(2)
    p, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    cos = (_unit(p.numpy()) * _unit(z.numpy())).sum(1)
    assert SimSiamLoss()(p, z).item() == pytest.approx(-np.mean(cos), rel=1e-5)


def test_barlow_twins_against_naive_numpy() -> None:
    g = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    a, b = z0.numpy().astype(np.float64), z1.numpy().astype(np.float64)
    a = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)
    b = (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5)
    n, d = a.shape
    lam = 0.0051
    expected = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            expected += (1 - c) ** 2 if i == j else lam * c**2
    assert BarlowTwinsLoss(lam)(z0, z1).item() == pytest.approx(expected, rel=1e-4)


def test_vicreg_against_naive_numpy() -> None:
    g = torch.Generator().manual_seed(4)
    z0, z1 = torch.randn(8, 5, generator=g) * 0.5, torch.randn(8, 5, generator=g) * 2
    a, b = z0.numpy().astype(np.float64), z1.numpy().astype(np.float64)
    d = a.shape[1]

    def var(z: np.ndarray) -> float:
        return float(np.mean(np.maximum(0, 1 - np.sqrt(z.var(0, ddof=1) + 1e-4))))

    def cov(z: np.ndarray) -> float:
        c = np.cov(z, rowvar=False)
        return float(sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d)

    # main_vicreg.py: std_loss = mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2
    expected = 25 * np.mean((a - b) ** 2) + 25 * (var(a) / 2 + var(b) / 2) + 1 * (cov(a) + cov(b))
    assert VICRegLoss()(z0, z1).item() == pytest.approx(expected, rel=1e-4)


def test_sinkhorn_returns_the_prescribed_row_and_column_sums() -> None:
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(12, 4, generator=g)
    q = sinkhorn_knopp(scores, epsilon=0.5, iterations=50)
    assert q.shape == (12, 4)
    torch.testing.assert_close(q.sum(1), torch.ones(12))  # each sample: a distribution
    torch.testing.assert_close(q.sum(0), torch.full((4,), 12 / 4), atol=1e-3, rtol=0)  # equal use
    # With few iterations the rows are still exact (the last normalisation).
    torch.testing.assert_close(sinkhorn_knopp(scores, iterations=3).sum(1), torch.ones(12))
    assert (q >= 0).all()


def test_swav_swapped_prediction_against_direct_formula() -> None:
    g = torch.Generator().manual_seed(6)
    s0, s1, s2 = (torch.randn(6, 5, generator=g) for _ in range(3))  # 2 global crops + 1 local
    loss = SwAVLoss(temperature=0.1, sinkhorn_epsilon=0.05, sinkhorn_iterations=3)
    q0 = sinkhorn_knopp(s0, epsilon=0.05, iterations=3).numpy()
    q1 = sinkhorn_knopp(s1, epsilon=0.05, iterations=3).numpy()

    def ce(codes: np.ndarray, scores: torch.Tensor) -> float:
        logp = F.log_softmax(scores.double() / 0.1, dim=1).numpy()
        return float(-(codes * logp).sum(1).mean())

    # Each global crop's codes are predicted by every other crop; averaged.
    expected = ((ce(q0, s1) + ce(q0, s2)) / 2 + (ce(q1, s0) + ce(q1, s2)) / 2) / 2
    assert loss([s0, s1], [s2]).item() == pytest.approx(expected, rel=1e-4)


def test_dino_centres_sharpens_and_skips_same_crop_pairs() -> None:
    g = torch.Generator().manual_seed(7)
    k = 6
    loss = DINOLoss(out_dim=k, student_temperature=0.1, center_momentum=0.9)
    loss.center.copy_(torch.randn(1, k, generator=g))
    center = loss.center.clone()
    teacher = [torch.randn(4, k, generator=g) for _ in range(2)]
    student = [torch.randn(4, k, generator=g) for _ in range(3)]
    tt = 0.04
    targets = [F.softmax((t - center) / tt, dim=1) for t in teacher]
    expected, pairs = 0.0, 0
    for ti, tgt in enumerate(targets):
        for si, s in enumerate(student):
            if si != ti:
                expected += float((-tgt * F.log_softmax(s / 0.1, dim=1)).sum(1).mean())
                pairs += 1
    assert loss(student, teacher, tt).item() == pytest.approx(expected / pairs, rel=1e-5)
    # The centre moved by an EMA of the teacher's batch mean.
    batch_mean = torch.cat(teacher).mean(0, keepdim=True)
    torch.testing.assert_close(loss.center, 0.9 * center + 0.1 * batch_mean)
    # Sharpening: a lower teacher temperature gives a lower-entropy target.
    sharp, soft = loss.teacher_probabilities(teacher[0], 0.02), loss.teacher_probabilities(teacher[0], 0.5)

    def entropy(p: torch.Tensor) -> float:
        return float(-(p * p.clamp_min(1e-12).log()).sum(1).mean())

    assert entropy(sharp) < entropy(soft)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: NTXentLoss(temperature=0.0), "temperature must be positive, got 0.0"),
        (lambda: InfoNCELoss(temperature=-1.0), "temperature must be positive, got -1.0"),
        (lambda: BarlowTwinsLoss(lambda_=-1), "lambda_ must be >= 0, got -1"),
        (lambda: VICRegLoss(eps=0), "eps > 0"),
        (lambda: DINOLoss(out_dim=0), "out_dim=0"),
        (lambda: SwAVLoss(sinkhorn_iterations=0), "sinkhorn_iterations >= 1"),
    ],
)
def test_constructors_reject_invalid_settings(build, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        build()


def _paired_losses() -> list:
    """The losses that compare two views row by row, and the layout each names."""
    from zoo.training.losses.feature_regression import FeatureRegressionLoss
    from zoo.training.losses.iic import IICLoss

    losses = [NTXentLoss(), InfoNCELoss(), BarlowTwinsLoss(), VICRegLoss(), FeatureRegressionLoss()]
    pairs = [(loss, "(N, D)") for loss in losses] + [(IICLoss(), "(N, C)")]
    return [pytest.param(loss, layout, id=type(loss).__name__) for loss, layout in pairs]


@pytest.mark.parametrize("loss,layout", _paired_losses())
@pytest.mark.parametrize("shapes", [((3, 4), (2, 4)), ((3, 4), (3, 5)), ((3, 4), (1, 4)), ((3,), (3,))])
def test_losses_of_two_views_refuse_anything_but_two_equal_matrices(loss, layout: str, shapes) -> None:
    """A (1, D) second view would broadcast against the first and give a number, a wrong one."""
    a, b = (torch.rand(s).softmax(-1) for s in shapes)
    with pytest.raises(ValueError, match=re.escape(f"expected two {layout} tensors")):
        loss(a, b)


@pytest.mark.parametrize("loss", [BarlowTwinsLoss(), VICRegLoss()], ids=lambda m: type(m).__name__)
def test_losses_of_batch_statistics_need_two_samples(loss: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="needs a batch of at least 2 samples"):
        loss(torch.randn(1, 4), torch.randn(1, 4))


def test_mismatched_shapes_are_errors() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        BYOLLoss()(torch.randn(3, 4), torch.randn(3, 5))


def _loss_cases() -> list[tuple[str, torch.nn.Module, int]]:
    """(name, loss, number of (N, D) inputs) for the two-input losses."""
    return [
        ("ntxent", NTXentLoss(temperature=0.1), 2),
        ("barlow_twins", BarlowTwinsLoss(), 2),
        ("vicreg", VICRegLoss(), 2),
        ("byol", BYOLLoss(), 2),
        ("simsiam", SimSiamLoss(), 2),
        ("info_nce", InfoNCELoss(temperature=0.1), 2),
    ]


@pytest.mark.parametrize("name,loss,arity", _loss_cases(), ids=[c[0] for c in _loss_cases()])
def test_losses_compute_in_fp32_under_bf16_autocast(name: str, loss: torch.nn.Module, arity: int) -> None:
    """The training step runs under bf16 autocast, but every loss switches it off: its value
    (and its similarity / correlation matmuls) is the fp32 one, not bf16's 3-digit rounding."""
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(64, 256, generator=g) for _ in range(arity)]
    expected = loss(*inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(*inputs)
        # Autocast really is on here: the same matmul outside the loss is rounded to bf16.
        assert (inputs[0] @ inputs[1].T).dtype == torch.bfloat16
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7)


def test_prototype_scores_and_dino_logits_are_fp32_under_autocast() -> None:
    from zoo.training.heads import DINOProjectionHead, SwAVPrototypes

    x = F.normalize(torch.randn(16, 32), dim=1)
    prototypes = SwAVPrototypes(32, 64)
    head = DINOProjectionHead(32, 64, 16, 128)
    expected_scores, expected_logits = prototypes(x), head(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores, logits = prototypes(x), head(x)
    assert scores.dtype == logits.dtype == torch.float32
    torch.testing.assert_close(scores, expected_scores, rtol=0, atol=1e-6)
    # The MLP before the last layer still runs in bf16 (that is the point of autocast).
    assert (logits - expected_logits).abs().max() > 0
