"""Every method: a real optimisation step through its hooks on a tiny backbone, plus the
behaviour that defines it (momentum targets, queues, frozen layers, fixed learning rates)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _seed_methods import compiles_while_training, tiny_backbone
from torch import nn
from zoo.training.losses import NTXentLoss
from zoo.training.methods import METHODS, get_method
from zoo.training.methods.base import forward_crops

SMALL = {
    "simclr": dict(proj_hidden_dim=16, proj_out_dim=8),
    "moco_v2": dict(proj_hidden_dim=16, proj_out_dim=8, queue_size=32, base_momentum=0.9, final_momentum=0.9),
    "moco_v3": dict(proj_hidden_dim=16, proj_out_dim=8, pred_hidden_dim=16),
    "byol": dict(proj_hidden_dim=16, proj_out_dim=8, pred_hidden_dim=16, base_momentum=0.9),
    "simsiam": dict(proj_hidden_dim=16, proj_out_dim=8, pred_hidden_dim=4),
    "swav": dict(proj_hidden_dim=16, proj_out_dim=8, num_prototypes=10, queue_size=16, queue_start_epoch=0),
    "barlow_twins": dict(proj_hidden_dim=16, proj_out_dim=16),
    "vicreg": dict(proj_hidden_dim=16, proj_out_dim=16),
    "dino": dict(proj_hidden_dim=16, bottleneck_dim=8, out_dim=32),
}


def build(name: str, **changes) -> nn.Module:
    cls = get_method(name)
    torch.manual_seed(0)
    return cls(tiny_backbone(), 8, cls.Config(**{**SMALL[name], **changes}))


def views_for(method: nn.Module, n: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = [16, 16, 8, 8] if method.multicrop else [16, 16]
    return [torch.randn(n, 3, s, s, generator=g) for s in sizes]


def train_step(method: nn.Module, views: list[torch.Tensor], epoch: int = 1) -> dict:
    opt = torch.optim.SGD([p for g in method.param_groups() for p in g["params"]], lr=0.1)
    method.schedule(step=3, total_steps=10, epoch=epoch)
    out = method(views)
    opt.zero_grad()
    out["loss"].backward()
    method.before_optimizer_step(epoch)
    opt.step()
    method.after_optimizer_step()
    return out


def test_every_method_of_the_issue_is_registered() -> None:
    # Methods that need more than views (indices, labels, an epoch pass, a teacher) are
    # tested in their own files (tests/training/test_train_<family>.py), which name them.
    others = [
        p.read_text() for p in Path(__file__).parent.glob("test_train_*.py") if p.name != Path(__file__).name
    ]
    elsewhere = {n for n in METHODS if any(f'"{n}"' in text for text in others)}
    assert set(SMALL) <= set(METHODS)
    assert set(METHODS) - set(SMALL) <= elsewhere


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_step_trains_the_backbone_and_only_trainable_parameters(name: str) -> None:
    method = build(name)
    before = copy.deepcopy(method.state_dict())
    out = train_step(method, views_for(method))
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    # The backbone received a gradient and moved.
    conv = method.backbone[0].weight
    assert conv.grad is not None and conv.grad.abs().sum() > 0
    assert not torch.equal(conv, before["backbone.0.weight"])
    # Frozen copies never get gradients; every trainable parameter is in param_groups.
    grouped = {id(p) for g in method.param_groups() for p in g["params"]}
    for pname, p in method.named_parameters():
        assert (id(p) in grouped) == p.requires_grad, pname
        if not p.requires_grad:
            assert p.grad is None, pname
    # Biases and norm parameters are flagged for no weight decay / no LARS adaptation.
    for g in method.param_groups():
        assert all((p.ndim <= 1) == g["exclude_decay"] for p in g["params"]), g["name"]


@pytest.mark.parametrize(
    "name,online,target",
    [
        ("byol", "backbone", "target_backbone"),
        ("moco_v2", "projection", "key_projection"),
        ("moco_v3", "backbone", "key_backbone"),
        ("dino", "head", "teacher_head"),
    ],
)
def test_momentum_encoders_follow_the_online_network_by_ema(name: str, online: str, target: str) -> None:
    method = build(name)
    before = [p.clone() for p in getattr(method, target).parameters()]
    train_step(method, views_for(method))
    m = method.momentum
    assert 0 < m < 1
    for b, o, t in zip(
        before, getattr(method, online).parameters(), getattr(method, target).parameters(), strict=True
    ):
        torch.testing.assert_close(t, m * b + (1 - m) * o.detach())


def test_simclr_step_is_ntxent_of_the_projected_views() -> None:
    method = build("simclr")
    views = views_for(method)
    method.train()
    expected = NTXentLoss(0.5)(*(method.projection(h) for h in method.backbone(torch.cat(views)).chunk(2)))
    torch.testing.assert_close(method(views)["loss"], expected)


def test_moco_v2_queue_takes_the_keys_of_both_views() -> None:
    # The step's loss is InfoNCE of each view's query against the other view's key among the
    # queue as it was before the step, and the queue then holds exactly those keys.
    method = build("moco_v2")
    views = views_for(method, n=8)
    keys = []
    original = method._keys
    method._keys = lambda x: keys.append(original(x)) or keys[-1]  # type: ignore[method-assign]
    before = method.queue().clone()
    out = train_step(method, views)
    k1, k0 = keys  # the key of view 1 (for query 0), then of view 0
    assert int(method.queue.pointer) == 16
    torch.testing.assert_close(method.queue.queue[:8], k1)
    torch.testing.assert_close(method.queue.queue[8:16], k0)
    torch.testing.assert_close(method.queue.queue[16:], before[16:])
    # The loss, recomputed with the weights the step started from.
    start = build("moco_v2")
    q0, q1 = (start.projection(start.backbone(v)) for v in views)
    expected = (start.loss(q0, k1, before) + start.loss(q1, k0, before)) / 2
    torch.testing.assert_close(out["loss"], expected)


def test_swav_freezes_prototypes_in_the_first_epoch_and_keeps_them_normalised() -> None:
    method = build("swav")
    before = method.prototypes.layer.weight.clone()
    train_step(method, views_for(method), epoch=0)
    torch.testing.assert_close(method.prototypes.layer.weight, before)
    train_step(method, views_for(method), epoch=1)
    assert not torch.allclose(method.prototypes.layer.weight, before)
    torch.testing.assert_close(method.prototypes.layer.weight.norm(dim=1), torch.ones(10))
    # Queue: two steps of 8 filled the 16 slots; the next step's Sinkhorn batch joins it.
    assert int(method.queue_seen) == 16
    views = views_for(method, seed=1)
    with torch.no_grad():
        feats = forward_crops(method.backbone, views)
        z = [nn.functional.normalize(method.projection(h), dim=1) for h in feats]
        scores = [method.prototypes(x) for x in z]
        queued = [method.prototypes(q()) for q in method.queues]
        expected = method.loss(scores[:2], scores[2:], queued)
        without = method.loss(scores[:2], scores[2:], None)
    out = train_step(method, views, epoch=1)
    torch.testing.assert_close(out["loss"], expected)
    assert not torch.allclose(expected, without)  # the queue changes the codes


def test_dino_freezes_the_last_layer_first_and_warms_up_the_teacher_temperature() -> None:
    # The authors' np.linspace(0.04, 0.07, W): the final value at epoch W - 1 (W = 3).
    method = build(
        "dino", warmup_teacher_temperature=0.04, teacher_temperature=0.07, warmup_teacher_temperature_epochs=3
    )
    last = method.head.last_layer.parametrizations.weight.original1.clone()
    train_step(method, views_for(method), epoch=0)
    torch.testing.assert_close(method.head.last_layer.parametrizations.weight.original1, last)
    assert method.teacher_temperature == pytest.approx(0.04)
    for epoch, expected in [(1, 0.055), (2, 0.07), (3, 0.07), (5, 0.07)]:
        method.schedule(0, 10, epoch=epoch)
        assert method.teacher_temperature == pytest.approx(expected), epoch


@pytest.mark.parametrize("name", sorted(SMALL))
def test_schedules_do_not_recompile_the_compiled_step(name: str) -> None:
    # BYOL's momentum and DINO's teacher temperature (warmed up over epochs) change as training
    # goes; SwAV's queue is on from epoch 0. Once the first steps have compiled (the queue
    # filling takes a branch once), later steps at new schedule values reuse the graphs: a
    # Python float in the forward recompiled every step and, past torch's limit of 8, left the
    # rest of the run eager. The logged values still follow the schedules.
    changes = {"dino": dict(warmup_teacher_temperature_epochs=6, teacher_temperature=0.07)}
    method = build(name, **changes.get(name, {})).train()
    views = views_for(method)
    points = [(0, 0), (1, 0), (2, 0), (3, 0), (30, 1), (55, 2), (70, 3), (99, 4)]
    counts = compiles_while_training(method, lambda: (views,), points)
    assert counts[-1] == counts[3], counts
    if name in ("byol", "dino"):
        logged = method.logged()
        assert set(logged) == {"momentum" if name == "byol" else "teacher_temperature"}
        assert logged == {k: getattr(method, k) for k in logged} and 0 < next(iter(logged.values())) < 1


@pytest.mark.parametrize("warmup", [0, 1])
def test_dino_teacher_temperature_warm_up_of_at_most_one_epoch(warmup: int) -> None:
    # np.linspace(a, b, 1) == [a]: one warm-up epoch keeps the start value for epoch 0.
    temperatures = dict(warmup_teacher_temperature=0.04, teacher_temperature=0.07)
    method = build("dino", **temperatures, warmup_teacher_temperature_epochs=warmup)
    method.schedule(0, 10, epoch=0)
    assert method.teacher_temperature == pytest.approx(0.04 if warmup else 0.07)
    method.schedule(0, 10, epoch=1)
    assert method.teacher_temperature == pytest.approx(0.07)


@pytest.mark.parametrize(
    ("per_crop", "expected"),
    [(False, {"head": [32], "teacher_head": [16]}), (True, {"head": [8] * 4, "teacher_head": [8] * 2})],
)
def test_dino_head_batch_norm_sees_all_crops_at_once(per_crop: bool, expected: dict) -> None:
    # As MultiCropWrapper: one head pass over every crop concatenated (4 crops of 8 for the
    # student, the 2 global crops for the teacher), so BN normalises over all of them;
    # head_per_crop keeps the per-crop passes that trained the published weights.
    method = build("dino", batch_norm_head=True, head_per_crop=per_crop)
    rows: dict[str, list[int]] = {"head": [], "teacher_head": []}
    for name in rows:
        bn = next(m for m in getattr(method, name).modules() if isinstance(m, nn.BatchNorm1d))
        bn.register_forward_hook(lambda _m, args, _out, name=name: rows[name].append(len(args[0])))
    method.train()
    out = method(views_for(method, n=8))
    assert rows == expected
    assert torch.isfinite(out["loss"])


def _moco_v3_head_layout(method: nn.Module) -> tuple[int, bool, bool]:
    """(projector Linear layers, projector ends with BN, predictor ends with BN)."""
    proj, pred = list(method.projection.layers), list(method.prediction.layers)
    return (
        sum(isinstance(m, nn.Linear) for m in proj),
        isinstance(proj[-1], nn.BatchNorm1d),
        isinstance(pred[-1], nn.BatchNorm1d),
    )


class _TinyViT(nn.Module):
    """Stands for a timm ViT: what MoCo v3 looks for is the ``patch_embed`` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 8, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x).flatten(2).mean(-1)


def test_moco_v3_heads_follow_the_authors_code_for_the_backbone() -> None:
    # moco-v3 builder.py: MoCo_ResNet _build_mlp(2, ...) projector and a predictor without
    # the last BN; MoCo_ViT a 3-layer projector and a predictor with it.
    resnet = build("moco_v3")
    assert _moco_v3_head_layout(resnet) == (2, True, False)
    assert all(m.bias is None for m in _linears_of(resnet.prediction))  # their Linear(bias=False)
    cls = get_method("moco_v3")
    vit = cls(_TinyViT(), 8, cls.Config(**SMALL["moco_v3"]))
    assert _moco_v3_head_layout(vit) == (3, True, True)
    # Pinned (the ResNet recipes that trained published weights keep the old ViT layout).
    old = build("moco_v3", projector_layers=3, predictor_last_bn=True)
    assert _moco_v3_head_layout(old) == (3, True, True)
    for method in (resnet, vit, old):
        out = train_step(method, views_for(method))
        assert torch.isfinite(out["loss"])


def _linears_of(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_simsiam_predictor_has_a_fixed_learning_rate() -> None:
    groups = {g["name"]: g for g in build("simsiam").param_groups()}
    assert groups["predictor"]["fixed_lr"] and "fixed_lr" not in groups["encoder"]


def test_methods_reject_a_wrong_number_of_views_and_a_wrong_config() -> None:
    method = build("byol")
    with pytest.raises(ValueError, match="2 views"):
        method([torch.randn(2, 3, 8, 8)])
    with pytest.raises(TypeError, match="BYOLConfig"):
        get_method("byol")(tiny_backbone(), 8, get_method("simclr").Config())
    with pytest.raises(ValueError, match="unknown method"):
        get_method("mocov9")


def test_barlow_twins_bias_lr_scale_sets_the_biases_and_norms_groups_lr_scale() -> None:
    # The authors' 0.0048 for biases and norms against 0.2 for weights (the trainer multiplies
    # a group's scheduled lr by its lr_scale).
    default = {g["name"]: g for g in build("barlow_twins").param_groups()}
    assert all("lr_scale" not in g for g in default.values())
    groups = {g["name"]: g for g in build("barlow_twins", bias_lr_scale=0.024).param_groups()}
    assert groups["biases_and_norms"]["lr_scale"] == 0.024 and "lr_scale" not in groups["weights"]
    assert all(p.ndim <= 1 for p in groups["biases_and_norms"]["params"])
    with pytest.raises(ValueError, match="bias_lr_scale"):
        build("barlow_twins", bias_lr_scale=0.0)


def test_barlow_twins_scale_loss_multiplies_the_loss_and_is_validated() -> None:
    views = views_for(build("barlow_twins"))
    plain = build("barlow_twins")(views)["loss"]
    scaled = build("barlow_twins", scale_loss=0.1)(views)["loss"]
    assert scaled.item() == pytest.approx(0.1 * plain.item(), rel=1e-5)
    with pytest.raises(ValueError, match="scale_loss"):
        build("barlow_twins", scale_loss=0.0)
