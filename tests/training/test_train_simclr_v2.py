"""SimCLR v2's options on the SimCLR method: the memory loss against NT-Xent and its formula,
the momentum memory network, and v1 left exactly as it was."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _seed_methods import build
from zoo.training.losses import NTXentLoss


def test_with_an_empty_memory_it_is_ntxent() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    torch.testing.assert_close(NTXentLoss(0.5)(z0, z1, torch.empty(0, 5)), NTXentLoss(0.5)(z0, z1))


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
    assert float(NTXentLoss(0.2)(z0, z1, mem)) == pytest.approx(total / 6, rel=1e-5)


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


# ------------------------------------------------------------------------------------------
# Fine-tuning from the projector's middle layer
# ------------------------------------------------------------------------------------------


def test_the_middle_layer_encoder_is_the_backbone_and_the_projectors_first_layer() -> None:
    from zoo.training.methods.simclr import middle_layer_encoder

    v2 = build("simclr", proj_hidden_dim=16, proj_out_dim=8, proj_layers=3)
    v2([torch.randn(6, 3, 16, 16), torch.randn(6, 3, 16, 16)])  # moves the BN statistics
    v2.eval()
    encoder = middle_layer_encoder(v2)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = v2.projection.layers[2](v2.projection.layers[1](v2.projection.layers[0](v2.backbone(x))))
        torch.testing.assert_close(encoder(x), expected)
    assert not encoder.training and expected.shape == (4, 16) and bool((expected >= 0).all())
    # A copy: fine-tuning the encoder leaves the run's method as it was.
    assert encoder.backbone[0].weight.data_ptr() != v2.backbone[0].weight.data_ptr()
    with pytest.raises(ValueError, match="proj_layers: 3"):
        middle_layer_encoder(build("simclr", proj_hidden_dim=16, proj_out_dim=8))


def test_middle_layer_architectures_are_registered_per_backbone_and_width() -> None:
    import zoo
    from zoo.models.middle_layer import middle_layer_arch

    arch = middle_layer_arch("resnet18_cifar_quarter", 512)
    assert arch == "resnet18_cifar_quarter_mid512"
    model = zoo.create_model(arch).eval()
    assert model.embed_dim == 512 and model(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    keys = model.backbone.state_dict().keys()
    assert {"projection.0.weight", "projection.1.running_mean"} <= keys and "projection.0.bias" not in keys
    with pytest.raises(ValueError, match=r"resnet50.*add a line to zoo/models/middle_layer.py"):
        middle_layer_arch("resnet50", 2048)


def test_a_runs_middle_layer_exports_as_a_folder_that_fine_tunes(tmp_path, cifar_root, capsys) -> None:
    """End to end on real images: a short SimCLR v2 run, its middle layer exported by the
    command, loaded back by zoo.load with the same features as the run's method computes."""
    from _seed_methods import seed_recipe
    from zoo.training.loop import Trainer
    from zoo.training.methods.simclr import main, middle_layer_encoder
    from zoo.training.recipe import recipe_from_dict

    import zoo

    run, out = tmp_path / "run", tmp_path / "mid"
    method = {"name": "simclr", "proj_hidden_dim": 512, "proj_out_dim": 16, "proj_layers": 3}
    trainer = Trainer(recipe_from_dict(seed_recipe(run, cifar_root, method, run__export=True)))
    assert trainer.fit().finished
    assert main([str(run), "--middle-layer", str(out)]) == 0
    assert f"zoo eval {out} --protocol finetune" in capsys.readouterr().out
    encoder = zoo.load(str(out))
    assert encoder.arch == "resnet18_cifar_quarter_mid512" and encoder.entry.name == "simclr-r18q-cifar10-mid"
    assert encoder.preprocess == zoo.load(str(run / "export")).preprocess and encoder.entry.measured == ()
    images = trainer.images[:8].float().div(255)  # decoded uint8 train images, as the run saw them
    x = (images - torch.tensor(trainer.mean).view(1, 3, 1, 1)) / torch.tensor(trainer.std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(encoder.backbone(x), middle_layer_encoder(trainer.method.float())(x))
    # A v1 run (2-layer projector) has no middle layer to export: one clear error, no folder.
    v1 = tmp_path / "v1"
    recipe = seed_recipe(v1, cifar_root, {"name": "simclr", "proj_hidden_dim": 32, "proj_out_dim": 16})
    Trainer(recipe_from_dict({**recipe, "run": {**recipe["run"], "export": True}})).fit()
    assert main([str(v1), "--middle-layer", str(tmp_path / "v1-mid")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the rebuilt trainer's set-up log
    assert last.startswith("zoo: error: ") and "proj_layers: 3" in last and not (tmp_path / "v1-mid").exists()
