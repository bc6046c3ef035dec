"""The trainer on real CIFAR-10 images: exact resume after a kill, NaN handling, bad data,
and a run that ends as an exported, evaluated zoo folder."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from _train_recipes import tiny_recipe
from zoo.training.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from zoo.training.loop import Trainer, TrainingDiverged, read_csv
from zoo.training.recipe import RecipeError, recipe_from_dict

from zoo.cli import main
from zoo.errors import ImageError, ZooError


def _train_cli(recipe_file: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo.training", str(recipe_file), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _logged_steps(run_dir: Path) -> list[int]:
    """Steps logged so far by a running trainer (a line being written is skipped)."""
    try:
        return [int(r["step"]) for r in read_csv(run_dir / "metrics.csv") if r.get("loss")]
    except (FileNotFoundError, ValueError, TypeError):
        return []


def _losses(run_dir: Path) -> list[tuple[int, str]]:
    return [(int(r["step"]), r["loss"]) for r in read_csv(run_dir / "metrics.csv")]


def test_a_killed_run_resumes_exactly(tmp_path: Path, cifar_root: Path) -> None:
    """SIGKILL mid-run, --resume: the loss of every step equals the uninterrupted run's."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    recipes = {}
    for name, out in (("full", full), ("killed", killed)):
        # MoCo v2: momentum encoder, queue, data order and views all have to come back.
        recipe = tiny_recipe(out, cifar_root, "moco_v2", train__epochs=10)
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(yaml.safe_dump(recipe))
    proc = _train_cli(recipes["killed"])
    deadline = time.monotonic() + 300
    while True:
        # Killed between checkpoints (every 3 steps), in the second epoch or later.
        steps = _logged_steps(killed)
        if len(steps) >= 8 and steps[-1] % 3 != 0:
            break
        assert proc.poll() is None, (
            f"the run ended before it could be killed: {proc.communicate()[1][-2000:]}"
        )
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = _losses(killed)[-1][0]
    ckpt = torch.load(killed / CHECKPOINT_NAME, weights_only=True)
    saved = json.loads(ckpt["state"])["progress"]["step"]
    assert 0 < saved < interrupted_at  # the last checkpoint before the kill (every 3 steps or epoch end)
    assert int(ckpt["model"]["queue.pointer"]) == (saved * 2 * 16) % 64  # two views' keys a step, queue 64
    resumed = _train_cli(recipes["killed"], "--resume")
    reference = _train_cli(recipes["full"])
    errs = {}
    for name, p in (("resumed", resumed), ("reference", reference)):
        _, errs[name] = p.communicate(timeout=300)
        assert p.returncode == 0, errs[name]
    # It continued from that checkpoint, not from step 0 (which would reproduce the losses too).
    assert f"at step {saved} (epoch" in errs["resumed"]
    full_losses, resumed_losses = _losses(full), _losses(killed)
    assert len(full_losses) == 10 * 5  # 80 images / batch 16 = 5 steps per epoch
    assert resumed_losses == full_losses
    assert interrupted_at < len(full_losses)


def test_sigterm_stops_after_the_step_saves_it_and_says_how_to_continue(
    tmp_path: Path, cifar_root: Path
) -> None:
    """What a machine shutting down sends: the run ends cleanly, nothing after its last checkpoint lost."""
    recipe = tmp_path / "run.yaml"
    out = tmp_path / "run"
    tiny = tiny_recipe(out, cifar_root, "simclr", train__epochs=10, run__checkpoint_every_steps=100)
    recipe.write_text(yaml.safe_dump(tiny))
    proc = _train_cli(recipe)
    deadline = time.monotonic() + 300
    while not (len(steps := _logged_steps(out)) >= 3 and steps[-1] % 5):  # mid-epoch: no checkpoint there
        assert proc.poll() is None, f"the run ended before the signal: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "SIGTERM: stopping after step" in stderr
    stopped_at = int(stdout.split("stopped at step ")[1].split(";")[0])
    assert f"continue with: zoo train {recipe} --resume" in stdout
    state = json.loads(torch.load(out / CHECKPOINT_NAME, weights_only=True)["state"])
    assert state["progress"]["step"] == stopped_at == _logged_steps(out)[-1] and stopped_at % 5


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.training.methods.simclr import SimCLR

    original = SimCLR.training_step
    calls = {"n": 0}

    def diverging(self, views):
        calls["n"] += 1
        out = original(self, views)
        if calls["n"] == 5:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(SimCLR, "training_step", diverging)
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr"))
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 5 \(epoch 0\).*last good checkpoint"):
        Trainer(recipe).fit()
    trainer = Trainer(recipe)
    trainer._setup()
    progress = load_checkpoint(
        tmp_path / "run" / CHECKPOINT_NAME, model=trainer.method, optimizer=trainer.optimizer, scaler=None
    )
    assert progress.step == 3
    assert all(torch.isfinite(v).all() for v in trainer.method.state_dict().values() if v.is_floating_point())


def test_weights_that_become_non_finite_are_never_checkpointed(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loss of step 6 is finite (computed before the update); the update then poisons a
    # BatchNorm statistic, which no later loss would notice. The checkpoint due at step 6 is
    # refused and the one of step 5 (the epoch boundary) stays.
    from zoo.training.methods.simclr import SimCLR

    original = SimCLR.after_optimizer_step
    calls = {"n": 0}

    def poisoning(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == 6:
            self.backbone.bn1.running_var.fill_(float("inf"))

    monkeypatch.setattr(SimCLR, "after_optimizer_step", poisoning)
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr"))
    with pytest.raises(TrainingDiverged, match=r"backbone.bn1.running_var became non-finite at step 6 "):
        Trainer(recipe).fit()
    data = torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)
    assert json.loads(data["state"])["progress"]["step"] == 5
    assert all(torch.isfinite(v).all() for v in data["model"].values() if v.is_floating_point())


def test_a_run_ends_with_an_exported_evaluated_zoo_folder(tmp_path: Path, cifar_root: Path, capsys) -> None:
    import zoo

    recipe = recipe_from_dict(
        tiny_recipe(tmp_path / "run", cifar_root, "byol", run__export=True, run__knn_every_epochs=1)
    )
    result = Trainer(recipe, command="zoo train tiny.yaml").fit()
    assert [r["epoch"] for r in read_csv(tmp_path / "run" / "knn.csv")] == ["1", "2"]
    folder = result.export_dir
    for name in ("config.json", "model.safetensors", "model.onnx", "README.md", "recipe.yaml", "metrics.csv"):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text()
    assert "## Training" in card and "zoo train tiny.yaml" in card and "weighted kNN, k=20" in card
    assert ("curves.png" in card) == (folder / "curves.png").is_file()
    encoder = zoo.load(folder)
    assert encoder.entry.name == "byol-r18q-cifar10" and encoder.entry.method == "byol"
    assert {m.protocol for m in encoder.entry.measured} >= {"knn"}
    # Each number's command gives it again from the folder, on the same 8 images per class
    # that the run trained and scored on (without the limit it would score the full splits).
    knn = next(m for m in encoder.entry.measured if m.protocol == "knn" and "k=20," in m.how)
    assert "--limit-per-class 8" in knn.source
    assert main([*shlex.split(knn.source)[1:], "--backend", "torch"]) == 0
    reproduced = json.loads(capsys.readouterr().out)
    assert (reproduced["train_images"], reproduced["test_images"]) == (80, 80)
    assert reproduced["top1"] == pytest.approx(knn.value, abs=1.5)  # one of 80 images may flip
    feats = encoder.embed(sorted((cifar_root / "test" / "cat").iterdir())[:2], backend="torch")
    assert feats.shape == (2, 128)
    # The exported weights are the trained backbone's, as in the final checkpoint.
    trained = torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)["model"][
        "backbone.conv1.weight"
    ]
    torch.testing.assert_close(encoder.backbone.state_dict()["conv1.weight"], trained)


def test_the_monitor_can_read_held_out_training_images_instead_of_the_test_split(
    tmp_path: Path, cifar_root: Path
) -> None:
    recipe = tiny_recipe(tmp_path / "run", cifar_root, train__max_steps=5, run__knn_every_epochs=1)
    recipe["run"].update(knn_split="holdout", knn_train_images=0)
    result = Trainer(recipe_from_dict(recipe)).fit()
    (row,) = read_csv(tmp_path / "run" / "knn.csv")
    # A tenth of each class's 8 images (one) is classified by the other 7: no test image is read.
    assert (row["split"], row["train_images"], row["test_images"]) == ("holdout", "70", "10")
    assert result.knn[0]["split"] == "holdout"
    with pytest.raises(RecipeError, match="knn_split must be one of test, holdout"):
        recipe_from_dict({**recipe, "run": {**recipe["run"], "knn_split": "val"}})
    # Unlike other run.* keys it may not change on resume: knn.csv would mix two splits.
    recipe["run"]["knn_split"] = "test"
    with pytest.raises(ZooError, match=r"differs from the checkpoint's in run\.knn_split"):
        Trainer(recipe_from_dict(recipe), resume=True).fit()


def test_the_momentum_encoder_is_exported_on_request_even_from_a_finished_run(
    tmp_path: Path, cifar_root: Path
) -> None:
    import zoo

    recipe = tiny_recipe(tmp_path / "run", cifar_root, "moco_v2", run__export=True, run__export_onnx=False)
    online = zoo.load(Trainer(recipe_from_dict(recipe)).fit().export_dir).backbone.state_dict()
    knn_before = read_csv(tmp_path / "run" / "knn.csv")
    # A finished run resumed with the key changed re-exports, now MoCo's key encoder.
    recipe["run"]["export_backbone"] = "momentum"
    result = Trainer(recipe_from_dict(recipe), resume=True).fit()
    # knn.csv keeps one row per step: the final step's measurement is replaced, not repeated.
    knn_after = read_csv(tmp_path / "run" / "knn.csv")
    assert [r["step"] for r in knn_after] == [r["step"] for r in knn_before]
    assert float(knn_after[-1]["top1"]) == pytest.approx(result.knn[-1]["top1"])
    exported = zoo.load(result.export_dir).backbone.state_dict()
    model = torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)["model"]
    floats = [k for k, v in exported.items() if v.is_floating_point()]
    assert "conv1.weight" in floats and any(k.endswith("running_var") for k in floats)
    for k in floats:
        torch.testing.assert_close(exported[k], model[f"key_backbone.{k}"].float())
    assert not torch.allclose(exported["conv1.weight"], online["conv1.weight"])
    torch.testing.assert_close(online["conv1.weight"], model["backbone.conv1.weight"].float())


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("simclr", "simclr keeps no momentum copy of its backbone in this configuration"),
        ("rotnet", "rotnet keeps no momentum copy of its backbone;"),
    ],
)
def test_a_momentum_export_without_a_momentum_encoder_is_refused_before_training(
    tmp_path: Path, cifar_root: Path, method: str, message: str
) -> None:
    recipe = recipe_from_dict(
        tiny_recipe(tmp_path / "run", cifar_root, method, run__export_backbone="momentum")
    )
    with pytest.raises(ZooError, match=message):
        Trainer(recipe).fit()
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()
    with pytest.raises(RecipeError, match="export_backbone must be one of online, momentum, got 'teacher'"):
        recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, method, run__export_backbone="teacher"))


def test_sync_batchnorm_with_shuffling_bn_is_refused_before_training(
    tmp_path: Path, cifar_root: Path
) -> None:
    # SyncBatchNorm would pool the key batch's statistics that MoCo's shuffle keeps apart.
    recipe = tiny_recipe(tmp_path / "run", cifar_root, "moco_v2", train__sync_batchnorm=True)
    recipe = recipe_from_dict(recipe)
    with pytest.raises(ZooError, match="would undo moco_v2's shuffling BN"):
        Trainer(recipe).fit()
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


def test_starting_over_an_existing_run_needs_resume(tmp_path: Path, cifar_root: Path) -> None:
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__max_steps=2))
    Trainer(recipe).fit()
    with pytest.raises(ZooError, match="--resume"):
        Trainer(recipe).fit()
    other = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__seed=9))
    with pytest.raises(ZooError, match=r"train\.seed"):
        Trainer(other, resume=True).fit()


def test_empty_datasets_are_clear_errors(tmp_path: Path, cifar_root: Path) -> None:
    (tmp_path / "empty" / "train").mkdir(parents=True)
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "r1", cifar_root, data__path=str(tmp_path / "empty")))
    with pytest.raises(ImageError, match="no class folders"):
        Trainer(recipe).fit()
    (tmp_path / "hollow" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "hollow" / "train" / "dog").mkdir(parents=True)
    (tmp_path / "hollow" / "train" / "dog" / "a.jpg").write_bytes(
        (sorted((cifar_root / "train" / "dog").iterdir())[0]).read_bytes()
    )
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "r2", cifar_root, data__path=str(tmp_path / "hollow")))
    with pytest.raises(ImageError, match=r"cat: class folder holds no images"):
        Trainer(recipe).fit()
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "r3", cifar_root, data__path=str(tmp_path / "nowhere")))
    with pytest.raises(ImageError, match="not found"):
        Trainer(recipe).fit()


@pytest.mark.slow
def test_torchrun_two_gloo_processes_train_and_export(tmp_path: Path, cifar_root: Path) -> None:
    recipe = tiny_recipe(tmp_path / "run", cifar_root, "byol", run__export=True, run__knn_every_epochs=1)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "-m",
            "zoo.training",
            str(tmp_path / "r.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    assert (tmp_path / "run" / "export" / "model.safetensors").is_file()
    # 80 images / (2 ranks x 8 per rank) = 5 steps per epoch, 2 epochs.
    assert [int(r["step"]) for r in read_csv(tmp_path / "run" / "metrics.csv")] == list(range(1, 11))


def test_checkpoints_from_older_code_resume_and_other_recipes_do_not(
    tmp_path: Path, cifar_root: Path
) -> None:
    from zoo.training.checkpoint import CheckpointError, Progress, save_checkpoint

    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root)).to_dict()
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    older = {**recipe, "data": {k: v for k, v in recipe["data"].items() if k != "in_memory"}}
    save_checkpoint(
        tmp_path / "c.pt", model=model, optimizer=opt, scaler=None, progress=Progress(step=7), recipe=older
    )
    # A key added to zoo since then takes its default: the same run.
    progress = load_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, scaler=None, recipe=recipe)
    assert progress.step == 7
    # Older checkpoints recorded no lengths: one stretch, the saved recipe's length.
    assert progress.lengths == [[0, recipe["train"]["epochs"]]]
    # Run settings and speed knobs may change; anything shaping the trajectory may not.
    faster = {
        **recipe,
        "train": {**recipe["train"], "compile": True, "threads": 2},
        "run": {**recipe["run"], "knn_k": 7},
    }
    load_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, scaler=None, recipe=faster)
    other = {**recipe, "optim": {**recipe["optim"], "lr": 0.5}}
    with pytest.raises(CheckpointError, match=r"optim\.lr"):
        load_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, scaler=None, recipe=other)


@pytest.mark.slow
def test_compiled_training_runs_and_exports(tmp_path: Path, cifar_root: Path) -> None:
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__compile=True))
    result = Trainer(recipe).fit()
    losses = [float(r["loss"]) for r in read_csv(tmp_path / "run" / "metrics.csv")]
    assert result.finished and len(losses) == 10 and all(map(torch.isfinite, torch.tensor(losses)))


def test_compile_auto_compiles_only_where_it_pays(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Measured: compiling pays on a CPU with AMX tiles (~1.4x) and not on one without (3-15% slower).
    for amx in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__compile="auto"))
        trainer = Trainer(recipe)
        trainer._setup()  # builds the model, as fit() and load_run() do, without training
        assert trainer.compiled is amx
        assert isinstance(trainer.model, torch._dynamo.eval_frame.OptimizedModule) is amx
    forced = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__compile=True))
    trainer = Trainer(forced)
    trainer._setup()
    assert trainer.compiled is True  # true and false still force it
    with pytest.raises(RecipeError, match=r"train\.compile: expected true or false or 'auto', got 'yes'"):
        recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__compile="yes"))


def test_precision_auto_trains_in_bf16_only_on_cpus_with_bf16_instructions(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Measured: without AVX-512 BF16 or AMX, oneDNN's bf16 converts around every kernel and an
    # Ice Lake Xeon trained 2.6x slower in bf16 than in fp32.
    for avx512_bf16, amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        auto = tiny_recipe(
            tmp_path / "run", cifar_root, "simclr", train__precision="auto", train__device="cpu"
        )
        trainer = Trainer(recipe_from_dict(auto))
        trainer._setup()
        assert trainer.precision == expected
        assert trainer.amp_dtype == (torch.bfloat16 if expected == "bf16" else None)
    forced = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__precision="bf16"))
    trainer = Trainer(forced)
    trainer._setup()
    assert trainer.precision == "bf16"  # an explicit choice still wins


def test_resume_with_no_checkpoint_says_so_and_starts(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__max_steps=1))
    Trainer(recipe, resume=True).fit()
    assert "--resume: no checkpoint at" in capsys.readouterr().err
    assert (tmp_path / "run" / CHECKPOINT_NAME).is_file()


def test_a_resume_with_another_length_says_the_schedules_jump(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Trainer(recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, train__max_steps=2))).fit()
    capsys.readouterr()
    longer = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, train__max_steps=3, train__epochs=4))
    Trainer(longer, resume=True).fit()
    err = capsys.readouterr().err
    assert "train.epochs changed from 2 to 4" in err and "from step 2" in err
    assert [int(r["step"]) for r in read_csv(tmp_path / "run" / "metrics.csv")] == [1, 2, 3]


def test_a_resume_that_would_end_a_lengthened_run_at_once_is_refused(
    tmp_path: Path, cifar_root: Path
) -> None:
    # A run lengthened to 4 epochs, stopped in its third, then resumed from a recipe that still says
    # 2 (the override forgotten): it would end at once and export, so it is refused, naming the
    # length to pass.
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(run, cifar_root, train__max_steps=12, train__epochs=4))).fit()
    refused = r"train.epochs=4 and has completed 2 epochs \(step 12\); .*Resume with train.epochs=4"
    for epochs in (1, 2):
        with pytest.raises(CheckpointError, match=refused):
            Trainer(recipe_from_dict(tiny_recipe(run, cifar_root, train__epochs=epochs)), resume=True).fit()

    def resume(epochs: int, **overrides: int):
        recipe = tiny_recipe(run, cifar_root, train__epochs=epochs, **overrides)
        return Trainer(recipe_from_dict(recipe), resume=True).fit()

    assert resume(4, train__max_steps=13).steps == 13  # the checkpoint's own length goes on
    # A shorter length still ahead of the run is a choice, not a slip: it ends there (15 steps).
    assert (resume(3).steps, resume(3).finished) == (15, True)  # and a finished run resumes again


def test_progress_records_each_length_from_the_step_it_took_over() -> None:
    from zoo.training.checkpoint import Progress

    progress = Progress()
    progress.set_length(2)
    assert progress.lengths == [[0, 2]]
    progress.step = 10
    progress.set_length(2)  # resumed with the same length: nothing to record
    assert progress.lengths == [[0, 2]]
    progress.set_length(3)
    assert progress.lengths == [[0, 2], [10, 3]]
    progress.set_length(4)  # changed again before any step: the later length is the one that ran
    assert progress.lengths == [[0, 2], [10, 4]]
    progress.set_length(2)  # and back
    assert progress.lengths == [[0, 2]]


def test_reproduce_commands_retrace_each_length() -> None:
    from zoo.training.publish import reproduce_commands

    command = "zoo train x.yaml train.epochs=4 'augment.size=24' train.max_steps=0"
    assert reproduce_commands(command, [[0, 4]], 5) == [command]
    assert reproduce_commands(command, [[0, 2], [10, 3], [12, 4]], 5) == [
        # Ran to its end (2 x 5 steps), under the command's own cap (a recipe's cap lifted).
        "zoo train x.yaml augment.size=24 train.max_steps=0 train.epochs=2",
        "zoo train x.yaml augment.size=24 train.epochs=3 train.max_steps=12 --resume",  # stopped early
        "zoo train x.yaml augment.size=24 train.max_steps=0 train.epochs=4 --resume",
    ]


def test_a_lengthened_run_exports_a_card_whose_commands_retrace_it(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoo.training.ship import reproduce_command

    recipe = tmp_path / "tiny.yaml"
    run, replay = tmp_path / "run", tmp_path / "replay"
    recipe.write_text(yaml.safe_dump(tiny_recipe(run, cifar_root, run__export_onnx=False)))
    assert main(["train", str(recipe)]) == 0  # 2 epochs of 5 steps
    assert main(["train", str(recipe), "train.epochs=3", "train.max_steps=12", "--resume"]) == 0
    assert main(["train", str(recipe), "train.epochs=4", "run.export=true", "--resume"]) == 0
    folder = run / "export"
    card = (folder / "README.md").read_text()
    assert "(20 steps," in card
    assert "followed a 2-epoch run, then a 3-epoch one from step 10, then a 4-epoch one from step 12" in card
    commands = reproduce_command(folder).split(" && ")
    assert [c.replace(str(recipe), "tiny.yaml") for c in commands] == [
        "zoo train tiny.yaml run.export=true train.epochs=2",
        "zoo train tiny.yaml run.export=true train.epochs=3 train.max_steps=12 --resume",
        "zoo train tiny.yaml run.export=true train.epochs=4 --resume",
    ]
    progress = json.loads(torch.load(run / CHECKPOINT_NAME, weights_only=True)["state"])["progress"]
    assert progress["lengths"] == [[0, 2], [10, 3], [12, 4]]
    # The commands, run one after the other into another folder, train the same weights.
    for command in commands:
        words = shlex.split(command)[1:]
        assert main([*words[:2], f"run.out_dir={replay}", *words[2:]]) == 0
    trained, retraced = (torch.load(d / CHECKPOINT_NAME, weights_only=True)["model"] for d in (run, replay))
    assert trained.keys() == retraced.keys()
    for key in trained:
        assert torch.equal(trained[key], retraced[key]), key
    # A finished run resumed to export again reads its last step again: one reading, not two,
    # and it is in the checkpoint (saved after the final reading; the first stretch's end read 10).
    assert main(["train", str(recipe), "train.epochs=4", "run.export=true", "--resume"]) == 0
    progress = json.loads(torch.load(run / CHECKPOINT_NAME, weights_only=True)["state"])["progress"]
    assert [k["step"] for k in progress["knn"]] == [10, 20]
    capsys.readouterr()


def test_an_export_replaces_a_folder_a_file_or_a_link_whole(tmp_path: Path) -> None:
    from zoo.training.publish import replace_folder

    def staged(text: str) -> Path:
        new = tmp_path / ".export.staging"
        new.mkdir()
        (new / "README.md").write_text(text)
        return new

    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("not ours")
    for old in ("folder", "file", "link", "dangling link"):
        export = tmp_path / "export"
        if old == "folder":
            export.mkdir()
            (export / "README.md").write_text("old")
        elif old == "file":
            export.write_text("old")
        else:
            export.symlink_to(target if old == "link" else tmp_path / "missing")
        replace_folder(staged(old), export)
        assert export.is_dir() and not export.is_symlink() and (export / "README.md").read_text() == old
        assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "export"], old
        assert (target / "keep.txt").read_text() == "not ours"  # a link is replaced, not followed
        replace_folder(staged("again"), export)
        assert (export / "README.md").read_text() == "again"
        shutil.rmtree(export)


def test_an_export_that_fails_keeps_the_previous_export_whole(
    tmp_path: Path, cifar_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    export_module = importlib.import_module("zoo.export")  # `zoo.export` is also the function
    recipe = tiny_recipe(tmp_path / "run", cifar_root, run__export=True, run__export_onnx=False)
    folder = Trainer(recipe_from_dict(recipe)).fit().export_dir
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_export = export_module.export

    def killed_midway(encoder, directory, **kwargs):
        real_export(encoder, directory, **kwargs)  # some files written, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "export", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        Trainer(recipe_from_dict(recipe), resume=True).fit()  # a finished run exports again
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.setattr(export_module, "export", real_export)
    assert Trainer(recipe_from_dict(recipe), resume=True).fit().export_dir == folder
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".export")]


@pytest.mark.skipif(not hasattr(signal, "SIGCONT"), reason="POSIX job control")
def test_a_stopped_and_continued_run_logs_it_and_keeps_training(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.training.methods.simclr import SimCLR

    original = SimCLR.training_step
    calls = {"n": 0}

    def continued_at_step_2(self, views):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGCONT)  # what the process receives after a Ctrl-Z / SIGSTOP
        return original(self, views)

    monkeypatch.setattr(SimCLR, "training_step", continued_at_step_2)
    before = signal.getsignal(signal.SIGCONT)
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__max_steps=4))
    Trainer(recipe, progress=False).fit()
    err = capsys.readouterr().err
    assert err.count("continued after a stop") == 1
    assert max(_logged_steps(tmp_path / "run")) == 4
    assert signal.getsignal(signal.SIGCONT) == before  # the handler is the trainer's only while it runs


def test_a_capped_run_prints_a_continue_command_that_goes_on(
    tmp_path: Path, cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "run", cifar_root, "simclr")))
    assert main(["train", str(recipe), "train.max_steps=2", "train.seed=4"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("stopped at step 2; continue with: zoo train")
    # The cap that stopped the run is dropped, the other overrides are kept.
    assert "max_steps" not in line and line.endswith("train.seed=4 --resume")
    command = line.split("continue with: zoo ", 1)[1].split()
    assert main(command) == 0  # resumed, to the end of the 2-epoch schedule (10 steps)
    assert "stopped" not in capsys.readouterr().out
    assert read_csv(tmp_path / "run" / "metrics.csv")[-1]["step"] == "10"
    # A cap written in the recipe file is lifted by the command instead.
    capped = tmp_path / "capped.yaml"
    tiny = tiny_recipe(tmp_path / "run2", cifar_root, "simclr", train__max_steps=2)
    capped.write_text(yaml.safe_dump(tiny))
    assert main(["train", str(capped)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith(f"continue with: zoo train {capped} train.max_steps=0 --resume")
