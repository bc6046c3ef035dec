"""Batch-norm re-estimation on whole images (zoo.training.batch_norm, run.bn_recalibration_images)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from zoo.training.batch_norm import recalibrated
from zoo.training.data import evaluation_batches, load_split
from zoo.training.loop import Trainer, load_run
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
