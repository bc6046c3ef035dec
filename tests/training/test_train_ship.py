"""Shipping a finished run: fp16 weights measured like ``zoo eval``, curves beside the cards."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import torch
from _train_recipes import tiny_recipe
from zoo.training.loop import Trainer
from zoo.training.methods.rotnet import RotNet
from zoo.training.recipe import recipe_from_dict
from zoo.training.ship import measure, measured_rows, progress_figure, recipe_of, ship, task_rows

import zoo
import zoo.pretrained
from zoo import results
from zoo.errors import ZooError
from zoo.evaluate import evaluate
from zoo.folder import read_safetensors
from zoo.pretrained import TRAINED, attach_measured, trained_entry


def test_a_flagship_row_points_to_its_progress_figure(tmp_path: Path) -> None:
    assert progress_figure("moco-v2-r18h-cifar10", tmp_path) == ""  # no figure: no flagship
    (tmp_path / "curves").mkdir()
    (tmp_path / "curves" / "flagship-moco-v2-r18h-cifar10.png").write_bytes(b"\x89PNG")
    figure = "curves/flagship-moco-v2-r18h-cifar10.png"
    assert progress_figure("moco-v2-r18h-cifar10", tmp_path) == figure
    assert progress_figure("moco-v2-r18h-cifar10.ep200", tmp_path) == figure  # a tagged name too


def test_recipe_of_a_command() -> None:
    assert (
        recipe_of("zoo train simclr_r18q_cifar10 train.epochs=8")
        == "training/recipes/simclr_r18q_cifar10.yaml"
    )
    assert recipe_of("zoo train my/recipe.yaml") == "my/recipe.yaml"


def test_a_shipped_run_records_the_numbers_of_the_file_it_ships(
    tmp_path: Path, cifar_root: Path, tiny_dataset: Path
) -> None:
    run = tmp_path / "run"
    recipe = recipe_from_dict(tiny_recipe(run, cifar_root, "simclr", run__export=True))
    Trainer(recipe, command=f"zoo train simclr_r18q_cifar10 run.out_dir={run} train.epochs=2").fit()
    # No log to read the minutes from: refused before the measurements, nothing written.
    with pytest.raises(ZooError, match=r"run.log: no such log, and .*train.log neither: .* with --log"):
        ship(run, "simclr-r18q-tiny", weights_dir=tmp_path / "weights", cards_dir=tmp_path / "cards")
    assert not (tmp_path / "weights").exists() and not (tmp_path / "cards").exists()
    (tmp_path / "run.log").write_text(
        "[10:00:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 80 images, 1 process(es),"
        " batch 16, 15 steps/epoch x 2 epochs, bf16, eager, 1 threads on AMD EPYC (family 25, model 17),"
        " 2 logical CPUs; out: runs/x\n[10:03:00] epoch 1 step 30/30 loss 3.0\n"
    )
    data = tiny_dataset
    table = tmp_path / "measured.csv"
    # A number measured on earlier weights of the same name, and one of another encoder.
    old = results.Result("simclr-r18q-tiny", "tiny0-test", "finetune-1pct", 30.0, "h", "c", "0" * 16)
    other = results.Result("byol-r18q-cifar10", "cifar10-test", "knn-k20", 41.0, "h", "c", "1" * 16)
    results.record([old, other], table)

    summary = ship(
        run,
        "simclr-r18q-tiny",
        data=str(data),
        weights_dir=tmp_path / "weights",
        cards_dir=tmp_path / "cards",
        results_file=table,
    )

    weights = tmp_path / "weights" / "simclr-r18q-tiny.safetensors"
    assert summary["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert summary["training"]["command"] == "zoo train simclr_r18q_cifar10 train.epochs=2"
    assert summary["training"]["recipe"] == "training/recipes/simclr_r18q_cifar10.yaml"
    assert summary["training"]["minutes"] == 3.0
    # The row to paste says what the log says trained it.
    assert (
        summary["row"].hardware == "AMD EPYC (family 25, model 17) with 2 logical CPUs, 1 thread, bf16, eager"
    )
    assert summary["training"]["steps"] > 0
    assert set(summary["measured"]) == {"knn-k20", "knn-k200", "linear", "nmi"}
    tensors, _ = read_safetensors(weights)
    dtype = torch.float16 if summary["precision"] == "fp16" else torch.float32
    assert tensors["conv1.weight"].dtype == dtype
    assert summary["precision"] == "fp16" or summary["fp16_max_change"] > 0.2
    assert (tmp_path / "cards" / "curves" / "simclr-r18q-tiny.metrics.csv").is_file()

    # Loading the shipped file (header record + fp16 values in fp32 modules) gives back the
    # numbers the summary records, as `zoo eval` would measure them.
    shipped = zoo.load(weights)
    assert shipped.entry.name == "simclr-r18q-tiny" and shipped.entry.method == "simclr"
    assert next(shipped.backbone.parameters()).dtype == torch.float32
    again = measure(shipped, str(data), "test")
    assert {k: v["value"] for k, v in again.items()} == {
        k: v["value"] for k, v in summary["measured"].items()
    }
    knn = evaluate(shipped, data, k=20, temperature=0.07)
    assert knn["top1"] == pytest.approx(summary["measured"]["knn-k20"]["value"])

    # The four numbers are in the results table, tied to the shipped file; the stale row is gone.
    rows = [r for r in results.load(table) if r.model == "simclr-r18q-tiny"]
    assert rows == summary["recorded"] and summary["stale"] == [old]
    assert other in results.load(table)
    assert {r.protocol: r.value for r in rows} == {k: v["value"] for k, v in summary["measured"].items()}
    assert {r.weights for r in rows} == {summary["sha256"][:16]}
    assert {r.dataset for r in rows} == {f"{data.name}-test"}
    assert rows[0].command == f"zoo eval simclr-r18q-tiny --data {data} -k 20 --temperature 0.07"
    assert f"{summary['precision']} weights" in rows[0].how and "36 train -> 18 test images" in rows[0].how
    # The printed row is the table's syntax; its entry is what the registry attaches the rows to.
    row = summary["row"]
    assert eval(row.source().strip().rstrip(","), vars(zoo.pretrained)) == row
    assert (row.sha256, row.precision, row.dataset) == (summary["sha256"], summary["precision"], "cifar10")
    pre = shipped.entry.preprocess
    assert (row.size, row.resize, row.arch, row.method) == (
        pre.input_size,
        pre.resize_size,
        "resnet18_cifar_quarter",
        "simclr",
    )
    results.forget("byol-r18q-cifar10", table)  # a table of this entry only
    (entry,) = attach_measured([trained_entry(row)], table)
    assert [(m.protocol, m.value) for m in entry.measured] == [(r.protocol, r.value) for r in rows]

    # Shipping again fails late (the export's card, which holds the training command, is gone):
    # the shipped file, ship.json and the table stay as they were; no staged file is left.
    before = {p: p.read_bytes() for p in (weights, table, run / "ship.json")}
    (run / "export" / "README.md").unlink()
    with pytest.raises(FileNotFoundError):
        ship(
            run,
            "simclr-r18q-tiny",
            data=str(data),
            tolerance=-1.0,  # fp32: other bytes than the fp16 file shipped above
            weights_dir=tmp_path / "weights",
            cards_dir=tmp_path / "cards",
            results_file=table,
        )
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [weights.name]


def test_an_export_older_than_the_checkpoint_is_not_shipped(tmp_path: Path, cifar_root: Path) -> None:
    # Exported at 2 epochs (10 steps), then lengthened and stopped at step 11: the folder's weights
    # are not the checkpoint's, whose step the shipped row would record.
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(run, cifar_root, run__export=True, run__export_onnx=False))).fit()
    longer = tiny_recipe(run, cifar_root, train__epochs=3, train__max_steps=11)
    Trainer(recipe_from_dict(longer), resume=True).fit()
    with pytest.raises(ZooError, match=r"holds the model of step 10 but the run's checkpoint is at step 11"):
        ship(run, "simclr-r18q-tiny", weights_dir=tmp_path / "weights", cards_dir=tmp_path / "cards")
    assert not (tmp_path / "weights").exists()


def test_a_pretext_run_records_its_task_accuracy(tmp_path: Path, cifar_root: Path) -> None:
    run = tmp_path / "run"
    recipe = recipe_from_dict(tiny_recipe(run, cifar_root, "rotnet"))
    Trainer(recipe, command="zoo train rotnet_r18q_cifar10").fit()
    with open(run / "metrics.csv", newline="") as f:
        logged = list(csv.DictReader(f))
    last = [float(r["rotation_acc"]) for r in logged if r["epoch"] == "1"]
    assert len(last) > 1 and any(r["epoch"] == "0" for r in logged), "two epochs, the last one averaged"

    def rows(task_metrics: dict[str, str]) -> list[results.Result]:
        return task_rows(
            run / "metrics.csv",
            task_metrics,
            name="rotnet-r18q-tiny",
            dataset="cifar10-train",
            command="zoo train rotnet_r18q_cifar10",
            weights="ab" * 32,
        )

    (row,) = rows(RotNet.task_metrics)
    assert (row.protocol, row.dataset, row.weights) == ("task-rotation-acc", "cifar10-train", "ab" * 8)
    assert row.value == pytest.approx(sum(last) / len(last), abs=1e-4)
    assert row.how.startswith("4-way rotation accuracy (%): mean of the")
    assert f"the {len(last)} steps logged in the last epoch (2)" in row.how
    with pytest.raises(ValueError, match="task metric 'jigsaw_acc' not logged in epoch 1"):
        rows({"jigsaw_acc": "permutation accuracy"})


def test_a_run_ships_read_on_a_patch_grid(tmp_path: Path, cifar_root: Path, tiny_dataset: Path) -> None:
    """``patch_grid``: the same weights, shipped under the grid architecture, measured and
    loaded as that read-out (CPC v2's 7 x 7 grid of 8 px patches)."""
    from zoo.errors import ZooError
    from zoo.models.patch_grid import read_on_patch_grid

    run = tmp_path / "run"
    recipe = recipe_from_dict(tiny_recipe(run, cifar_root, "rotnet", run__export=True, augment__size=32))
    Trainer(recipe, command=f"zoo train rotnet_r18q_cifar10 run.out_dir={run} train.epochs=2").fit()
    (tmp_path / "run.log").write_text("[10:00:00] start\n[10:01:00] epoch 1 step 30/30 loss 1.0\n")
    where = dict(data=str(tiny_dataset), cards_dir=tmp_path / "cards", results_file=tmp_path / "measured.csv")
    with pytest.raises(
        ZooError, match="no patch-grid architecture is registered for 'resnet18_cifar_quarter' on a 5x8"
    ):
        ship(run, "rotnet-r18q-tiny", weights_dir=tmp_path / "no", patch_grid=(5, 8), **where)

    summary = ship(run, "rotnet-r18q-tiny", weights_dir=tmp_path / "weights", patch_grid=(7, 8), **where)
    assert summary["row"].arch == "resnet18_cifar_quarter_grid7x8"
    assert summary["patch_grid"] == {"grid": 7, "patch": 8}
    shipped = zoo.load(tmp_path / "weights" / "rotnet-r18q-tiny.safetensors")
    assert shipped.arch == "resnet18_cifar_quarter_grid7x8"
    expected = read_on_patch_grid(zoo.load_folder(run / "export"), 7, 8)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(shipped.backbone(x), expected.backbone(x), rtol=1e-2, atol=1e-2)
    again = measure(shipped, str(tiny_dataset), "test")
    assert {k: v["value"] for k, v in again.items()} == {
        k: v["value"] for k, v in summary["measured"].items()
    }


def test_ship_writes_the_rows_of_the_shipped_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows measured_rows writes for each zoo-trained encoder are those the registry holds
    (same how, command and weights), so a re-ship changes only its numbers."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the commands name ../shared/data
    shipped = {r.key: r for r in results.load()}
    sets = {"cifar10": ("test", (50_000, 10_000, 10)), "imagenette": ("val", (9_469, 3_925, 10))}
    for t in TRAINED:
        split, counts = sets[t.dataset]
        own = f"{t.dataset}-{split}"  # not the transfer rows, nor the fine-tune ones
        values = {r.protocol: r.value for r in shipped.values() if r.model == t.name and r.dataset == own}
        values = {p: v for p, v in values.items() if "finetune" not in p}
        rows = measured_rows(
            t.name,
            values,
            precision=t.precision,
            data=f"../shared/data/{t.dataset}",
            test_split=split,
            counts=counts,
            weights=t.sha256,
            flip_average=t.flip_average,
        )
        assert rows == [shipped[r.key] for r in rows]


def test_main_prints_the_summary_then_the_row_to_paste(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import zoo.training.ship as ship_module

    row = TRAINED[0]
    stale = results.Result(row.name, "cifar10-test", "finetune-1pct", 30.0, "h", "zoo eval x", "0" * 16)
    summary = {"name": row.name, "sha256": row.sha256, "row": row, "recorded": [stale] * 4, "stale": [stale]}
    monkeypatch.setattr(ship_module, "ship", lambda *a, **k: summary)
    ship_module.main(["runs/x", "--name", row.name])
    out = capsys.readouterr().out
    assert '"sha256": "' + row.sha256 in out and '"row"' not in out
    assert "Recorded 4 numbers" in out and "finetune-1pct, measured on weights 0000" in out
    assert out.rstrip().endswith(row.source())


def test_main_refuses_a_patch_grid_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    import zoo.training.ship as ship_module

    with pytest.raises(SystemExit) as e:
        ship_module.main(["runs/x", "--name", "x", "--patch-grid", "7-8"])
    assert (
        e.value.code == 2 and "--patch-grid takes GRIDxPATCH, e.g. 7x8; got '7-8'" in capsys.readouterr().err
    )
