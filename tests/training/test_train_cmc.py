"""CMC: L and ab of Lab through two encoders, the two-way NCE, the exported concatenation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _seed_methods import seed_recipe, short_run_beats_random_init, stop_and_resume_equals_uninterrupted
from zoo.training.augment import LAB_MEAN, LAB_STD, rgb_to_lab
from zoo.training.data import evaluation_batches
from zoo.training.loop import Trainer
from zoo.training.losses.cmc import CMCLoss
from zoo.training.losses.nce import NCELoss
from zoo.training.methods.cmc import CMC as CMCMethod
from zoo.training.methods.cmc import CMCConfig
from zoo.training.publish import exported_arch
from zoo.training.recipe import load_recipe, recipe_from_dict

import zoo
from zoo.errors import ZooError
from zoo.folder import load_state_dict_strict
from zoo.models.lab_split import LabSplitEncoder

CMC = {"name": "cmc", "out_dim": 16, "num_negatives": 32}


def test_cmc_loss_anchors_each_view_on_the_other_views_memory() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    m1 = (torch.randn(4, 8, generator=g), torch.randn(4, 6, 8, generator=g))
    m2 = (torch.randn(4, 8, generator=g), torch.randn(4, 6, 8, generator=g))
    expected = NCELoss(40, 0.07)(z1, *m2) + NCELoss(40, 0.07)(z2, *m1)
    torch.testing.assert_close(CMCLoss(40, 0.07)(z1, z2, m1, m2), expected)


def test_cmc_loss_with_the_softmax_estimator_is_the_two_cross_entropies() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    m1 = (torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g))
    m2 = (torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g))

    def direct(anchor: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        a = torch.nn.functional.normalize(anchor, dim=1)
        own, noise = memory
        logits = torch.cat([(a * own).sum(1, keepdim=True), a @ noise.T], 1) / 0.07
        return -(logits[:, 0] - logits.logsumexp(1)).mean()

    loss = CMCLoss(40, 0.07, estimator="softmax")(z1, z2, m1, m2)
    torch.testing.assert_close(loss, direct(z1, m2) + direct(z2, m1))


def test_cmc_banks_start_from_the_initial_embeddings(tmp_path: Path, cifar_root: Path) -> None:
    recipe = recipe_from_dict(seed_recipe(tmp_path / "run", cifar_root, {**CMC, "bank_init": "features"}))
    trainer = Trainer(recipe)
    trainer._setup()
    trainer._epoch_pass(0)
    method = trainer.method.eval()
    x = real_batch(trainer, 8)
    with torch.no_grad():
        z_l, z_ab = method.embed_halves(method.backbone.to_lab(x))
    # The pass embeds the images as the kNN monitor does; the banks hold each half's embedding.
    torch.testing.assert_close(method.l_memory.bank[:8], z_l, atol=2e-2, rtol=0)
    torch.testing.assert_close(method.ab_memory.bank[:8], z_ab, atol=2e-2, rtol=0)
    assert not method.epoch_pass_due(1)


CMC_QUEUE = {**CMC, "memory": "queue", "queue_size": 48, "base_momentum": 0.9}


def test_the_queue_form_contrasts_each_query_with_the_other_views_key_and_queue(
    tmp_path: Path, cifar_root: Path
) -> None:
    trainer = Trainer(recipe_from_dict(seed_recipe(tmp_path / "run", cifar_root, CMC_QUEUE)))
    trainer._setup()
    method = trainer.method
    assert not hasattr(method, "l_memory") and not method.epoch_pass_due(0)
    lab = torch.randn(6, 3, 16, 16)
    l_queue, ab_queue = method.l_queue().clone(), method.ab_queue().clone()
    out = method.training_step([lab], torch.arange(6))
    # The momentum copies start as the encoders, so the keys are the queries' values, detached.
    with torch.no_grad():
        z_l, z_ab = method.embed_halves(lab)

    def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.07
        return -(logits[:, 0] - logits.logsumexp(1)).mean()

    expected = info_nce(z_l, z_ab, ab_queue) + info_nce(z_ab, z_l, l_queue)
    torch.testing.assert_close(out["loss"].detach(), expected, atol=1e-4, rtol=1e-4)
    # After the optimiser step both queues hold the batch's keys (the newest 6 entries), and
    # the key encoders move towards the trained ones by 1 - momentum.
    torch.testing.assert_close(method.l_queue(), l_queue)
    before = method.key_backbone.l_net.conv1.weight.clone()
    out["loss"].backward()
    with torch.no_grad():
        method.backbone.l_net.conv1.weight.add_(1.0)
    method.schedule(0, 10, 0)
    method.after_optimizer_step()
    torch.testing.assert_close(method.ab_queue()[:6], z_ab, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(method.l_queue()[:6], z_l, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(method.key_backbone.l_net.conv1.weight, before + 0.1)


def test_the_queue_form_stops_and_resumes_exactly(tmp_path: Path, cifar_root: Path) -> None:
    stop_and_resume_equals_uninterrupted(tmp_path, cifar_root, CMC_QUEUE, stop=7)


def test_the_queue_form_trains_compiled(tmp_path: Path, cifar_root: Path) -> None:
    # The recipe compiles the step; the queues must not be written inside it (see training_step).
    recipe = seed_recipe(tmp_path / "run", cifar_root, CMC_QUEUE, train__max_steps=3, train__compile=True)
    assert Trainer(recipe_from_dict(recipe)).fit().steps == 3


def test_the_batch_normalised_embedding_trains_and_resumes_exactly(tmp_path: Path, cifar_root: Path) -> None:
    stop_and_resume_equals_uninterrupted(
        tmp_path, cifar_root, {**CMC_QUEUE, "embed_batch_norm": True}, stop=7
    )
    method = CMCMethod(
        zoo.create_model("cmc_resnet18_cifar_quarter").backbone,
        256,
        CMCConfig(memory="queue", embed_batch_norm=True),
    )
    assert isinstance(method.key_l_embed[1], torch.nn.BatchNorm1d)


def test_a_bad_memory_is_one_error() -> None:
    backbone = zoo.create_model("cmc_resnet18_cifar_quarter").backbone
    with pytest.raises(ValueError, match="cmc: memory must be one of"):
        CMCMethod(backbone, 256, CMCConfig(memory="fifo"))
    with pytest.raises(ValueError, match="cmc: normaliser_momentum applies to memory: bank"):
        CMCMethod(backbone, 256, CMCConfig(memory="queue", normaliser_momentum=0.01))


def test_the_bank_form_passes_the_normaliser_momentum_to_both_directions() -> None:
    from zoo.training.methods.base import DataInfo

    method = CMCMethod(
        zoo.create_model("cmc_resnet18_cifar_quarter").backbone, 256, CMCConfig(normaliser_momentum=0.01)
    )
    method.setup_data(DataInfo(num_samples=20, num_classes=2))
    loss = method.loss
    assert loss.view1_anchor.normaliser_momentum == loss.view2_anchor.normaliser_momentum == 0.01


def test_the_encoder_splits_lab_as_the_training_views_do() -> None:
    torch.manual_seed(0)
    encoder = LabSplitEncoder(zoo.create_model("resnet18_cifar_quarter").backbone).eval()
    assert encoder.l_net.conv1.in_channels == 1 and encoder.ab_net.conv1.in_channels == 2
    rgb = torch.rand(3, 3, 16, 16)
    mean, std = (
        torch.tensor(zoo.registry.IMAGENET_MEAN).view(1, 3, 1, 1),
        torch.tensor(zoo.registry.IMAGENET_STD).view(1, 3, 1, 1),
    )
    lab = (rgb_to_lab(rgb) - torch.tensor(LAB_MEAN).view(1, 3, 1, 1)) / torch.tensor(LAB_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = encoder((rgb - mean) / std)
        l_feats, ab_feats = encoder.l_net(lab[:, :1]), encoder.ab_net(lab[:, 1:])
    assert feats.shape == (3, 256)
    torch.testing.assert_close(feats, torch.cat([l_feats, ab_feats], 1), atol=1e-4, rtol=1e-4)


def test_cmc_trains_both_encoders_and_the_monitor_sees_the_concatenation(
    tmp_path: Path, cifar_root: Path
) -> None:
    recipe = recipe_from_dict(
        seed_recipe(tmp_path / "run", cifar_root, CMC, train__max_steps=5, run__knn_every_epochs=1)
    )
    trainer = Trainer(recipe)
    result = trainer.fit()
    assert result.knn and 0 <= result.knn[-1]["top1"] <= 100
    assert trainer.embed(trainer.images[:4]).shape == (4, 256)
    fresh = Trainer(recipe)
    fresh._setup()
    for half in ("l_net", "ab_net"):
        before = getattr(fresh.method.backbone, half).conv1.weight
        assert not torch.equal(getattr(trainer.method.backbone, half).conv1.weight, before), half


def test_cmc_stops_and_resumes_exactly(tmp_path: Path, cifar_root: Path) -> None:
    stop_and_resume_equals_uninterrupted(tmp_path, cifar_root, CMC, stop=7)


@pytest.mark.slow
def test_a_short_cmc_run_beats_random_init(tmp_path: Path, cifar_root: Path) -> None:
    short_run_beats_random_init(tmp_path, "cmc_r18q_cifar10", cifar_root)


def real_batch(trainer: Trainer, n: int = 16) -> torch.Tensor:
    """The first ``n`` training images as the trainer evaluates them (centre crop, normalised)."""
    return next(evaluation_batches(trainer.images[:n], trainer.eval_size, trainer.mean, trainer.std))


def test_the_recipe_trains_the_registered_split_arch() -> None:
    recipe = load_recipe("cmc_r18q_cifar10")
    assert recipe.arch == "cmc_resnet18_cifar_quarter" and recipe.run.export
    assert zoo.registry.get_arch(recipe.arch).embed_dim == 2 * 128


def test_a_cmc_run_exports_a_folder_that_computes_the_trained_features(
    tmp_path: Path, cifar_root: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from zoo.onnx import parity

    recipe = seed_recipe(tmp_path / "run", cifar_root, CMC, train__epochs=1, run__export=True)
    recipe["arch"] = "cmc_resnet18_cifar_quarter"
    trainer = Trainer(recipe_from_dict(recipe))
    result = trainer.fit()
    folder = result.export_dir
    assert folder is not None and (folder / "model.onnx").is_file()
    encoder = zoo.load_folder(folder)
    assert encoder.arch == "cmc_resnet18_cifar_quarter" and encoder.embed_dim == 256
    assert encoder.preprocess.mean == trainer.mean and encoder.preprocess.input_size == trainer.eval_size
    x = real_batch(trainer)
    with torch.no_grad():
        trained = trainer.method.backbone.eval()(x)
        loaded = encoder.eval()(x)
    torch.testing.assert_close(loaded, trained, atol=1e-5, rtol=1e-5)
    # The Lab conversion is in the graph: ONNX Runtime gives the PyTorch features, in the run's
    # export and in `zoo export` of that folder.
    assert parity(encoder.backbone, folder / "model.onnx", x) < 1e-4
    from zoo.cli import main

    assert main(["export", str(folder), "--out", str(tmp_path / "again")]) == 0
    assert parity(encoder.backbone, tmp_path / "again" / "model.onnx", x) < 1e-4


def test_a_run_on_the_plain_base_arch_keeps_its_checkpoint_keys_and_exports_as_the_split_arch(
    cifar_root: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    config = CMCConfig(out_dim=16, num_negatives=32)
    plain = CMCMethod(zoo.create_model("resnet18_cifar_quarter").backbone, 128, config)
    split = CMCMethod(zoo.create_model("cmc_resnet18_cifar_quarter").backbone, 256, config)
    # A checkpoint of either loads into the other (same keys and shapes, embeddings included).
    split.load_state_dict(plain.state_dict())
    # The trained two-encoder module of a plain-arch run is the registered arch's, exactly.
    target = zoo.create_model("cmc_resnet18_cifar_quarter").backbone.eval()
    load_state_dict_strict(target, plain.backbone.state_dict(), "plain-arch CMC run")
    trainer = Trainer(recipe_from_dict(seed_recipe(tmp_path / "run", cifar_root, CMC)))
    trainer._setup()
    assert trainer.recipe.arch == "resnet18_cifar_quarter"
    assert exported_arch(trainer) == "cmc_resnet18_cifar_quarter"
    x = real_batch(trainer)
    with torch.no_grad():
        torch.testing.assert_close(target(x), plain.backbone.eval()(x))


def test_export_refuses_an_encoder_expecting_another_normalisation(tmp_path: Path, cifar_root: Path) -> None:
    trainer = Trainer(recipe_from_dict(seed_recipe(tmp_path / "run", cifar_root, CMC)))
    trainer._setup()
    trainer.method.backbone.mean = (0.5, 0.5, 0.5)
    with pytest.raises(ZooError, match="expects RGB normalised with mean"):
        exported_arch(trainer)


def test_no_split_arch_for_the_base_is_one_clear_error() -> None:
    from zoo.models.lab_split import lab_split_arch

    assert lab_split_arch("resnet18_cifar_half") == "cmc_resnet18_cifar_half"
    with pytest.raises(ValueError, match=r"no Lab-split \(CMC\) architecture is registered for 'resnet50'"):
        lab_split_arch("resnet50")
