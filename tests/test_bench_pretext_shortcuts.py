"""benchmarks/pretext_shortcuts.py on a tiny budget over real CIFAR-10 images: relative patch
location trained through zoo's trainer with and without the shortcut defences, each variant's
task accuracy (training and held-out) and kNN top-1."""

from __future__ import annotations

import csv
import importlib.util
import json
import statistics
from pathlib import Path

import pytest
import torch
from zoo.training.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
CIFAR = (ROOT.parent / "shared" / "data" / "cifar10").resolve()
PAIRS = 50
STEPS = 3


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "pretext_shortcuts", ROOT / "benchmarks" / "pretext_shortcuts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ps = _load_benchmark()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    if not (CIFAR / "test").is_dir():
        pytest.fail(f"real data not found at {CIFAR}; the repository expects ../shared/data beside it")
    work = tmp_path_factory.mktemp("pretext_shortcuts")
    done: list[list[str]] = []
    result = ps.run_benchmark(
        ["defended", "none"],
        steps=STEPS,
        images=80,
        batch_size=16,
        knn_train=100,
        knn_test=60,
        pairs=PAIRS,
        data_root=CIFAR,
        work_dir=work,
        log=lambda _: None,
        on_row=lambda partial: done.append([r["variant"] for r in partial["rows"]]),
    )
    # Called after each variant with the rows so far: the CLI rewrites its files then.
    assert done == [["random_init"], ["random_init", "defended"], ["random_init", "defended", "none"]]
    return result, work


def test_every_variant_is_trained_and_measured_with_its_own_settings(run: tuple[dict, Path]) -> None:
    result, _ = run
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == ["random_init", "defended", "none"]
    recipe = load_recipe("relative_patch_r18q_cifar10").method  # "defended" is the recipe's settings
    assert (rows["defended"]["gap"], rows["defended"]["jitter"], rows["defended"]["color_drop"]) == (
        recipe.gap,
        recipe.jitter,
        True,
    )
    assert (rows["none"]["gap"], rows["none"]["jitter"], rows["none"]["color_drop"]) == (0, 0, False)
    assert rows["random_init"]["steps"] == 0 and rows["random_init"]["train_patch_acc"] is None
    assert rows["defended"]["steps"] == rows["none"]["steps"] == STEPS
    assert result["train_images"] == 80 and result["schedule_steps"] == 5  # 80 // 16 steps, 1 epoch
    assert result["knn"] == {"k": 200, "temperature": 0.1, "train_images": 100, "test_images": 60}
    # The untrained row has the recipe's settings: its own task is the defended task.
    assert rows["random_init"]["heldout_patch_acc"] == rows["random_init"]["heldout_patch_acc_defended"]
    assert all(0.0 <= r[k] <= 100.0 for r in rows.values() for k in ("knn_top1", "knn_top1_bn_recal"))
    assert result["bn_recal_images"] == 100  # all of the 100 kNN train images (fewer than 2,048)


def test_held_out_accuracy_counts_one_pair_per_test_image(run: tuple[dict, Path]) -> None:
    result, _ = run
    assert result["heldout_pairs"] == PAIRS
    for row in result["rows"]:
        assert row["heldout_pairs"] == PAIRS
        for key in ("heldout_patch_acc", "heldout_patch_acc_defended"):
            correct = row[key] * PAIRS / 100  # a whole number of the 50 pairs
            assert 0 <= correct <= PAIRS and correct == pytest.approx(round(correct), abs=1e-6), (key, row)


def test_train_accuracy_is_the_mean_of_the_logged_steps(run: tuple[dict, Path]) -> None:
    result, work = run
    for row in result["rows"][1:]:
        with (work / row["variant"] / "metrics.csv").open(newline="") as f:
            logged = [float(r["patch_acc"]) for r in csv.DictReader(f)]
        assert len(logged) == STEPS  # one row per step
        assert row["train_patch_acc"] == pytest.approx(statistics.fmean(logged), abs=0.01)


def test_held_out_pairs_share_images_and_positions_and_follow_the_settings() -> None:
    from zoo.training.data import load_split

    from zoo.registry import IMAGENET_MEAN, IMAGENET_STD

    images = load_split(CIFAR / "test", 32, limit_per_class=2)[0]
    plain = ps.heldout_pairs(images, IMAGENET_MEAN, IMAGENET_STD, patch=8, gap=0, jitter=0, color_drop=False)
    defended = ps.heldout_pairs(
        images, IMAGENET_MEAN, IMAGENET_STD, patch=8, gap=2, jitter=1, color_drop=True
    )
    assert torch.equal(plain[2], defended[2])  # same positions for every variant
    # No gap, no jitter: the centre patch is the image's exact middle 8 px (of a 24 px grid at 4).
    x = (images.float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    assert torch.allclose(plain[0], x[:, :, 12:20, 12:20])
    # Colour dropping: two of the three channels of every patch are small noise.
    small = defended[0].flatten(2).abs().amax(2) < 0.1
    assert (small.sum(1) == 2).all()


def test_pair_accuracy_does_not_depend_on_the_batching(run: tuple[dict, Path]) -> None:
    from zoo.training.data import load_split
    from zoo.training.methods import get_method

    import zoo
    from zoo.registry import IMAGENET_MEAN, IMAGENET_STD, get_arch

    torch.manual_seed(0)
    cls = get_method("relative_patch")
    method = cls(
        zoo.create_model("resnet18_cifar_quarter").backbone,
        get_arch("resnet18_cifar_quarter").embed_dim,
        cls.Config(patch_size=8, gap=2, jitter=1, head_hidden_dim=32),
    )
    images = load_split(CIFAR / "test", 32, limit_per_class=3)[0]
    pairs = ps.heldout_pairs(images, IMAGENET_MEAN, IMAGENET_STD, patch=8, gap=2, jitter=1, color_drop=True)
    method.eval()
    with torch.no_grad():
        f_c, f_o = method.backbone(torch.cat(pairs[:2])).chunk(2)
        expected = 100.0 * float((method.head(torch.cat([f_c, f_o], 1)).argmax(1) == pairs[2]).float().mean())
    method.train()
    assert ps.pair_accuracy(method, pairs, batch=7) == pytest.approx(expected, abs=0.01)
    assert method.training  # restored


def test_results_files_hold_the_table_machine_and_command(run: tuple[dict, Path], tmp_path: Path) -> None:
    result, _ = run
    md = ps.write_results(result, tmp_path / "out", "python benchmarks/pretext_shortcuts.py --steps 3")
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["command"] == "python benchmarks/pretext_shortcuts.py --steps 3"
    assert [r["variant"] for r in saved["rows"]] == ["random_init", "defended", "none"]
    assert (tmp_path / "out.md").read_text() == md
    table = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + 3  # header + one row per variant
    assert "no defences | 0 | 0 | no |" in md
    assert f"Machine: {ps.cpu_model()}" in md and "--steps 3" in md and "Partial" not in md
    partial = ps.markdown({**result, "rows": result["rows"][:2]}, "cmd")
    assert "Partial: not run yet: none" in partial


def test_the_command_line_rejects_an_unknown_variant(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        ps.main(["--variants", "defended,no_rotation"])
    assert exc.value.code == 2
    assert "unknown variants ['no_rotation']" in capsys.readouterr().err


def test_batch_norm_is_re_estimated_on_a_copy_from_the_given_images() -> None:
    from zoo.training.data import evaluation_batches, load_split

    import zoo
    from zoo.registry import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    backbone = zoo.create_model("resnet18_cifar_quarter").backbone
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    images = load_split(CIFAR / "test", 32, limit_per_class=3)[0]
    # 3 equal batches of 10 (momentum=None averages the batches' statistics, each with one vote).
    batches = list(evaluation_batches(images, 32, IMAGENET_MEAN, IMAGENET_STD, batch_size=10))
    copy = ps.recalibrated(backbone, batches)
    assert all(torch.equal(m.running_mean, b) for m, b in zip(norms, before, strict=True))  # original kept
    assert not copy.training
    # The first norm's mean is now the plain average of its inputs over all the images.
    first = next(m for m in copy.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = first.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    with torch.no_grad():
        copy(torch.cat(batches))
    hook.remove()
    assert torch.allclose(first.running_mean, seen[0].mean((0, 2, 3)), atol=1e-4)
