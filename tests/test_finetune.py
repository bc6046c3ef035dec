"""Fine-tuning: create_classifier, zoo.finetune / `zoo finetune`, the classifier folder,
`zoo predict`, exact resume, the semi-supervised eval protocol and every refusal, on real
CIFAR-10 images (3 classes, a few dozen images, 32 px, the zoo-trained simclr-r18q-cifar10)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.classifier import FinetuneError, create_classifier
from zoo.errors import ImageError
from zoo.finetuning import FinetuneConfig, finetune, layer_units, param_groups
from zoo.folder import read_safetensors

MODEL = "simclr-r18q-cifar10"
CLASSES = ("airplane", "cat", "ship")
FAST = dict(epochs=2, batch_size=16, threads=1)


def copy_split(src: Path, dst: Path, per_class: int, classes=CLASSES) -> None:
    for c in classes:
        (dst / c).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / c).iterdir())[:per_class]:
            shutil.copy(f, dst / c / f.name)


@pytest.fixture(scope="module")
def cifar(data_root: Path) -> Path:
    return data_root / "cifar10"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, cifar: Path) -> Path:
    """train: 16 images of each of 3 classes; test: 8 each (no val/: 2 of each class's train
    images are held out to validate)."""
    root = tmp_path_factory.mktemp("tiny")
    copy_split(cifar / "train", root / "train", 16)
    copy_split(cifar / "test", root / "test", 8)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny: Path):
    """One full fine-tune with every output (shared by the folder tests)."""
    out = tmp_path_factory.mktemp("run") / "ft"
    result = finetune(MODEL, tiny, out, command="zoo finetune test", **FAST)
    return result


def test_create_classifier_is_encoder_plus_head(tiny: Path) -> None:
    model = create_classifier(MODEL, num_classes=3)
    pretrained = zoo.load(MODEL)
    assert model.num_classes == 3 and model.classes == ["0", "1", "2"]
    assert model.head.in_features == pretrained.embed_dim == 128
    for k, v in pretrained.backbone.state_dict().items():
        assert torch.equal(model.encoder.backbone.state_dict()[k], v), k
    files = sorted((tiny / "test" / "cat").iterdir())[:4]
    x = torch.stack([model.transform(f) for f in files])
    assert torch.equal(x, torch.stack([pretrained.transform(f) for f in files]))
    assert model(x).shape == (4, 3)
    assert np.allclose(model.predict_proba(files).sum(1), 1, atol=1e-5)
    # Train-time transforms: per image (torchvision v2, from PIL) and batched on uint8.
    from zoo.images import open_image

    view = model.train_transforms(open_image(files[0]))
    assert view.shape == (3, 32, 32) and view.dtype == torch.float32
    u8 = torch.stack([zoo.images.to_tensor(f) for f in files])
    views = model.train_views(u8, torch.Generator().manual_seed(0))
    assert len(views) == 1 and views[0].shape == (4, 3, 32, 32)
    assert not torch.allclose(views[0], x)  # random crops + flips, not the eval crop
    scratch = create_classifier(MODEL, classes=CLASSES, pretrained=False)
    assert scratch.classes == list(CLASSES)
    w = "conv1.weight"
    assert not torch.equal(scratch.encoder.backbone.state_dict()[w], pretrained.backbone.state_dict()[w])


def test_finetune_writes_a_classifier_folder(run, tiny: Path) -> None:
    out = run.folder
    assert run.finished and (run.train_images, run.val_images, run.test_images) == (42, 6, 24)
    names = {p.name for p in out.iterdir()}
    expected = {
        "config.json",
        "model.safetensors",
        "head.safetensors",
        "model.onnx",
        "README.md",
        "confusion.png",
    }
    assert expected | {"metrics.csv", "labels.txt", "finetune.json", "checkpoint.pt"} <= names
    config = json.loads((out / "config.json").read_text())
    assert config["label_names"] == list(CLASSES) and config["num_classes"] == 3
    assert config["architecture"] == "resnet18_cifar_quarter"
    record = config["zoo_classifier"]
    assert (record["val_top1"], record["test_top1"]) == (run.top1, run.test_top1)
    assert record["val"].startswith("held out from train: 0.1 of each class")
    assert record["test"] == "the test split (24 images)"
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(r["val_top1"] for r in rows)
    card = (out / "README.md").read_text()
    assert f"**Test top-1: {run.test_top1:.2f}%**" in card and "zoo finetune test" in card
    assert (
        f"chosen on val ({run.top1:.2f}% on held out from train" in card and "| class | test top-1 |" in card
    )
    assert "![confusion matrix" in card and "pipeline_tag: image-classification" in card
    # The folder loads back (head included) and its accuracy is what the card says: the
    # same test images through the user-facing file -> tensor path.
    model = zoo.create_classifier(out)
    assert model.classes == list(CLASSES)
    # Everything that reads a zoo folder reads the fine-tuned encoder from it.
    encoder = zoo.load(out)
    assert encoder.name == "simclr-r18q-cifar10-ft"
    sd = model.encoder.backbone.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in encoder.backbone.state_dict().items())
    assert not torch.equal(sd["conv1.weight"], zoo.load(MODEL).backbone.state_dict()["conv1.weight"])
    files = [f for c in CLASSES for f in sorted((tiny / "test" / c).iterdir())]
    labels = np.repeat(np.arange(3), 8)
    probs = model.predict_proba(files)
    assert round(100 * float((probs.argmax(1) == labels).mean()), 2) == run.test_top1
    per_class = json.loads((out / "finetune.json").read_text())["per_class_top1"]
    assert per_class == {
        c: round(100 * float((probs.argmax(1) == labels)[labels == i].mean()), 2)
        for i, c in enumerate(CLASSES)
    }
    # ONNX Runtime gives the same probabilities as PyTorch.
    from zoo.predict import Predictor

    onnx = Predictor(out, backend="onnx")
    assert onnx.session is not None
    assert np.abs(onnx(files) - probs).max() < 1e-4
    top = onnx.top_k(files[:1], 2)[0]
    assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] in CLASSES


def test_the_test_split_chooses_nothing(run, tiny: Path, tmp_path: Path, monkeypatch) -> None:
    # The same run beside a test/ split whose labels are rotated (airplanes filed as cats...):
    # had test/ chosen the epoch or stopped the run, the weights could differ; they may not.
    data = tmp_path / "d"
    shutil.copytree(tiny / "train", data / "train")
    for src, dst in zip(CLASSES, CLASSES[1:] + CLASSES[:1], strict=True):
        shutil.copytree(tiny / "test" / src, data / "test" / dst)
    from zoo.finetuning import _Run

    scored, evaluate = [], _Run.evaluate

    def spy(self, images, targets, *, autocast):
        scored.append(len(targets))
        return evaluate(self, images, targets, autocast=autocast)

    monkeypatch.setattr(_Run, "evaluate", spy)
    other = finetune(MODEL, data, tmp_path / "ft", onnx=False, **FAST)
    # Val (6 held-out train images) after each epoch and once at the end; test (24) once, last.
    assert scored == [6, 6, 6, 24]
    assert (other.top1, other.best_epoch, other.epochs_run) == (run.top1, run.best_epoch, run.epochs_run)
    for name in ("model.safetensors", "head.safetensors"):
        a, _ = read_safetensors(run.folder / name)
        b, _ = read_safetensors(tmp_path / "ft" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert other.test_images == 24 and other.test_top1 != run.test_top1
    # test_split="" (or val_split=test, the old behaviour) leaves no test figure.
    from zoo.finetuning import make_splits

    assert make_splits(data, FinetuneConfig(test_split="")).test_files == []
    old = make_splits(data, FinetuneConfig(val_split="test"))
    assert old.test_files == [] and len(old.val_files) == 24 and len(old.train_files) == 48
    # train/ + val/ + test/: val validates, test tests; a named split must exist and not be train.
    shutil.copytree(tiny / "test", data / "val")
    both = make_splits(data, FinetuneConfig())
    assert (len(both.train_files), both.val_source, both.test_source) == (
        48,
        "the val split (24 images)",
        "the test split (24 images)",
    )
    with pytest.raises(ImageError, match="test split exam/ not found"):
        make_splits(data, FinetuneConfig(test_split="exam"))
    with pytest.raises(ImageError, match="the test split is the training split"):
        make_splits(data, FinetuneConfig(test_split="train"))
    with pytest.raises(ImageError, match="no train/ split beside the test split test/"):
        make_splits(data / "train", FinetuneConfig(test_split="test"))


def test_modes_train_what_they_say(tiny: Path, tmp_path: Path) -> None:
    pretrained = zoo.load(MODEL).backbone.state_dict()
    changed = {}
    for mode in ("linear", "partial"):
        finetune(MODEL, tiny, tmp_path / mode, mode=mode, onnx=False, epochs=1, batch_size=16, threads=1)
        tensors, _ = read_safetensors(tmp_path / mode / "model.safetensors")
        assert tensors.keys() == pretrained.keys()  # model.safetensors: the encoder, as any zoo folder
        changed[mode] = {k for k, v in pretrained.items() if not torch.equal(tensors[k].to(v.dtype), v)}

    # linear: the encoder, BatchNorm statistics included, is exactly the pretrained one.
    assert changed["linear"] == set()
    # partial (2 blocks): layer4 only, the rest untouched.
    assert changed["partial"] and all(k.startswith("layer4.") for k in changed["partial"])


def test_precision_auto_is_bf16_only_on_cpus_with_bf16_instructions(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without AVX-512 BF16 or AMX, bf16 autocast is slower than fp32 (zoo.machine.cpu_has_bf16).
    for has_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=has_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        finetune(MODEL, tiny, tmp_path / expected, mode="linear", onnx=False, epochs=1, batch_size=16)
        assert f" epochs, {expected}, " in capsys.readouterr().err
        # The record (and so the card) says what ran, not "auto".
        record = json.loads((tmp_path / expected / "finetune.json").read_text())
        assert record["settings"]["precision"] == expected
    with pytest.raises(FinetuneError, match="precision must be auto, bf16 or fp32, got 'fp16'"):
        finetune(MODEL, tiny, tmp_path / "fp16", precision="fp16", **FAST)


def test_early_stopping_keeps_the_best_epoch(tiny: Path, tmp_path: Path) -> None:
    # A learning rate too small to change a prediction: val top-1 never improves after epoch
    # 1, so patience 1 stops the run after epoch 2 of 6, keeping epoch 1's weights.
    result = finetune(
        MODEL, tiny, tmp_path / "ft", mode="linear", lr=1e-9, patience=1, onnx=False, **{**FAST, "epochs": 6}
    )
    assert result.epochs_run == 2 and result.best_epoch == 1 and result.record["stopped_early"]
    rows = list(csv.DictReader((tmp_path / "ft" / "metrics.csv").open()))
    assert len(rows) == 2 and rows[0]["val_top1"] == rows[1]["val_top1"]
    assert "epoch 1 of 2" in (tmp_path / "ft" / "README.md").read_text()


def test_an_encoder_export_does_not_overwrite_a_classifier_folder(run, tmp_path: Path) -> None:
    # zoo.load reads the fine-tuned encoder of the folder, with the folder's own name: an export
    # back into it was taken for "an export of the same model" and dropped the head and classes.
    from zoo.errors import ExportError
    from zoo.export import export

    folder = Path(shutil.copytree(run.folder, tmp_path / "ft"))
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with pytest.raises(ExportError, match="holds a fine-tuned classifier"):
        export(zoo.load(folder), folder, onnx=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert zoo.create_classifier(folder).classes == list(CLASSES)


def test_a_fine_tuned_folder_is_fine_tuned_further(run, tiny: Path, cifar: Path, tmp_path: Path) -> None:
    # New data whose val split lacks a class: that class has no val accuracy, not 0%.
    data = tmp_path / "d"
    copy_split(tiny / "train", data / "train", 6)
    copy_split(cifar / "test", data / "val", 3, classes=CLASSES[:2])
    again = finetune(run.folder, data, tmp_path / "again", mode="linear", onnx=False, **FAST)
    before, _ = read_safetensors(run.folder / "model.safetensors")
    after, _ = read_safetensors(tmp_path / "again" / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)  # linear: the encoder it was given
    assert again.record["encoder"] == "simclr-r18q-cifar10-ft" and again.val_images == 6
    assert "| ship | – (no val image) |" in (tmp_path / "again" / "README.md").read_text()


def test_layer_wise_learning_rates() -> None:
    model = create_classifier(MODEL, classes=CLASSES)
    units = layer_units(model.encoder.backbone)
    names = [u[0][0].rsplit(".", 1)[0] for u in units]
    assert names[0] == "conv1" and names[1:3] == ["layer1.0.conv1", "layer1.1.conv1"] and len(units) == 9
    config = FinetuneConfig(lr=1e-3, encoder_lr_scale=0.1, layer_decay=0.5)
    groups = {g["name"]: g["base_lr"] for g in param_groups(model, config)}
    assert groups["head"] == 1e-3
    assert groups["encoder.layer4.1.conv1"] == pytest.approx(1e-4)
    assert groups["encoder.layer4.0.conv1"] == pytest.approx(5e-5)
    assert groups["encoder.conv1"] == pytest.approx(1e-4 * 0.5**8)
    assert all(p.requires_grad for p in model.parameters())
    assert sum(len(u) for u in units) == len(list(model.encoder.parameters()))


def test_interrupted_run_resumes_to_the_same_weights(tiny: Path, tmp_path: Path) -> None:
    settings = dict(labels_per_class=10, mixup=0.4, onnx=False, **FAST)
    settings["batch_size"] = 8  # 30 images: 4 steps of 7 per epoch; step 5 is mid-epoch 2
    (tmp_path / "whole").mkdir()
    (tmp_path / "whole" / "model.onnx").write_bytes(b"an earlier run's graph")
    whole = finetune(MODEL, tiny, tmp_path / "whole", **settings)
    assert not (tmp_path / "whole" / "model.onnx").exists()  # onnx=False: no graph of other weights
    part = finetune(MODEL, tiny, tmp_path / "part", max_steps=5, **settings)
    assert not part.finished and not (tmp_path / "part" / "model.safetensors").exists()
    with pytest.raises(FinetuneError, match="--resume"):
        finetune(MODEL, tiny, tmp_path / "part", **settings)
    with pytest.raises(zoo.ZooError, match=r"differs from the checkpoint.s in settings\.lr"):
        finetune(MODEL, tiny, tmp_path / "part", resume=True, **{**settings, "lr": 0.01})
    resumed = finetune(MODEL, tiny, tmp_path / "part", resume=True, **settings)
    assert resumed.finished and resumed.top1 == whole.top1
    a, _ = read_safetensors(tmp_path / "whole" / "model.safetensors")
    b, _ = read_safetensors(tmp_path / "part" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = [(tmp_path / d / "metrics.csv").read_text().splitlines() for d in ("whole", "part")]
    drop_seconds = [[line.rsplit(",", 1)[0] for line in m] for m in metrics]
    assert drop_seconds[0] == drop_seconds[1]


def test_a_checkpoint_of_something_else_is_one_clear_error(tiny: Path, tmp_path: Path) -> None:
    from zoo.finetuning import CHECKPOINT_NAME

    out = tmp_path / "ft"
    out.mkdir()
    # Loads with weights_only (tensors and JSON) but holds no run identity: another tool's file.
    torch.save({"state": json.dumps({"progress": {"epoch": 1}}), "model": {}}, out / CHECKPOINT_NAME)
    with pytest.raises(zoo.ZooError, match="not a `zoo finetune` checkpoint of this version"):
        finetune(MODEL, tiny, out, resume=True, onnx=False, **FAST)


def test_label_subsets_are_balanced_seeded_and_saved(tiny: Path, tmp_path: Path) -> None:
    from zoo.finetuning import make_splits

    a = make_splits(tiny, FinetuneConfig(label_fraction=0.25, seed=1))
    b = make_splits(tiny, FinetuneConfig(label_fraction=0.25, seed=1))
    c = make_splits(tiny, FinetuneConfig(label_fraction=0.25, seed=2))
    assert np.bincount(a.train_labels).tolist() == [4, 4, 4]
    assert a.train_files == b.train_files and a.train_files != c.train_files
    # No val/test split: a stated, seeded held-out share of each class.
    flat = tmp_path / "flat"
    for cls in CLASSES:
        shutil.copytree(tiny / "train" / cls, flat / cls)
    held = make_splits(flat, FinetuneConfig(val_fraction=0.25))
    assert np.bincount(held.val_labels).tolist() == [4, 4, 4] and len(held.train_files) == 36
    assert not set(held.train_files) & set(held.val_files)
    assert "held out" in held.val_source


def test_cli_finetune_predict_and_eval(tiny: Path, tmp_path: Path, capsys) -> None:
    from zoo.cli import main

    out = tmp_path / "cli"
    args = ["finetune", MODEL, "--data", str(tiny), "--out", str(out), "--labels-per-class", "6"]
    assert main([*args, "--epochs", "1", "--mode", "linear", "threads=1", "batch_size=8"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}/: test top-1" in printed and "on 24 images (chose nothing); val top-1" in printed
    labels = (out / "labels.txt").read_text().splitlines()
    assert len(labels) == 1 + 18 and labels[1].startswith("train/")
    # batch_size=8 is evened out to 3 batches of 6, so every labelled image is seen each epoch.
    assert next(csv.DictReader((out / "metrics.csv").open()))["step"] == "3"
    card = (out / "README.md").read_text()
    command = f"zoo finetune {MODEL} --data {tiny} --out {out} --mode linear --labels-per-class 6 --epochs 1"
    assert command + " threads=1 batch_size=8\n" in card
    image = sorted((tiny / "test" / "ship").iterdir())[0]
    assert main(["predict", str(out), str(image), "-k", "2", "--backend", "torch"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{image}: ") and line.count(",") == 1
    probs = [float(part.split()[-1]) for part in line.split(": ", 1)[1].split(", ")]
    assert probs[0] >= probs[1] > 0
    # The semi-supervised protocol, pretrained and from scratch, on the same labels.
    base = ["eval", MODEL, "--data", str(tiny), "--protocol", "finetune", "--labels-per-class", "4"]
    base += ["--epochs", "1", "threads=1", "batch_size=6"]
    assert main(base) == 0
    pre = json.loads(capsys.readouterr().out)
    assert main([*base, "--from-scratch"]) == 0
    scratch = json.loads(capsys.readouterr().out)
    assert pre["train_images"] == scratch["train_images"] == 12 and pre["test_images"] == 24
    assert 0 <= pre["top1"] <= 100 and "from random initialisation" in scratch["protocol"]
    assert "from random" not in pre["protocol"] and scratch["model"].endswith("(from scratch)")


def test_eval_protocol_uses_the_same_labels_for_the_baseline(tiny: Path, tmp_path: Path) -> None:
    from zoo.evaluate import evaluate

    settings = dict(label_fraction=0.25, epochs=1, threads=1, batch_size=6)
    evaluate(MODEL, tiny, protocol="finetune", finetune={**settings, "out": tmp_path / "a"})
    evaluate(
        MODEL, tiny, protocol="finetune", finetune={**settings, "out": tmp_path / "b", "from_scratch": True}
    )
    a, b = ((tmp_path / d / "labels.txt").read_text() for d in "ab")
    assert a == b and len(a.splitlines()) == 1 + 12


# ------------------------------------------------------------------------------ refusals


def test_one_class_is_refused(tiny: Path, tmp_path: Path) -> None:
    copy_split(tiny / "train", tmp_path / "one", 5, classes=("cat",))
    with pytest.raises(FinetuneError, match="only one class"):
        finetune(MODEL, tmp_path / "one", tmp_path / "out")


def test_empty_class_folder_is_refused(tiny: Path, tmp_path: Path) -> None:
    copy_split(tiny / "train", tmp_path / "d" / "train", 5)
    (tmp_path / "d" / "train" / "dog").mkdir()
    with pytest.raises(ImageError, match=r"dog: class folder holds no images"):
        finetune(MODEL, tmp_path / "d", tmp_path / "out")


def test_val_classes_missing_from_train_are_refused(tiny: Path, cifar: Path, tmp_path: Path) -> None:
    copy_split(tiny / "train", tmp_path / "d" / "train", 5)
    copy_split(cifar / "test", tmp_path / "d" / "val", 2, classes=(*CLASSES, "frog"))
    with pytest.raises(FinetuneError, match=r"4 classes, 1 of them not in .*train \(frog\)"):
        finetune(MODEL, tmp_path / "d", tmp_path / "out")


def test_test_classes_missing_from_train_are_refused(tiny: Path, cifar: Path, tmp_path: Path) -> None:
    copy_split(tiny / "train", tmp_path / "d" / "train", 5)
    copy_split(cifar / "test", tmp_path / "d" / "test", 2, classes=(*CLASSES, "frog"))
    with pytest.raises(FinetuneError, match=r"not in .*train \(frog\); the test split may only use training"):
        finetune(MODEL, tmp_path / "d", tmp_path / "out")


def test_a_label_fraction_that_empties_a_class_is_refused(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(
        FinetuneError, match=r"label fraction 0.01 leaves class 'airplane' with no labelled image"
    ):
        finetune(MODEL, tiny, tmp_path / "out", label_fraction=0.01)
    with pytest.raises(FinetuneError, match="fewer than labels_per_class=17"):
        finetune(MODEL, tiny, tmp_path / "out", labels_per_class=17)


def test_a_model_without_pooled_features_is_refused(tiny: Path, tmp_path: Path) -> None:
    encoder = zoo.load(MODEL)
    # The same trunk without its global pooling: (N, 128, 4, 4) feature maps.
    trunk = torch.nn.Sequential(*list(encoder.backbone.children())[:-2])
    unpooled = zoo.Encoder(trunk, encoder.arch, encoder.preprocess, encoder.entry)
    with pytest.raises(FinetuneError, match=r"no pooled features: its output is \(2, 128, 4, 4\)"):
        create_classifier(unpooled, 3)
    with pytest.raises(FinetuneError, match="no pooled features"):
        finetune(unpooled, tiny, tmp_path / "out")


def test_cli_errors_are_one_line(tiny: Path, tmp_path: Path, capsys) -> None:
    from zoo.cli import main

    code = main(["finetune", MODEL, "--data", str(tiny), "--out", str(tmp_path), "--label-fraction", "0.01"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("zoo: error: label fraction 0.01")
    assert main(["predict", str(tiny), str(tiny / "test" / "cat")]) == 2
    assert "not a fine-tuned classifier folder" in capsys.readouterr().err
    assert main(["finetune", MODEL, "--data", str(tiny), "--out", str(tmp_path), "lr=fast"]) == 2
    assert "bad override 'lr=fast'" in capsys.readouterr().err


def test_imagenette_photos_at_the_encoders_input_size(data_root: Path, tmp_path: Path) -> None:
    """224 px photos, a 64 px ImageNet-stem ResNet-18: stored at the resize size (72),
    random crops of 64 in training, centre crops in validation; held-out val split."""
    src = data_root / "imagenette" / "train"
    flat = tmp_path / "photos"
    copy_split(src, flat, 10, classes=("n01440764", "n03394916"))
    result = finetune(
        "simclr-r18-imagenette",
        flat,
        tmp_path / "ft",
        mode="linear",
        epochs=1,
        batch_size=8,
        threads=1,
        val_fraction=0.2,
    )
    assert result.finished and result.train_images == 16 and result.val_images == 4
    card = (tmp_path / "ft" / "README.md").read_text()
    assert "held out from photos: 0.2 of each class, seed 0 (4 images)" in card
    from zoo.predict import Predictor

    files = sorted((flat / "n03394916").iterdir())[:3]
    torch_probs = Predictor(tmp_path / "ft", backend="torch")(files)
    onnx_probs = Predictor(tmp_path / "ft", backend="onnx")(files)
    assert torch_probs.shape == (3, 2) and np.abs(torch_probs - onnx_probs).max() < 1e-4
