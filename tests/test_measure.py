"""Recording measured numbers: `zoo eval ... --record` and `python -m zoo.training.measure`, on
real CIFAR-10 and Imagenette images (a few per class), into a temporary table ($ZOO_RESULTS)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from zoo.training import measure

import zoo
from zoo.cli import main
from zoo.evaluate import shown_path
from zoo.results import Result, load

CIFAR = "swav-r18q-cifar10"
SELECTING = ["select_best=true", "eval_every_epochs=1"]
NETTE = "simclr-r18-imagenette"


def copy_split(src: Path, dst: Path, per_class: int, classes: int) -> None:
    for c in sorted(d for d in src.iterdir() if d.is_dir())[:classes]:
        (dst / c.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(c.iterdir())[:per_class]:
            shutil.copy(f, dst / c.name / f.name)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A data root like ../shared/data: cifar10/{train,test} and imagenette/{train,val}, 3 classes."""
    root = tmp_path_factory.mktemp("data")
    copy_split(data_root / "cifar10" / "train", root / "cifar10" / "train", 12, 3)
    copy_split(data_root / "cifar10" / "test", root / "cifar10" / "test", 6, 3)
    copy_split(data_root / "imagenette" / "train", root / "imagenette" / "train", 4, 3)
    copy_split(data_root / "imagenette" / "val", root / "imagenette" / "val", 2, 3)
    return root


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "measured.csv"
    monkeypatch.setenv("ZOO_RESULTS", str(path))
    return path


def sha16(name: str) -> str:
    return zoo.model_info(name).weights.sha256[:16]


def test_record_keeps_the_number_its_command_and_weights(small_root: Path, table: Path, capsys) -> None:
    data = small_root / "cifar10"
    args = ["eval", CIFAR, "--data", str(data), "-k", "20", "--temperature", "0.07", "--backend", "torch"]
    assert main([*args, "--record"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (row,) = load(table)
    assert row.key == (CIFAR, "cifar10-test", "knn-k20")
    assert row.value == printed["top1"] and row.weights == sha16(CIFAR)
    rel = shown_path(data)
    assert row.command == f"zoo eval {CIFAR} --data {rel} -k 20 --temperature 0.07 --backend torch"
    assert row.how.startswith("weighted kNN, k=20, T=0.07") and "36 train / 18 test images" in row.how

    # The from-scratch baseline is a row of its own, beside the encoder's other numbers.
    tune = ["eval", CIFAR, "--data", str(data), "--protocol", "finetune", "--labels-per-class", "3"]
    tune += ["--from-scratch", "--epochs", "1", "threads=1", "batch_size=9", "--record"]
    assert main(tune) == 0
    scratch = json.loads(capsys.readouterr().out)
    rows = {r.protocol: r for r in load(table)}
    assert set(rows) == {"knn-k20", "scratch-finetune-3perclass"}
    got = rows["scratch-finetune-3perclass"]
    assert got.value == scratch["top1"] and "from random initialisation" in got.how
    assert got.command == (
        f"zoo eval {CIFAR} --data {rel} --protocol finetune --labels-per-class 3 --from-scratch --epochs 1"
        " threads=1 batch_size=9"
    )
    # Recording again replaces the row instead of adding one.
    assert main([*args, "--record"]) == 0
    assert len(load(table)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model_cards", "--data", "{data}"], "--record needs a registry name"),
        ([CIFAR, "--data", "{data}", "--protocol", "retrieval"], "does not keep --protocol retrieval"),
        ([CIFAR, "--data", "{data}", "-k", "10"], "keeps kNN only as -k 20 --temperature 0.07"),
        ([CIFAR, "--data", "{data}", "--random-init"], "does not keep --random-init"),
        ([CIFAR, "--data", "{data}", "--backend", "onnx-int8"], "--backend onnx-int8 is not recorded"),
        ([CIFAR, "--data", "{data}", "--limit-per-class", "2"], "keeps full-split numbers"),
        (
            [CIFAR, "--data", "{data}", "--protocol", "finetune", "--label-fraction", "0.1", "--epochs", "3"],
            "keeps fine-tuning on 10% of the labels as --epochs 10, as every row of the table",
        ),
        (
            [CIFAR, "--data", "{data}", "--protocol", "finetune", "--epochs", "30", *SELECTING],
            "eval_every_epochs, select_best would select on it",
        ),
    ],
)
def test_record_refuses_what_the_table_cannot_hold(
    args: list[str], message: str, small_root: Path, table: Path, capsys
) -> None:
    argv = ["eval", *(a.format(data=small_root / "cifar10") for a in args), "--record"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("zoo: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and captured.out == "" and not table.exists()


def test_limit_per_class_scores_a_subset_and_refuses_what_it_cannot_do(small_root: Path, capsys) -> None:
    data = str(small_root / "cifar10")
    assert main(["eval", CIFAR, "--data", data, "--limit-per-class", "2", "-k", "3"]) == 0
    limited = json.loads(capsys.readouterr().out)
    assert (limited["train_images"], limited["test_images"]) == (6, 6)  # 3 classes
    for argv, message in (
        (["--limit-per-class", "-1"], "--limit-per-class must be 0 (every image) or more, got -1"),
        (["--limit-per-class", "2", "--protocol", "finetune"], "finetune takes --labels-per-class"),
    ):
        assert main(["eval", CIFAR, "--data", data, *argv]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("zoo: error: ") and message in captured.err


def planned(entry: zoo.ModelEntry, rows: list[Result], root: Path, protocols=measure.PROTOCOLS) -> dict:
    return {
        (t.model, t.dataset, t.protocol): t
        for t in measure.plan([entry], rows, data_root=root, protocols=protocols)
    }


def test_plan_picks_missing_and_stale_rows_and_skips_fresh_ones(data_root: Path) -> None:
    entry = zoo.model_info(CIFAR)
    everything = planned(entry, [], data_root)
    assert set(everything) == {
        (CIFAR, "cifar10-test", "finetune-1pct"),
        (CIFAR, "cifar10-test", "finetune-10pct"),
        (CIFAR, "imagenette-val", "knn-k20"),
        (CIFAR, "imagenette-val", "linear"),
        (CIFAR, "cifar10-test", "scratch-finetune-1pct"),
        (CIFAR, "cifar10-test", "scratch-finetune-10pct"),
    }
    assert all(t.reason == "missing" for t in everything.values())
    ft = everything[(CIFAR, "cifar10-test", "finetune-1pct")]
    assert ft.command == (
        f"zoo eval {CIFAR} --data {shown_path(data_root / 'cifar10')} --protocol finetune"
        f" --label-fraction 0.01 --epochs {measure.FINETUNE_EPOCHS[0.01]}"
    )
    transfer = everything[(CIFAR, "imagenette-val", "knn-k20")]
    assert transfer.argv[3] == shown_path(data_root / "imagenette")

    def row(model: str, task: measure.Task, weights: str, command: str | None = None) -> Result:
        return Result(model, task.dataset, task.protocol, 50.0, "how", command or task.command, weights)

    scratch1 = everything[(CIFAR, "cifar10-test", "scratch-finetune-1pct")]
    scratch10 = everything[(CIFAR, "cifar10-test", "scratch-finetune-10pct")]
    peer = "dino-r18q-cifar10"  # same architecture, same dataset: its baseline serves swav too
    rows = [
        row(CIFAR, ft, sha16(CIFAR)),  # fresh
        row(CIFAR, everything[(CIFAR, "cifar10-test", "finetune-10pct")], "0" * 16),  # other weights
        row(CIFAR, transfer, sha16(CIFAR), command=transfer.command + " --backend torch"),  # other command
        row(peer, scratch1, sha16(peer), command=scratch1.command.replace(CIFAR, peer)),  # fresh, a peer's
        row(peer, scratch10, "f" * 16, command=scratch10.command.replace(CIFAR, peer)),  # a peer's, stale
    ]
    left = planned(entry, rows, data_root)
    fresh = {(CIFAR, "cifar10-test", "finetune-1pct"), (CIFAR, "cifar10-test", "scratch-finetune-1pct")}
    assert set(left) == set(everything) - fresh
    assert left[(CIFAR, "cifar10-test", "finetune-10pct")].reason.startswith(
        "stale: measured on weights 0000"
    )
    assert left[(CIFAR, "imagenette-val", "knn-k20")].reason.startswith("stale: measured by `")
    assert f"{peer}: stale" in left[(CIFAR, "cifar10-test", "scratch-finetune-10pct")].reason
    assert set(planned(entry, rows, data_root, protocols=("transfer",))) == {
        (CIFAR, "imagenette-val", "knn-k20"),
        (CIFAR, "imagenette-val", "linear"),
    }


def test_a_from_scratch_baseline_serves_only_entries_of_its_input_size(data_root: Path) -> None:
    # swav-r18q-cifar10 reads 32 px; the 200-epoch MoCo flagship, the same network, reads 48 px.
    # A fresh 48 px baseline used to stand for the 32 px one, whatever state that row was in.
    entry, peer = zoo.model_info(CIFAR), zoo.model_info("moco-v2-r18q-cifar10.ep200")
    assert (entry.arch, entry.dataset) == (peer.arch, peer.dataset)
    assert (entry.preprocess.input_size, peer.preprocess.input_size) == (32, 48)
    task = planned(entry, [], data_root)[(CIFAR, "cifar10-test", "scratch-finetune-1pct")]
    command = task.command.replace(CIFAR, peer.name)
    rows = [Result(peer.name, task.dataset, task.protocol, 37.06, "how", command, sha16(peer.name))]
    assert (CIFAR, "cifar10-test", "scratch-finetune-1pct") in planned(entry, rows, data_root)
    assert (peer.name, "cifar10-test", "scratch-finetune-1pct") not in planned(peer, rows, data_root)


def test_measure_records_each_number_then_finds_nothing_left(small_root: Path, table: Path, capsys) -> None:
    base = [NETTE, "--protocols", "transfer", "--data-root", str(small_root), "--results", str(table)]
    assert measure.main([*base, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"2 to measure into {table} (dry run") and not table.exists()
    assert f"zoo eval {NETTE} --data {shown_path(small_root / 'cifar10')} -k 20 --temperature 0.07" in out

    assert measure.main(base) == 0
    out = capsys.readouterr().out
    assert "[2/2] recorded simclr-r18-imagenette cifar10-test linear in " in out
    rows = {r.protocol: r for r in load(table)}
    assert set(rows) == {"knn-k20", "linear"}
    assert all(r.dataset == "cifar10-test" and r.weights == sha16(NETTE) for r in rows.values())
    assert measure.main([*base, "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("0 to measure")


def test_measure_refuses_unknown_names_and_protocols(small_root: Path, table: Path, capsys) -> None:
    root = ["--data-root", str(small_root), "--dry-run"]
    assert measure.main(["supervised-efficientnet-lite0", *root]) == 2
    assert "names no zoo-trained encoder" in capsys.readouterr().err
    assert measure.main([CIFAR, "--protocols", "finetune,zeroshot", *root]) == 2
    assert "--protocols takes finetune, transfer" in capsys.readouterr().err
    assert measure.main([CIFAR, "--data-root", str(small_root / "nowhere"), "--dry-run"]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_a_bare_name_measures_its_default_tag_only() -> None:
    tags = [n for n in zoo.list_models("moco-v2-r18q-cifar10.*") if zoo.model_info(n).training]
    assert len(tags) > 1  # the 200-epoch flagship (default) and the 8-epoch leaderboard encoder
    chosen = [e.name for e in measure.trained_entries(["moco-v2-r18q-cifar10"])]
    assert chosen == [zoo.model_info("moco-v2-r18q-cifar10").name]
    assert [e.name for e in measure.trained_entries(["moco-v2-r18q-cifar10.*"])] == tags


def test_record_refuses_a_knn_whose_train_split_is_smaller_than_k(
    small_root: Path, table: Path, capsys
) -> None:
    # 36 train images and -k 200: every image votes, which is not the table's knn-k200.
    argv = ["eval", CIFAR, "--data", str(small_root / "cifar10"), "-k", "200", "--temperature", "0.1"]
    assert main([*argv, "--backend", "torch", "--record"]) == 2
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert shown["k"] == 36 and shown["protocol"].startswith("weighted kNN, k=36, T=0.1")
    assert "(k=200 asked; the train split has 36 images)" in shown["protocol"]
    assert "has 36 images, fewer than -k 200" in captured.err and not table.exists()


def test_the_sweep_runs_its_relative_data_paths_from_the_checkout(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planned commands say ../shared/data/cifar10, relative to the checkout: started from
    # another folder, the sweep evaluated whatever sat at that path from there.
    import zoo.cli

    checkout = Path(zoo.__file__).resolve().parent.parent
    relative = os.path.relpath((data_root / "imagenette").resolve(), checkout)
    argv = ("eval", CIFAR, "--data", relative, "--protocol", "linear")
    task = measure.Task(CIFAR, "imagenette-val", "linear", argv, "missing")
    seen: list[Path] = []
    monkeypatch.setattr(zoo.cli, "main", lambda argv: seen.append(Path(argv[3]).resolve()) or 0)
    monkeypatch.chdir(tmp_path)
    measure.run([task], out=io.StringIO())
    assert seen == [(data_root / "imagenette").resolve()]
