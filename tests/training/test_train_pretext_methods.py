"""The pretext-task methods (issue 11) on real CIFAR-10 images: a real optimisation step of
each, the behaviour that defines it, its pretext metric in metrics.csv, size errors before
training, and (slow) short real runs that beat a random-init encoder on kNN."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _seed_methods import WHOLE_SPLIT, compiles_while_training, short_run_beats_random_init
from torch import nn
from zoo.training.checkpoint import CHECKPOINT_NAME, Progress
from zoo.training.data import decode
from zoo.training.loop import Trainer, read_csv
from zoo.training.methods import get_method
from zoo.training.pretext import PretextSizeError, images, patches
from zoo.training.recipe import recipe_from_dict

import zoo
from zoo.errors import ZooError
from zoo.registry import get_arch

#: Small settings of each method for fast steps: (arch, method config).
SMALL = {
    "rotnet": ("resnet18_cifar_quarter", {}),
    "mae": ("vit_tiny_patch4_32", {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2}),
    "jigsaw": ("resnet18_cifar_quarter", {"num_permutations": 20, "tile_size": 9, "head_hidden_dim": 32}),
    "colorization": ("resnet18_cifar_quarter", {"head_width": 16}),
    "inpainting": ("resnet18_cifar_quarter", {"adversarial_weight": 0.001, "discriminator_width": 8}),
    "super_resolution": ("resnet18_cifar_quarter", {}),
    "dcgan": ("resnet18_cifar_quarter", {"generator_width": 8, "latent_dim": 16}),
    "relative_patch": (
        "resnet18_cifar_quarter",
        {"patch_size": 8, "gap": 2, "jitter": 1, "head_hidden_dim": 32},
    ),
}
#: The pretext metric each method logs beside its loss.
METRIC = {
    "rotnet": "rotation_acc",
    "mae": "mask_ratio",
    "jigsaw": "jigsaw_acc",
    "colorization": "color_acc",
    "inpainting": "reconstruction_mse",
    "super_resolution": "reconstruction_mse",
    "dcgan": "d_real_acc",
    "relative_patch": "patch_acc",
}


@pytest.fixture(scope="module")
def batch(cifar_root: Path) -> torch.Tensor:
    """16 real CIFAR-10 images, normalised as the views are (2 per class, 8 classes)."""
    classes = sorted(p for p in (cifar_root / "train").iterdir() if p.is_dir())[:8]
    x = torch.stack([decode(f, 32) for c in classes for f in sorted(c.iterdir())[:2]])
    return images.normalize(x.float() / 255)


def build(name: str, **changes):
    arch, cfg = SMALL[name]
    cls = get_method(name)
    torch.manual_seed(0)
    method = cls(zoo.create_model(arch).backbone, get_arch(arch).embed_dim, cls.Config(**{**cfg, **changes}))
    if name == "colorization":  # the trainer's epoch pass does this from the training split
        method.set_prior(torch.ones(len(method.bins)))
    return method


def step(method, views: list[torch.Tensor]) -> dict:
    opt = torch.optim.SGD([p for g in method.param_groups() for p in g["params"]], lr=0.05)
    method.schedule(0, 10, 0)
    out = method(views)
    opt.zero_grad()
    out["loss"].backward()
    method.before_optimizer_step(0)
    opt.step()
    method.after_optimizer_step()
    return out


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_step_trains_the_encoder_and_reports_the_pretext_metric(name: str, batch: torch.Tensor) -> None:
    method = build(name)
    before = copy.deepcopy(method.backbone.state_dict())
    out = step(method, [batch])
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    assert METRIC[name] in out and out[METRIC[name]].ndim == 0
    moved = [k for k, v in method.backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert len(moved) > 10
    grouped = {id(p) for g in method.param_groups() for p in g["params"]}
    for pname, p in method.named_parameters():
        assert (id(p) in grouped) == p.requires_grad, pname
    # What ships is the backbone: it still maps images to (N, embed_dim) features.
    assert method.backbone.eval()(batch).shape == (16, method.embed_dim)


def test_rotnet_classifies_the_four_rotations_of_every_image(batch: torch.Tensor) -> None:
    method = build("rotnet").train()
    seen = []
    method.backbone.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    out = method([batch])
    x = seen[0]
    assert x.shape == (64, 3, 32, 32)
    torch.testing.assert_close(x[16:32], batch.rot90(1, dims=(-2, -1)))
    # rotation_acc is the accuracy of the logits on those labels.
    logits = method.head(method.backbone(x))
    labels = torch.arange(4).repeat_interleave(16)
    assert out["rotation_acc"].item() == pytest.approx(
        100 * (logits.argmax(1) == labels).float().mean().item()
    )


def test_rotnet_probe_blocks_measures_every_block(batch: torch.Tensor) -> None:
    from zoo.training.pretext.probe import probe_blocks

    labels = torch.arange(8).repeat_interleave(2).numpy()
    res = probe_blocks(build("rotnet").backbone, batch, labels, batch, labels, num_classes=8, epochs=5)
    assert list(res) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert all(0 <= v <= 100 for v in res.values())


def test_rotnet_probe_of_an_exported_folder(tmp_path: Path, tiny_dataset: Path) -> None:
    from zoo.training.pretext.probe import probe_folder

    from zoo.export import save_folder

    folder = save_folder(zoo.create_model("resnet18_cifar_quarter"), tmp_path / "enc", card=False)
    res = probe_folder(str(folder), str(tiny_dataset), train_per_class=4, test_per_class=2, epochs=2)
    assert list(res) == ["stem", "layer1", "layer2", "layer3", "layer4"]


def test_block_probe_refuses_splits_with_other_classes(tmp_path: Path, tiny_dataset: Path) -> None:
    import shutil

    from zoo.training.pretext.probe import probe_folder

    from zoo.errors import ImageError
    from zoo.export import save_folder

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    shutil.rmtree(data / "test" / "ship")  # label 2 would mean "ship" in train and nothing in test
    folder = save_folder(zoo.create_model("resnet18_cifar_quarter"), tmp_path / "enc", card=False)
    with pytest.raises(ImageError, match="different class folders"):
        probe_folder(str(folder), str(data), train_per_class=2, test_per_class=1, epochs=1)


def test_block_probe_random_init_probes_the_seeded_architecture(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.training.pretext import probe

    from zoo.export import save_folder

    torch.manual_seed(1)
    trained = zoo.create_model("resnet18_cifar_quarter")
    with torch.no_grad():
        trained.backbone.conv1.weight.add_(1.0)  # unlike any initialisation
    folder = save_folder(trained, tmp_path / "enc", card=False)
    probed = []
    monkeypatch.setattr(probe, "probe_blocks", lambda backbone, *a, **k: probed.append(backbone.state_dict()))
    small = {"train_per_class": 2, "test_per_class": 1, "epochs": 1}
    probe.probe_folder(str(folder), str(tiny_dataset), **small)
    probe.probe_folder(str(folder), str(tiny_dataset), random_init=True, **small)
    torch.manual_seed(0)
    seeded = zoo.create_model("resnet18_cifar_quarter").backbone.state_dict()
    assert torch.equal(probed[0]["conv1.weight"], trained.backbone.conv1.weight)
    assert all(torch.equal(probed[1][k], v) for k, v in seeded.items())
    with pytest.raises(SystemExit):  # the floor is never recorded as the encoder's numbers
        probe.main(["simclr-r18q-cifar10", str(tiny_dataset), "--random-init", "--record"])


def test_grid_features_average_the_backbone_over_each_patch() -> None:
    from zoo.training.pretext.grid_knn import grid_features

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten()).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = torch.stack(
        [
            torch.stack(
                [
                    backbone(x[n : n + 1, :, r : r + 8, c : c + 8])[0]
                    for r in range(0, 25, 4)
                    for c in range(0, 25, 4)
                ]
            ).mean(0)
            for n in range(2)
        ]
    )
    assert torch.allclose(grid_features(backbone, x, 7, 8), expected, atol=1e-6)


def test_grid_knn_reads_whole_images_and_patch_grids(tmp_path: Path, tiny_dataset: Path) -> None:
    from zoo.training.pretext.grid_knn import grid_knn

    from zoo.export import save_folder

    folder = str(save_folder(zoo.create_model("resnet18_cifar_quarter"), tmp_path / "enc", card=False))
    res = grid_knn(folder, str(tiny_dataset), grid=3, patch=16, recalibrate=True)
    assert list(res) == ["whole k=20", "whole k=200", "grid k=20", "grid k=200"]
    assert all(0 <= v <= 100 for v in res.values())
    with pytest.raises(ValueError, match="does not tile 32 px inputs"):
        grid_knn(folder, str(tiny_dataset), grid=3, patch=15)
    # --holdout chooses on training images alone: it runs with the test split gone, classifying
    # one of each class's 12 training images (a tenth, rounded) by the other 11.
    import shutil

    train_only = tmp_path / "train_only"
    shutil.copytree(tiny_dataset / "train", train_only / "train")
    held = grid_knn(folder, str(train_only), grid=3, patch=16, holdout=True)
    assert list(held) == list(res)
    assert set(held.values()) <= {0.0, 33.33, 66.67, 100.0}  # 3 queries


def test_block_probe_records_its_numbers(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.training.pretext.probe import main

    from zoo import results
    from zoo.errors import InvalidArgumentError
    from zoo.evaluate import shown_path

    table = tmp_path / "measured.csv"
    monkeypatch.setenv("ZOO_RESULTS", str(table))
    name, small = "simclr-r18q-cifar10", ["--train-per-class", "4", "--test-per-class", "2", "--epochs", "2"]
    main([name, str(tiny_dataset), *small, "--record"])
    rows = {r.protocol: r for r in results.load(table)}
    assert sorted(rows) == ["linear-layer1", "linear-layer2", "linear-layer3", "linear-layer4", "linear-stem"]
    assert {(r.model, r.weights) for r in rows.values()} == {(name, zoo.model_info(name).weights.sha256[:16])}
    command = f"python -m zoo.training.pretext.probe {name} {shown_path(tiny_dataset)} {' '.join(small)}"
    assert rows["linear-layer3"].command == command
    assert "pooled output of layer3" in rows["linear-layer3"].how
    # A folder has no row in the table: refused before any work.
    with pytest.raises(InvalidArgumentError, match="needs a registry name"):
        main([str(tmp_path), str(tiny_dataset), "--record"])


def test_mae_encoder_sees_only_the_visible_patches(batch: torch.Tensor) -> None:
    from zoo.training.methods.mae import patchify, unpatchify
    from zoo.training.pretext.masks import random_patch_mask

    method = build("mae").eval()
    keep, mask = random_patch_mask(16, 64, 0.75, torch.Generator().manual_seed(0))
    assert keep.shape == (16, 16)
    changed = patchify(batch, 4).clone()
    changed[mask] = torch.randn_like(changed[mask]) * 5  # rewrite every hidden patch
    changed = unpatchify(changed, 4)
    torch.testing.assert_close(unpatchify(patchify(batch, 4), 4), batch)
    with torch.no_grad():
        a = method.encode_visible(batch, keep)
        b = method.encode_visible(changed, keep)
        torch.testing.assert_close(a, b)  # nothing of the hidden patches reaches the encoder
        assert a.shape == (16, 17, 192)
        pred = method.decode(a, keep)
    assert pred.shape == (16, 64, 48)
    assert not method.backbone.pos_embed.requires_grad  # fixed sine-cosine, as the paper


def test_jigsaw_tiles_go_through_the_backbone_one_by_one(batch: torch.Tensor) -> None:
    method = build("jigsaw").train()
    seen = []
    method.backbone.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    out = method([batch])
    assert seen[0].shape == (16 * 9, 3, 9, 9)  # shared weights, one tile per row
    # Each tile normalised on its own.
    assert seen[0].mean(dim=(1, 2, 3)).abs().max() < 1e-4
    assert 0 <= out["jigsaw_acc"] <= 100
    assert method.permutations.shape == (20, 9) and method.head[-1].out_features == 20
    with pytest.raises(
        PretextSizeError, match=r"3x3 grid of 12 px tiles needs images of at least 36 px, got 32"
    ):
        build("jigsaw", tile_size=12)([batch])


def test_colorization_sees_only_lightness_and_predicts_quarter_resolution_ab(batch: torch.Tensor) -> None:
    from zoo.training.pretext.color import rgb_to_lab

    method = build("colorization").train()
    grey, z, colourful = method.targets(batch)
    lab_in = rgb_to_lab(images.denormalize(grey))
    lab = rgb_to_lab(images.denormalize(batch))
    torch.testing.assert_close(lab_in[:, 0], lab[:, 0], atol=0.05, rtol=0)  # the same L ...
    assert lab_in[:, 1:].abs().max() < 0.05  # ... and no colour
    assert z.shape == (16, len(method.bins), 8, 8) and colourful.all()
    # A grey view has no colour to learn from: it is left out of the loss.
    _, _, flags = method.targets(torch.cat([batch[:2], grey[:2]]))
    assert flags.tolist() == [True, True, False, False]
    fresh = get_method("colorization")(
        zoo.create_model("resnet18_cifar_quarter").backbone, 128, get_method("colorization").Config()
    )
    with pytest.raises(RuntimeError, match="epoch pass"):
        fresh([batch])


def _input_of(module: torch.nn.Module, fn) -> torch.Tensor:
    seen = []
    handle = module.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        fn()
    finally:
        handle.remove()
    return seen[0]


def test_inpainting_encoder_sees_the_image_with_the_region_removed(batch: torch.Tensor) -> None:
    method = build("inpainting", mask_mode="center", adversarial_weight=0.0).train()
    seen = _input_of(method.backbone.conv1, lambda: method([batch]))
    assert (seen[:, :, 8:24, 8:24] == 0).all()  # the central quarter, filled with the mean
    torch.testing.assert_close(seen[:, :, :8], batch[:, :, :8])
    method = build("inpainting", mask_mode="random", mask_fraction=0.5).train()
    seen = _input_of(method.backbone.conv1, lambda: method([batch]))
    assert ((seen == 0).all(1).float().mean(dim=(1, 2)) == 0.5).all()


def _grads(method, fn) -> dict[str, torch.Tensor]:
    method.zero_grad(set_to_none=True)
    fn().backward()
    return {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "name,critic,player,changes",
    [
        ("dcgan", "logit", "generator", {}),
        ("dcgan", "logit", "generator", {"mixed_batch": True}),
        ("inpainting", "discriminator", "decoder", {}),
    ],
)
def test_gan_players_get_only_the_gradient_of_their_own_loss(
    name: str, critic: str, player: str, changes: dict, batch: torch.Tensor
) -> None:
    method = build(name, **changes).train()
    twin = copy.deepcopy(method)
    torch.manual_seed(5)
    both = _grads(method, lambda: method([batch])["loss"])
    torch.manual_seed(5)
    out = twin([batch])
    d_only = _grads(twin, lambda: out["d_loss"] * 1.0)
    for k, g in d_only.items():
        if k.startswith(critic):  # the critic's gradient is its own loss's, nothing from G's term
            torch.testing.assert_close(both[k], g)
    assert any(k.startswith(critic) for k in d_only)
    assert not any(k.startswith(player) for k in d_only)  # D's loss does not reach the other player
    assert any(k.startswith(player) for k in both)


@pytest.mark.parametrize("mixed", [False, True])
def test_dcgan_discriminator_batches_real_and_generated_images_as_configured(
    mixed: bool, batch: torch.Tensor
) -> None:
    method = build("dcgan", mixed_batch=mixed).train()
    sizes: list[int] = []
    handle = method.backbone.conv1.register_forward_hook(lambda m, i, o: sizes.append(len(i[0])))
    try:
        torch.manual_seed(3)
        out = method([batch])
    finally:
        handle.remove()
    n = len(batch)
    # Mixed: one discriminator batch of real + generated images, and the generator's term
    # through the frozen trunk on the same composition; separate: three batches of n.
    assert sizes == ([2 * n, 2 * n] if mixed else [n, n, n])
    torch.manual_seed(3)
    fake = method.generate(n)
    logits = method.discriminate(torch.cat([batch, fake]) if mixed else batch)[:n]
    torch.testing.assert_close(out["d_real_acc"], (logits > 0).float().mean() * 100)


def test_dcgan_discriminator_pools_every_layer_and_its_logit_reads_the_last(batch: torch.Tensor) -> None:
    torch.manual_seed(0)
    disc = zoo.create_model("dcgan_discriminator").backbone.eval()
    cls = get_method("dcgan")
    config = cls.Config(generator_width=8, latent_dim=16)
    method = cls(disc, get_arch("dcgan_discriminator").embed_dim, config)
    features = disc(batch)
    # The paper's CIFAR-10 features: each layer's output max-pooled to 4x4, concatenated.
    x, pooled = batch, []
    for block in disc.blocks:
        x = block(x)
        pooled.append(torch.nn.functional.max_pool2d(x, x.shape[-1] // 4).flatten(1))
    torch.testing.assert_close(features, torch.cat(pooled, 1))
    assert features.shape == (len(batch), (64 + 128 + 256) * 16)
    # DCGAN's last layer: a linear function of the last 4x4 map only, not of the earlier layers.
    assert method.logit.in_features == 256 * 16
    torch.testing.assert_close(method.discriminate(batch), method.logit(features[:, -256 * 16 :]))


def test_super_resolution_encodes_the_bicubic_low_resolution_view(batch: torch.Tensor) -> None:
    method = build("super_resolution").train()
    out = {}
    seen = _input_of(method.backbone.conv1, lambda: out.update(method([batch])))
    low = images.low_resolution(batch, 4)
    torch.testing.assert_close(seen, low)
    assert out["bicubic_mse"].item() == pytest.approx(((low - batch) ** 2).mean().item(), rel=1e-5)


def test_dcgan_generates_view_sized_images_and_checks_the_size(batch: torch.Tensor) -> None:
    method = build("dcgan")
    fake = method.generate(4)
    assert fake.shape == (4, 3, 32, 32)
    rgb = images.denormalize(fake)
    assert rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(PretextSizeError, match="makes 32 px images but the views are 16 px"):
        method([batch[:, :, :16, :16]])


def test_relative_patch_pairs_go_through_the_backbone_separately(batch: torch.Tensor) -> None:
    method = build("relative_patch", color_drop=False, jitter=0).train()
    seen = _input_of(method.backbone, lambda: method([batch]))
    assert seen.shape == (32, 3, 8, 8)
    # The centre patch: a 28 px grid centred in 32 px starts at 2; the middle cell at 2 + (8 + 2).
    torch.testing.assert_close(seen[:16], batch[:, :, 12:20, 12:20])
    with pytest.raises(PretextSizeError, match=r"at least 36 px \(3 x 8 \+ 2 x 4 \+ 2 x 2\), got 32 px"):
        build("relative_patch", gap=4, jitter=2)([batch])


def test_relative_patch_all_neighbours_pairs_the_centre_with_each_neighbour(batch: torch.Tensor) -> None:
    """``all_neighbours``: 9 patches per image through the backbone, and the loss is the
    cross-entropy of the head over (centre, neighbour k) with label k for all 8 k, computed here
    from patches cut by hand."""
    method = build("relative_patch", color_drop=False, jitter=0, all_neighbours=True).eval()
    seen = _input_of(method.backbone, lambda: method([batch]))
    assert seen.shape == (16 * 9, 3, 8, 8)
    with torch.no_grad():
        out = method([batch])
        # The 28 px grid starts at 2 in 32 px; cell (r, c) at 2 + 10 r, 2 + 10 c.
        grid = [(2 + 10 * r, 2 + 10 * c) for r in range(3) for c in range(3)]
        cells = [batch[:, :, top : top + 8, left : left + 8] for top, left in grid]
        torch.testing.assert_close(seen.unflatten(0, (16, 9))[:, 4], cells[4])
        f = [method.backbone(p) for p in cells]
        losses = []
        for label, (r, c) in enumerate(patches.NEIGHBOURS):
            logits = method.head(torch.cat([f[4], f[3 * r + c]], dim=1))
            losses.append(torch.nn.functional.cross_entropy(logits, torch.full((16,), label)))
    assert out["loss"].item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-4)


# ---------------------------------------------------------------------------- through the trainer


def pretext_recipe(out_dir: Path, data: Path, name: str, **sections) -> dict:
    arch, cfg = SMALL[name]
    recipe = {
        "name": f"{name.replace('_', '-')}-test-cifar10",
        "arch": arch,
        "method": {"name": name, **cfg},
        "data": {"path": str(data), "image_size": 32},
        "augment": {"preset": "simclr", "size": 32, "jitter_strength": 0.0, "min_scale": 0.25},
        "optim": {"name": "sgd", "lr": 0.05},
        "train": {"epochs": 1, "batch_size": 12, "threads": 1, "seed": 0},
        "run": {
            "out_dir": str(out_dir),
            "log_every_steps": 1,
            "knn_every_epochs": 0,
            "knn_k": 5,
            "export": False,
        },
    }
    for section, values in sections.items():
        recipe[section] = {**recipe.get(section, {}), **values}
    return recipe


def test_rotnet_run_logs_rotation_accuracy_to_metrics_csv(tmp_path: Path, tiny_dataset: Path) -> None:
    recipe = recipe_from_dict(pretext_recipe(tmp_path / "run", tiny_dataset, "rotnet"))
    result = Trainer(recipe, progress=False).fit()
    rows = read_csv(result.out_dir / "metrics.csv")
    assert len(rows) == 3 and all(0 <= float(r["rotation_acc"]) <= 100 for r in rows)


def test_dcgan_instance_noise_decays_to_zero_in_pixel_units(batch: torch.Tensor) -> None:
    method = build("dcgan", instance_noise=0.2).train()
    method.schedule(25, 100, epoch=0)
    assert method.noise_std == pytest.approx(0.15)
    torch.manual_seed(0)
    x = torch.zeros(64, 3, 32, 32)
    pixel_noise = images.denormalize(method.noisy(x)) - images.denormalize(x)
    assert pixel_noise.std().item() == pytest.approx(0.15, rel=0.02)  # the same in every channel
    torch.testing.assert_close(method.eval().noisy(x), x)  # never outside training
    method.train().schedule(100, 100, epoch=1)
    torch.testing.assert_close(method.noisy(x), x)
    assert method.logged() == {"instance_noise": 0.0}
    # The decaying noise reaches the compiled step as a buffer: no recompile per step.
    counts = compiles_while_training(method, lambda: ([batch],), [(0, 0), (1, 0), (40, 1), (80, 2)])
    assert counts[-1] == counts[0] and method.logged()["instance_noise"] == pytest.approx(0.04)


def test_dcgan_players_learn_at_their_own_rates_through_the_trainer(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    recipe = recipe_from_dict(
        pretext_recipe(
            tmp_path / "run",
            tiny_dataset,
            "dcgan",
            method={
                **SMALL["dcgan"][1],
                "discriminator_lr_scale": 0.5,
                "generator_lr_scale": 2.0,
                "instance_noise": 0.1,
            },
            optim={"name": "adamw", "lr": 0.01, "final_lr_ratio": 1.0, "weight_decay": 0.0},
            train={"max_steps": 2},
        )
    )
    trainer = Trainer(recipe, progress=False)
    result = trainer.fit()
    # The trainer logs the method's scheduled values (Method.logged) beside the step's outputs.
    noise = [float(r["instance_noise"]) for r in read_csv(result.out_dir / "metrics.csv")]
    assert noise == pytest.approx([0.1, 0.1 * (1 - 1 / trainer.total_steps)])
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    base = 0.01 * 12 / 256
    assert lrs["discriminator"] == pytest.approx(0.5 * base)
    assert lrs["discriminator_biases_and_norms"] == pytest.approx(0.5 * base)
    assert lrs["generator"] == pytest.approx(2.0 * base)
    assert set(lrs) == {
        "discriminator",
        "discriminator_biases_and_norms",
        "generator",
        "generator_biases_and_norms",
    }


def test_colorization_weights_come_from_the_training_split_ab_histogram(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    from zoo.training.data import load_split
    from zoo.training.pretext.color import ab_histogram, rebalance_weights

    recipe = recipe_from_dict(pretext_recipe(tmp_path / "run", tiny_dataset, "colorization"))
    trainer = Trainer(recipe, progress=False)
    result = trainer.fit()
    assert [float(r["color_acc"]) >= 0 for r in read_csv(result.out_dir / "metrics.csv")] == [True] * 3
    split, _, _ = load_split(tiny_dataset / "train", 32, cache=False)
    expected = rebalance_weights(ab_histogram(split, trainer.method.bins), trainer.method.bins)
    torch.testing.assert_close(trainer.method.loss.weights, expected, rtol=1e-4, atol=1e-5)
    assert expected.max() > 2 * expected.min()  # rare colours weigh more
    # The weights are checkpointed: a resumed run does not recompute them.
    state = torch.load(result.out_dir / CHECKPOINT_NAME, weights_only=True)["model"]
    torch.testing.assert_close(state["loss.weights"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name,method,size,message",
    [
        (
            "jigsaw",
            {"tile_size": 12},
            32,
            "3x3 grid of 12 px tiles needs images of at least 36 px, got 32 px",
        ),
        (
            "relative_patch",
            {"gap": 4, "jitter": 2},
            32,
            r"at least 36 px \(3 x 8 \+ 2 x 4 \+ 2 x 2\), got 32 px",
        ),
        ("inpainting", {"mask_mode": "random", "block_size": 12}, 32, "random blocks of 12 px .* got 32 px"),
        ("super_resolution", {"factor": 3}, 32, "32 px views cannot be downsampled by 3"),
        ("colorization", {}, 30, "multiple of 4 px, got 30 px"),
        ("dcgan", {"image_size": 64}, 32, "makes 64 px images but the views are 32 px"),
    ],
)
def test_a_grid_or_mask_the_views_cannot_hold_is_one_error_before_training(
    name: str, method: dict, size: int, message: str, tmp_path: Path, tiny_dataset: Path
) -> None:
    recipe = recipe_from_dict(
        pretext_recipe(tmp_path / "run", tiny_dataset, name, method=method, augment={"size": size})
    )
    with pytest.raises(ZooError, match=f"augment: {name} cannot use these views: .*{message}"):
        Trainer(recipe, progress=False).fit()
    assert (
        not (tmp_path / "run" / "metrics.csv").exists() and not (tmp_path / "run" / CHECKPOINT_NAME).exists()
    )


def test_a_view_size_the_patch_grid_does_not_fit_is_one_error_before_training(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    recipe = recipe_from_dict(pretext_recipe(tmp_path / "run", tiny_dataset, "mae", augment={"size": 28}))
    with pytest.raises(
        PretextSizeError, match="takes 32 px images in 4 px patches, but the views are 28x28 px"
    ):
        Trainer(recipe, progress=False).fit()
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()
    with pytest.raises(PretextSizeError, match="masking 99% of the 64 patches"):
        build("mae", mask_ratio=0.99)


# ---------------------------------------------------------------------------- slow: real short runs


def _short_run_beats_random_init(
    tmp_path: Path, cifar_root: Path, name: str, **sections
) -> tuple[float, float]:
    """kNN top-1 (k=20) of a random-init encoder and of the same encoder after a short run,
    on 300 train images per class and 1,000 test images of CIFAR-10."""
    base = pretext_recipe(tmp_path / name, cifar_root, name, **sections)
    base["data"]["limit_per_class"] = 300
    base["run"].update(knn_k=20, knn_train_images=0, knn_test_images=1000)
    recipe = recipe_from_dict(base)
    untrained = Trainer(recipe, progress=False)
    untrained._setup()
    random_top1 = untrained._monitor(Progress())["top1"]
    trained = Trainer(recipe, progress=False).fit()
    return random_top1, trained.knn[-1]["top1"]


#: Short-run settings per method (on top of pretext_recipe): 4 epochs of 3,000 images.
SHORT_RUNS = {
    "rotnet": {"optim": {"lr": 0.2, "weight_decay": 5e-4}},
    "mae": {
        "method": {"decoder_dim": 128, "decoder_depth": 2, "decoder_heads": 4},
        "optim": {
            "name": "adamw",
            "lr": 1e-3,
            "betas": [0.9, 0.95],
            "weight_decay": 0.05,
            "warmup_epochs": 1,
        },
    },
    "jigsaw": {"method": {"num_permutations": 100, "head_hidden_dim": 512}, "optim": {"lr": 0.1}},
    "colorization": {"method": {"head_width": 128}, "optim": {"lr": 0.1}},
    "inpainting": {
        "method": {"adversarial_weight": 0.0},
        "optim": {"name": "adamw", "lr": 1e-3, "betas": [0.5, 0.999], "weight_decay": 0.0},
    },
    "super_resolution": {"optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}},
    "dcgan": {
        "method": {
            "generator_width": 64,
            "latent_dim": 100,
            "real_label": 0.9,
            "instance_noise": 0.1,
            "discriminator_lr_scale": 0.5,
        },
        "augment": {"min_scale": 0.8},
        "optim": {
            "name": "adamw",
            "lr": 4e-4,
            "betas": [0.5, 0.999],
            "weight_decay": 0.0,
            "final_lr_ratio": 1.0,
        },
    },
    "relative_patch": {"method": {"head_hidden_dim": 512}, "optim": {"lr": 0.1}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_short_run_beats_random_init_knn(name: str, tmp_path: Path, cifar_root: Path) -> None:
    settings = SHORT_RUNS[name]
    random_top1, top1 = _short_run_beats_random_init(
        tmp_path, cifar_root, name, **settings, train={"epochs": 4, "batch_size": 128}
    )
    metric = METRIC[name]
    last = read_csv(tmp_path / name / "metrics.csv")[-1]
    print(
        f"{name}: kNN top-1 random init {random_top1:.2f}% -> {top1:.2f}% after 4 short epochs;"
        f" {metric} {last[metric]}"
    )
    assert top1 > random_top1 + 1


@pytest.mark.slow
def test_the_paper_dcgan_recipe_beats_random_init(tmp_path: Path, cifar_root: Path) -> None:
    # The whole training split (780 steps, ~8 minutes): on the short runs' 10,000 images (156
    # steps) the discriminator is still winning its first epoch and its features sit below
    # random init (36.75 against 39.45, session 14); on all 50,000 they read 40.95 against 39.50.
    short_run_beats_random_init(tmp_path, "dcgan_disc_cifar10", cifar_root, WHOLE_SPLIT)


@pytest.mark.slow
def test_rotnet_block_probe_after_a_short_run(tmp_path: Path, cifar_root: Path) -> None:
    """The paper's finding (middle blocks beat the last for the linear probe), measured on a
    short run: prints the per-block linear-probe top-1."""
    from zoo.training.pretext.probe import probe_blocks

    random_top1, top1 = _short_run_beats_random_init(
        tmp_path, cifar_root, "rotnet", **SHORT_RUNS["rotnet"], train={"epochs": 4, "batch_size": 128}
    )
    print(f"rotnet: kNN top-1 random init {random_top1:.2f}% -> {top1:.2f}%")
    from zoo.training.data import evaluation_batches, load_split

    trainer_recipe = recipe_from_dict(pretext_recipe(tmp_path / "rotnet", cifar_root, "rotnet"))
    method = get_method("rotnet")(
        zoo.create_model("resnet18_cifar_quarter").backbone, 128, trainer_recipe.method
    )
    state = torch.load(tmp_path / "rotnet" / CHECKPOINT_NAME, weights_only=True)["model"]
    method.load_state_dict(state)
    out = {}
    for split, n in (("train", 200), ("test", 100)):
        imgs, labels, _ = load_split(cifar_root / split, 32, limit_per_class=n)
        x = torch.cat(list(evaluation_batches(imgs, 32, images.IMAGENET_MEAN, images.IMAGENET_STD)))
        out[split] = (x, labels.numpy())
    res = probe_blocks(method.backbone, *out["train"], *out["test"], num_classes=10)
    print("rotnet linear probe by block:", res)
    assert max(res, key=res.get) != "stem"


def _defended(defences: bool) -> dict:
    if defences:
        return {"gap": 2, "jitter": 1, "color_drop": True}
    return {"gap": 0, "jitter": 0, "color_drop": False}


@pytest.mark.slow
def test_relative_patch_shortcut_defences_make_the_task_harder(tmp_path: Path, cifar_root: Path) -> None:
    """Doersch et al.'s gaps, jitter and colour dropping remove shortcuts: the position task
    is solved less well with them than without, after the same short run."""
    acc = {}
    for defences in (True, False):
        base = pretext_recipe(tmp_path / str(defences), cifar_root, "relative_patch")
        base["method"].update(head_hidden_dim=512, **_defended(defences))
        base["data"]["limit_per_class"] = 300
        base["optim"]["lr"] = 0.1
        base["train"].update(epochs=4, batch_size=128)
        Trainer(recipe_from_dict(base), progress=False).fit()
        rows = read_csv(tmp_path / str(defences) / "metrics.csv")
        last_epoch = [float(r["patch_acc"]) for r in rows if int(r["epoch"]) == 3]
        acc[defences] = sum(last_epoch) / len(last_epoch)
    print(
        f"relative patch task accuracy, last epoch: with defences {acc[True]:.1f}%, without {acc[False]:.1f}%"
    )
    assert acc[False] > acc[True]
