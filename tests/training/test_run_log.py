"""What a run's log says: the minutes its final weights cost, the machines that trained them."""

from __future__ import annotations

from pathlib import Path

from _train_recipes import tiny_recipe
from zoo.training.loop import Trainer
from zoo.training.recipe import recipe_from_dict
from zoo.training.run_log import default_log, run_minutes, stretches, trained_on

from zoo.machine import cpu_model


def test_run_minutes_spans_the_log_to_the_last_step_across_midnight(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[23:50:00] byol-r18q-cifar10: byol on resnet18_cifar_quarter, 1 process(es), batch 256\n"
        "a warning without a time\n"
        "[23:55:30] epoch 0 step 20/60 loss 4.1\n"
        "[00:10:00] epoch 1 step 40/60 loss 3.9\n"
        "[00:12:00] exported runs/x/export: knn 40.00\n"
    )
    assert run_minutes(log) == 20.0
    # Stopped after step 40 and resumed at 09:00: the night is not training time.
    with log.open("a") as f:
        f.write("[09:00:00] resumed from runs/x/checkpoint.pt at step 40 (epoch 2)\n")
        f.write("[09:00:10] byol-r18q-cifar10: byol on resnet18_cifar_quarter, 1 process(es), batch 256\n")
        f.write("[09:05:10] epoch 2 step 60/60 loss 3.8\n")
    assert run_minutes(log) == 25.2
    # Stopped (Ctrl-Z / SIGSTOP) during the next window and continued an hour later: the trainer
    # logs it, and only the minute after the continuation is charged for that window.
    with log.open("a") as f:
        f.write("[10:10:00] continued after a stop: the time stopped is not charged\n")
        f.write("[10:11:00] epoch 3 step 80/80 loss 3.7\n")
    assert run_minutes(log) == 26.2


def test_run_minutes_charges_redone_steps_once_and_forgets_a_fresh_start(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[10:00:00] --resume: no checkpoint at x (nothing to resume); starting a new run there\n"
        "[10:00:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 1 process(es), batch 256\n"
        "[10:30:00] epoch 0 step 20/40 loss 4.0\n"  # this attempt is thrown away below
        "[11:00:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 1 process(es), batch 256\n"
        "[11:02:00] epoch 0 step 20/40 loss 4.0\n"
        "[11:04:00] epoch 0 step 40/40 loss 3.0\n"  # killed before its checkpoint was written
        "[12:00:00] resumed from x/checkpoint.pt at step 20 (epoch 0)\n"
        "[12:00:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 1 process(es), batch 256\n"
        "[12:03:00] epoch 0 step 40/40 loss 3.0\n"
    )
    assert run_minutes(log) == 5.0  # 2 minutes to step 20, then the redone steps' 3 minutes


def test_run_minutes_charge_the_set_up_before_the_start_line(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[10:00:00] setting up simclr-r18q-cifar10\n"  # decoding the data: 3 minutes
        "[10:03:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 1 process(es), batch 256\n"
        "[10:05:00] epoch 0 step 20/40 loss 4.0\n"
        "[11:00:00] setting up simclr-r18q-cifar10\n"  # resumed after an hour stopped
        "[11:01:00] resumed from x/checkpoint.pt at step 20 (epoch 0)\n"
        "[11:01:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 1 process(es), batch 256\n"
        "[11:02:00] epoch 0 step 40/40 loss 3.0\n"
    )
    assert run_minutes(log) == 7.0  # 3 + 2, then 1 + 1
    # A fresh start in the same folder forgets the first attempt, set-up included.
    with log.open("a") as f:
        f.write("[12:00:00] setting up simclr-r18q-cifar10\n")
        f.write("[12:04:00] --resume: no checkpoint at x (nothing to resume); starting a new run there\n")
        f.write("[12:04:00] simclr-r18q-cifar10: simclr on resnet18_cifar_quarter, 1 process(es)\n")
        f.write("[12:05:00] epoch 0 step 20/40 loss 4.0\n")
    assert run_minutes(log) == 5.0


def test_a_run_logs_its_set_up_before_it_decodes_the_data(tmp_path: Path, cifar_root: Path) -> None:
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__max_steps=1))
    trainer = Trainer(recipe)
    said: list[str] = []
    trainer.log = said.append  # type: ignore[method-assign]
    setup = trainer._setup

    def watched_setup() -> None:
        said.append("(set-up ran)")
        setup()

    trainer._setup = watched_setup  # type: ignore[method-assign]
    trainer.fit()
    assert said[:2] == ["setting up simclr-r18q-cifar10", "(set-up ran)"], said[:3]


def _start(threads_on: str, processes: int = 1) -> str:
    return (
        f"x: simclr on a, 80 images, {processes} process(es), batch 16, 5 steps/epoch x 4 epochs, bf16,"
        f" {threads_on}; out: runs/x\n"
    )


EPYC = "eager, 2 threads on AMD EPYC (family 25, model 17), 2 logical CPUs"
XEON = "compiled, 1 threads on Intel Xeon (family 6, model 143), 2 logical CPUs"


def _spans(log: Path) -> list[tuple[str, int, int]]:
    return [(s.device.split(" (")[0], s.first_step, s.last_step) for s in stretches(log)]


def test_the_log_says_which_machine_trained_which_epochs(tmp_path: Path, cifar_root: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[09:00:00] "
        + _start(EPYC)  # an attempt that a fresh start forgets
        + "[09:01:00] epoch 0 step 4/20 loss 5.0\n"
        "[09:59:00] --resume: no checkpoint at x (nothing to resume); starting a new run there\n"
        "[10:00:00] "
        + _start("eager, 2 threads")  # logged before the trainer named the machine
        + "[10:01:00] epoch 0 step 4/20 loss 4.0\n"
        "[11:00:00] resumed from runs/x/checkpoint.pt at step 5 (epoch 1)\n"  # saved after its last log
        "[11:00:00] " + _start(EPYC) + "[11:01:00] epoch 1 step 8/20 loss 3.0\n"
        "[11:02:00] epoch 2 step 12/20 loss 3.0\n"
        "[12:00:00] resumed from 2 parts of runs/x/checkpoint.pt at step 10 (epoch 2)\n"  # redoes 10-12
        "[12:00:00] "
        + _start(EPYC)
        + "[13:00:00] resumed from runs/x/checkpoint.pt at step 10 (epoch 2)\n"  # stopped before a step
        "[13:00:00] " + _start(XEON) + "[13:01:00] epoch 3 step 16/20 loss 2.0\n"
        "[13:01:30] SIGTERM: stopping after step 18, saved to resume\n"
        "[14:00:00] resumed from runs/x/checkpoint.pt at step 18 (epoch 3)\n"
        "[14:00:00] " + _start(XEON) + "[14:00:30] epoch 3 step 20/20 loss 2.0\n"
    )
    assert _spans(log) == [("", 0, 5), ("AMD EPYC", 5, 10), ("Intel Xeon", 10, 18), ("Intel Xeon", 18, 20)]
    assert trained_on(log) == (
        "a machine the log does not name, 2 threads, bf16, eager: epochs 0-1 (1 session); then"
        " AMD EPYC (family 25, model 17) with 2 logical CPUs, 2 threads, bf16, eager: epochs 1-2"
        " (1 session); then Intel Xeon (family 6, model 143) with 2 logical CPUs, 1 thread, bf16,"
        " compiled: epochs 2-4 (2 sessions)"
    )


def test_a_process_that_logged_no_step_keeps_the_steps_it_saved(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[10:00:00] "
        + _start(XEON)  # trains to its checkpoint at step 5 without logging a step
        + "[11:00:00] resumed from runs/x/checkpoint.pt at step 5 (epoch 1)\n"
        "[11:00:00] " + _start(EPYC) + "[11:01:00] epoch 1 step 10/20 loss 3.0\n"
    )
    assert _spans(log) == [("Intel Xeon", 0, 5), ("AMD EPYC", 5, 10)]
    # A process that read its checkpoint and died before training: the fresh start after it is
    # no resume, and what came before is forgotten.
    with log.open("a") as f:
        f.write(
            "[12:00:00] setting up x\n[12:00:05] resumed from runs/x/checkpoint.pt at step 10 (epoch 2)\n"
        )
        f.write("[12:30:00] setting up x\n")
        f.write("[12:30:01] --resume: no checkpoint at x (nothing to resume); starting a new run there\n")
        f.write("[12:30:02] " + _start(XEON) + "[12:31:00] epoch 0 step 5/20 loss 5.0\n")
    assert _spans(log) == [("Intel Xeon", 0, 5)]


def test_the_description_of_one_machine_counts_its_sessions_and_processes(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(
        "[10:00:00] " + _start(EPYC) + "[10:01:00] epoch 0 step 5/20 loss 4.0\n"
        "[11:00:00] resumed from runs/x/checkpoint.pt at step 5 (epoch 1)\n"
        "[11:00:00] " + _start(EPYC) + "[11:01:00] epoch 1 step 10/20 loss 3.0\n"
    )
    assert trained_on(log) == (
        "AMD EPYC (family 25, model 17) with 2 logical CPUs, 2 threads, bf16, eager, across 2 sessions"
    )
    log.write_text(
        "[10:00:00] "
        + _start("compiled, 8 threads on NVIDIA H100 80GB HBM3", processes=4)
        + "[10:01:00] epoch 0 step 5/20 loss 4.0\n"
    )
    assert trained_on(log) == "4 x NVIDIA H100 80GB HBM3, bf16, compiled"
    log.write_text("[10:00:00] " + _start("eager, 1 threads on AMD EPYC, 2 logical CPUs", processes=2))
    log.write_text(log.read_text() + "[10:01:00] epoch 0 step 5/20 loss 4.0\n")
    assert trained_on(log) == "AMD EPYC with 2 logical CPUs, 2 processes x 1 thread, bf16, eager"
    # Logs from before the start line gave the schedule name the devices only, or nothing.
    log.write_text(
        "[10:00:00] x: simclr on a, 1 process(es), batch 16,"
        " 1 threads on Intel Xeon, 2 logical CPUs; out: runs/x\n"
    )
    assert trained_on(log) == "Intel Xeon, 2 logical CPUs"
    log.write_text("[10:00:00] " + _start("eager, 2 threads") + "[10:01:00] epoch 0 step 5/20 loss 4.0\n")
    assert trained_on(log).startswith("not recorded")


def test_the_trainer_writes_the_start_line_the_description_reads(tmp_path: Path, cifar_root: Path) -> None:
    log = tmp_path / "run.log"
    recipe = recipe_from_dict(tiny_recipe(tmp_path / "run", cifar_root, "simclr", train__max_steps=1))
    trainer = Trainer(recipe)
    said: list[str] = []
    trainer.log = lambda line: said.append(f"[10:00:00] {line}")  # type: ignore[method-assign]
    trainer.fit()
    assert any(f" threads on {cpu_model()}; out: " in line for line in said)  # this machine's CPU
    log.write_text("\n".join(said) + "\n[10:00:01] epoch 0 step 1/1 loss 4.0\n")
    [stretch] = stretches(log)
    assert (stretch.device, stretch.first_step, stretch.last_step) == (cpu_model(), 0, 1)


def test_ship_reads_the_log_beside_the_run_else_the_one_kept_in_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert default_log(run) == tmp_path / "run.log"  # neither: the error names the usual place
    (run / "train.log").write_text("")
    assert default_log(run) == run / "train.log"
    (tmp_path / "run.log").write_text("")
    assert default_log(run) == tmp_path / "run.log"
