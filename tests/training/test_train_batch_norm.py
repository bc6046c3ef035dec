"""zoo.training.batch_norm: re-estimation on whole images (run.bn_recalibration_images), and batch
norm over groups of a batch (MoCo's shuffling BN in one process, method.bn_splits)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from zoo.training.batch_norm import SplitBatchNorm2d, recalibrated, recalibration_indices, split_batch_norm
from zoo.training.data import evaluation_batches, load_split
from zoo.training.distributed import batch_shuffle, batch_unshuffle
from zoo.training.loop import Trainer, load_run
from zoo.training.methods import get_method
from zoo.training.recipe import recipe_from_dict

import zoo


@pytest.fixture(scope="module")
def images(cifar_root: Path) -> torch.Tensor:
    """24 real CIFAR-10 training images, normalised, as two equal batches' worth."""
    stored, _, _ = load_split(cifar_root / "train", 32, limit_per_class=3)
    return next(evaluation_batches(stored[:24], 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.Dropout(0.5), nn.ReLU())


def test_the_statistics_are_the_average_over_the_batches_of_each_batch_s_own(images: torch.Tensor) -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = list(images.split(12))
    out = recalibrated(model, batches)

    # By hand: the conv's output per batch, its per-channel mean and unbiased variance.
    acts = [model[0](x).detach() for x in batches]
    mean = torch.stack([a.mean(dim=(0, 2, 3)) for a in acts]).mean(0)
    var = torch.stack([a.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for a in acts]).mean(0)
    bn = out[1]
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert int(bn.num_batches_tracked) == 2 and bn.momentum == 0.3  # the layer's own momentum is back
    # Learned weights untouched, the original model untouched, the copy in eval mode.
    torch.testing.assert_close(out[0].weight, model[0].weight)
    torch.testing.assert_close(bn.weight, model[1].weight)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert not out.training and not any(m.training for m in out.modules())
    # Dropout stayed off while the statistics were gathered: the same on a second call.
    again = recalibrated(model, batches)
    torch.testing.assert_close(again[1].running_var, bn.running_var)


def test_no_batch_norm_or_no_images_is_an_error(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="no batch-norm layer"):
        recalibrated(nn.Sequential(nn.Conv2d(3, 4, 3)), [images])
    with pytest.raises(ValueError, match="no images"):
        recalibrated(_model(), [])


def test_a_patch_method_exports_the_backbone_with_whole_image_statistics(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    recipe = recipe_from_dict(
        {
            "name": "relative-patch-test-cifar10",
            "arch": "resnet18_cifar_quarter",
            "method": {
                "name": "relative_patch",
                "patch_size": 8,
                "gap": 2,
                "jitter": 1,
                "head_hidden_dim": 32,
            },
            "data": {"path": str(tiny_dataset), "image_size": 32},
            "augment": {"preset": "simclr", "size": 32, "jitter_strength": 0.0},
            "optim": {"name": "sgd", "lr": 0.05},
            "train": {"epochs": 1, "batch_size": 12, "threads": 1, "seed": 0},
            "run": {
                "out_dir": str(tmp_path / "run"),
                "knn_every_epochs": 0,
                "knn_k": 5,
                "export_onnx": False,
                "bn_recalibration_images": 24,
            },
        }
    )
    result = Trainer(recipe, progress=False).fit()
    exported = zoo.load(str(result.export_dir)).backbone.state_dict()

    trainer, _ = load_run(result.out_dir, "relative_patch")  # the training backbone, from the checkpoint
    trained = trainer.method.backbone.state_dict()
    expected = trainer.evaluation_backbone().state_dict()
    stats = [k for k in trained if k.endswith("running_mean")]
    assert stats
    for k in stats:
        torch.testing.assert_close(exported[k], expected[k])
        assert not torch.allclose(exported[k], trained[k])  # patch statistics are not whole-image ones
    for k in (k for k in trained if k.endswith(".weight")):
        torch.testing.assert_close(exported[k], trained[k].float())
    # The same 24 images each time: the recalibrated copy is deterministic.
    torch.testing.assert_close(trainer.evaluation_backbone().state_dict()[stats[0]], expected[stats[0]])

    # recalibrate_knn draws the trainer's images: on the training backbone (patch statistics) it
    # reads exactly what the export reads with its shipped statistics.
    from zoo.training.recalibrate_knn import recalibrate_knn

    from zoo.export import save_folder

    as_trained = zoo.load(str(result.export_dir))
    as_trained.backbone.load_state_dict(trained)
    folder = str(save_folder(as_trained, tmp_path / "as_trained", card=False))
    before = recalibrate_knn(folder, str(tiny_dataset), images=[0, 24], seed=0)
    shipped = recalibrate_knn(str(result.export_dir), str(tiny_dataset), images=[0])
    assert [before["24 k=20"], before["24 k=200"]] == [shipped["shipped k=20"], shipped["shipped k=200"]]


def test_recalibration_draws_whole_equal_batches_of_a_seeded_permutation() -> None:
    idx, batch = recalibration_indices(1000, 600, seed=3)
    assert len(idx) == 512  # two batches of 256: a third, partial one would weigh as much as them
    assert torch.equal(idx, torch.randperm(1000, generator=torch.Generator().manual_seed(3))[:512])
    assert batch == 256
    assert torch.equal(recalibration_indices(1000, 100, seed=3)[0], idx[:100])  # one batch of 100
    assert len(recalibration_indices(50, 600, seed=3)[0]) == 50  # more than there are: all of them
    assert not torch.equal(recalibration_indices(1000, 100, seed=4)[0], idx[:100])
    with pytest.raises(ValueError, match=">= 1"):
        recalibration_indices(1000, 0, seed=3)


def test_recalibrate_knn_forgets_the_shipped_statistics(tmp_path: Path, tiny_dataset: Path) -> None:
    from zoo.training.recalibrate_knn import main, recalibrate_knn

    from zoo.export import save_folder

    torch.manual_seed(0)
    model = zoo.create_model("resnet18_cifar_quarter")
    clean = str(save_folder(model, tmp_path / "clean", card=False))
    with torch.no_grad():
        for m in model.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(3.0)
                m.running_var.mul_(50.0)
    skewed = str(save_folder(model, tmp_path / "skewed", card=False))
    a = recalibrate_knn(clean, str(tiny_dataset), images=[0, 24])
    b = recalibrate_knn(skewed, str(tiny_dataset), images=[0, 24])
    assert list(a) == ["shipped k=20", "shipped k=200", "24 k=20", "24 k=200"]
    assert (a["24 k=20"], a["24 k=200"]) == (b["24 k=20"], b["24 k=200"])
    # The reading does see the statistics: these read differently before re-estimation (at
    # 3 x 6 test images a coincidence would need every prediction to agree on both protocols).
    assert (a["shipped k=20"], a["shipped k=200"]) != (b["shipped k=20"], b["shipped k=200"])
    with pytest.raises(SystemExit):
        main([clean, str(tiny_dataset), "--images", "-1"])


def _grouped_bn(
    x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """The direct formula: each group of consecutive samples by its own biased mean and variance."""
    out = []
    for g in x.chunk(groups):
        mean = g.mean(dim=(0, 2, 3), keepdim=True)
        var = g.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        out.append((g - mean) / torch.sqrt(var + eps) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1))
    return torch.cat(out)


@pytest.mark.parametrize("channels_last", [False, True])
def test_split_batch_norm_normalises_each_group_by_its_own_statistics(
    images: torch.Tensor, channels_last: bool
) -> None:
    torch.manual_seed(1)
    x = images[:12].clone()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    bn = SplitBatchNorm2d(3, 3, momentum=0.2)
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    x.requires_grad_(True)
    out = bn(x)
    ref_x = x.detach().clone().requires_grad_(True)
    ref = _grouped_bn(ref_x, 3, bn.weight, bn.bias, bn.eps)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # The next convolution gets the layout it was given.
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    # Gradients are those of the formula.
    grad = torch.randn_like(out)
    (out * grad).sum().backward()
    (ref * grad).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-5)
    # Running statistics: the momentum update with the groups' average (unbiased) statistics.
    groups = x.detach().chunk(3)
    mean = torch.stack([g.mean(dim=(0, 2, 3)) for g in groups]).mean(0)
    var = torch.stack([g.var(dim=(0, 2, 3), unbiased=True) for g in groups]).mean(0)
    torch.testing.assert_close(bn.running_mean, 0.2 * mean, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(bn.running_var, 0.8 + 0.2 * var, rtol=1e-4, atol=1e-6)
    assert int(bn.num_batches_tracked) == 1
    # Eval mode is plain batch norm on the running statistics.
    plain = nn.BatchNorm2d(3)
    plain.load_state_dict(bn.state_dict())
    torch.testing.assert_close(bn.eval()(x.detach()), plain.eval()(x.detach()))


def test_a_batch_that_does_not_split_is_an_error_that_says_so(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="a batch of 10 does not split into 4 batch-norm groups"):
        SplitBatchNorm2d(3, 4)(images[:10])


def test_split_batch_norm_keeps_the_backbone_s_weights_and_state_dict_keys(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    plain = zoo.create_model("resnet18_cifar_quarter").backbone
    plain.train()(images)  # running statistics that are not the initial ones
    split = split_batch_norm(copy.deepcopy(plain), 4)
    norms = [m for m in split.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(type(m) is SplitBatchNorm2d for m in norms)
    state, plain_state = split.state_dict(), plain.state_dict()
    assert list(state) == list(plain_state)
    assert all(torch.equal(state[k], plain_state[k]) for k in state)
    torch.testing.assert_close(split.eval()(images), plain.eval()(images))  # what evaluation and export see
    # Re-estimated statistics are those of whole batches, whatever their size (here 10, not a multiple of 4).
    torch.testing.assert_close(
        recalibrated(split, [images[:10]]).state_dict(), recalibrated(plain, [images[:10]]).state_dict()
    )


def test_moco_v2_in_one_process_splits_both_encoders_and_shuffles_the_keys(images: torch.Tensor) -> None:
    cls = get_method("moco_v2")
    config = cls.Config(proj_hidden_dim=16, proj_out_dim=8, queue_size=24, bn_splits=4)
    torch.manual_seed(0)
    method = cls(zoo.create_model("resnet18_cifar_quarter").backbone, 128, config)
    for encoder in (method.backbone, method.key_backbone):
        assert any(type(m) is SplitBatchNorm2d for m in encoder.modules())
    # One process: a real permutation, and unshuffling restores the order.
    torch.manual_seed(3)
    shuffled, perm = batch_shuffle(images[:12])
    assert not torch.equal(perm, torch.arange(12))
    assert torch.equal(batch_unshuffle(shuffled, perm), images[:12])
    loss = method([images[:12], images[12:24]])["loss"]
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="bn_splits must be >= 1"):
        cls(zoo.create_model("resnet18_cifar_quarter").backbone, 128, cls.Config(bn_splits=0))
