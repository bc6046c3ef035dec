"""Choosing a test resolution on held-out training images, and shipping an encoder at it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_recipes import tiny_recipe
from zoo.training.loop import Trainer
from zoo.training.recipe import recipe_from_dict
from zoo.training.ship import measure, ship
from zoo.training.test_resolution import at_test_size, holdout_knn, holdout_split, main, parse_candidate

import zoo
from zoo.evaluate import features, image_folder, knn_predict


def test_the_held_out_split_takes_a_share_of_every_class() -> None:
    labels = np.repeat([0, 1, 2], [20, 10, 3])
    bank, query = holdout_split(labels, 0.1, seed=0)
    assert sorted(np.concatenate([bank, query]).tolist()) == list(range(33))
    assert np.bincount(labels[query]).tolist() == [2, 1, 1]
    with pytest.raises(ValueError, match="class 1 has 1 training image"):
        holdout_split(np.array([0, 0, 1]), 0.5)


def test_candidates_parse_or_fail_clearly() -> None:
    assert parse_candidate("146/128") == (146, 128, False)
    assert parse_candidate("48/48+flip") == (48, 48, True)
    assert str(parse_candidate("48/48+flip")) == "48/48+flip" and str(parse_candidate("48/48")) == "48/48"
    for bad in ("128", "128/146", "a/b", "48/48+flop", "48/48+", "48/48flip", "+flip", "48/48+flip+flip"):
        with pytest.raises(ValueError, match=f"candidate '{re.escape(bad)}'"):
            parse_candidate(bad)
    with pytest.raises(ValueError, match=r"optional \+flip"):
        parse_candidate("48/48+flop")


def test_a_flip_candidate_is_scored_with_mirror_averaged_features(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zoo.training.test_resolution as chooser

    encoder = zoo.create_model("resnet18_cifar_quarter")
    asked, features_of = [], chooser.features

    def spy(encoder, files, **kwargs):
        asked.append(encoder.preprocess.flip_average)
        return features_of(encoder, files, **kwargs)

    monkeypatch.setattr(chooser, "features", spy)
    scores = holdout_knn(encoder, tiny_dataset, ["32/32", "32/32+flip"], k=5, fraction=0.25)
    assert asked == [False, True]
    assert list(scores) == ["32/32", "32/32+flip"]  # keyed by the candidates as given
    files, labels, _ = image_folder(tiny_dataset / "train")
    bank, query = holdout_split(labels, 0.25)
    reading = at_test_size(encoder, 32, 32, flip_average=True)
    assert reading.preprocess.flip_average and not encoder.preprocess.flip_average
    feats = features(reading, files, backend="torch")
    with torch.inference_mode():
        batch = torch.stack([encoder.transform(f) for f in files[:4]])
        mean = (encoder.backbone(batch) + encoder.backbone(batch.flip(-1))) / 2
    assert np.abs(feats[:4] - mean.numpy()).max() < 1e-4
    predicted = knn_predict(feats[bank], labels[bank], feats[query], k=5, temperature=0.07, num_classes=3)
    assert scores["32/32+flip"] == round(float((predicted == labels[query]).mean() * 100), 2)
    # Tuples name their candidates the same way.
    assert list(holdout_knn(encoder, tiny_dataset, [(32, 32, True)], k=5, fraction=0.25)) == ["32/32+flip"]


def test_held_out_knn_reads_only_the_training_split(tmp_path: Path, tiny_dataset: Path) -> None:
    # No test split at all: the choice cannot look at it.
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset / "train", data / "train")
    encoder = zoo.create_model("resnet18_cifar_quarter")
    scores = holdout_knn(encoder, data, [(32, 32), (40, 32)], k=5, fraction=0.25)
    assert list(scores) == ["32/32", "40/32"]
    # Each score is the direct computation: a quarter of each class queries the rest.
    files, labels, _ = image_folder(data / "train")
    bank, query = holdout_split(labels, 0.25)
    feats = features(encoder, files, backend="torch")
    predicted = knn_predict(feats[bank], labels[bank], feats[query], k=5, temperature=0.07, num_classes=3)
    assert scores["32/32"] == round(float((predicted == labels[query]).mean() * 100), 2)


def test_the_command_prints_every_candidate_and_the_best(
    tmp_path: Path, tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "enc"
    zoo.create_model("resnet18_cifar_quarter").save(folder, card=False)
    main([str(folder), "--data", str(tiny_dataset), "--candidates", "32/32", "36/32", "-k", "5"])
    out = json.loads(capsys.readouterr().out)
    scores = holdout_knn(zoo.load(folder), tiny_dataset, [(32, 32), (36, 32)], k=5, fraction=0.1)
    assert out["held_out_knn_top1"] == scores and out["fraction"] == 0.1
    assert out["best"] == max(scores, key=scores.get)
    with pytest.raises(SystemExit):
        main([str(folder), "--data", str(tiny_dataset), "--candidates", "32"])
    capsys.readouterr()
    # One line naming the problem, no traceback: an unknown model, a data root without train/.
    for model, root, named in (
        ("no-such-model", tiny_dataset, "Unknown model 'no-such-model'"),
        (str(folder), folder, "train"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([model, "--data", str(root), "--candidates", "32/32"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith("zoo: error:") and named in err
        assert "Traceback" not in err and err.count("\n") == 1


def ship_tiny(tmp_path: Path, cifar_root: Path, tiny_dataset: Path, test_size) -> tuple[dict, zoo.Encoder]:
    """A tiny SimCLR run shipped at ``test_size``: ship's summary and the shipped file, loaded."""
    run = tmp_path / "run"
    recipe = recipe_from_dict(tiny_recipe(run, cifar_root, "simclr", run__export=True))
    Trainer(recipe, command=f"zoo train simclr_r18q_cifar10 run.out_dir={run} train.epochs=2").fit()
    (tmp_path / "run.log").write_text("[10:00:00] start\n[10:03:00] epoch 1 step 30/30 loss 3.0\n")
    summary = ship(
        run,
        "simclr-r18q-tiny",
        data=str(tiny_dataset),
        weights_dir=tmp_path / "weights",
        cards_dir=tmp_path / "cards",
        results_file=tmp_path / "measured.csv",
        test_size=test_size,
    )
    shipped = zoo.load(tmp_path / "weights" / "simclr-r18q-tiny.safetensors")
    # The shipped file gives the numbers recorded.
    again = measure(shipped, str(tiny_dataset), "test")
    recorded = {k: v["value"] for k, v in summary["measured"].items()}
    assert {k: v["value"] for k, v in again.items()} == recorded
    return summary, shipped


def test_a_run_ships_at_the_chosen_test_size(tmp_path: Path, cifar_root: Path, tiny_dataset: Path) -> None:
    summary, shipped = ship_tiny(tmp_path, cifar_root, tiny_dataset, (40, 36))
    assert summary["test_size"] == {"resize": 40, "crop": 36}
    assert summary["run_test_size"]["crop"] == 16  # tiny_recipe's training size
    assert (summary["row"].resize, summary["row"].size) == (40, 36)
    assert (shipped.preprocess.resize_size, shipped.preprocess.input_size) == (40, 36)
    assert shipped.preprocess.flip_average is False


def test_a_run_ships_with_mirror_averaged_features(
    tmp_path: Path, cifar_root: Path, tiny_dataset: Path
) -> None:
    from zoo.pretrained import trained_entry

    summary, shipped = ship_tiny(tmp_path, cifar_root, tiny_dataset, parse_candidate("40/36+flip"))
    assert summary["test_size"] == {"resize": 40, "crop": 36} and summary["flip_average"] is True
    row = summary["row"]
    assert row.flip_average and "flip_average=True" in row.source()
    assert eval(row.source().strip().rstrip(","), vars(zoo.pretrained)) == row
    assert trained_entry(row).preprocess.flip_average is True
    assert all("mirror image" in r.how for r in summary["recorded"] if not r.protocol.startswith("task-"))
    # The shipped file carries the option (and ship_tiny checked its numbers include it).
    assert shipped.preprocess.flip_average is True
