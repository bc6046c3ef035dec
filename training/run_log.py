"""What a run's log says about how it was trained: the minutes its final weights cost and the
machines that trained them, for the card :mod:`zoo.training.ship` writes.

A long run spans sessions, each a process started with ``--resume``; the log (``nohup zoo train
... > RUN.log``, or the ``train.log`` a run kept in its folder) holds each process's start line
(steps per epoch, precision, eager or compiled, threads and machine) and its step lines. A resume
from an earlier checkpoint redoes steps, and a fresh start in the same folder replaces the run:
both are read as such, so only the steps that made the final weights count.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["Stretch", "default_log", "run_minutes", "stretches", "trained_on"]


def run_minutes(log: Path) -> float:
    """Wall-clock minutes of the training steps that made the run's final weights, from its log.

    Each logged step is charged the time since the previous step line (or since its process
    started setting up, so decoding the data, start-up and the kNN monitor count); a resume
    charges nothing for the time the run was stopped, nor does a process stopped and continued
    (the trainer logs "continued after a stop"); steps redone after resuming from an earlier
    checkpoint replace the lost ones; a fresh start (a new run in the same folder) forgets what
    came before.
    """
    charged: dict[int, timedelta] = {}  # step -> the time of the attempt that counts
    since: datetime | None = None
    resumed = False
    setting_up = False  # between a process's "setting up" line and its first step
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"\[(\d\d:\d\d:\d\d)\]", line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%H:%M:%S")
        if re.match(r"\[[\d:]+\] setting up ", line):
            since, setting_up = t, True
            continue
        if "resumed from" in line:
            # Logs from before the "setting up" line start the clock here.
            since, resumed = since if setting_up else t, True
            continue
        if "continued after a stop" in line:
            since = t  # the steps of the window it stood still in are charged from here
            continue
        if "starting a new run" in line or ("process(es), batch" in line and not resumed):
            charged.clear()  # a fresh start: earlier attempts made none of these weights
            since = since if setting_up else t
        step = re.search(r" step (\d+)/", line)
        if step and since is not None:
            charged[int(step.group(1))] = (t - since) % timedelta(days=1)  # runs may cross midnight
            since, setting_up = t, False
        since = since or t
        resumed = False
    if not charged:
        raise ValueError(f"{log}: no timestamped training steps")
    return round(sum(charged.values(), timedelta()).total_seconds() / 60, 1)


#: The trainer's start line (:meth:`zoo.training.loop.Trainer.fit`): how and where a process trains.
_START_LINE = re.compile(
    r", (?P<steps_per_epoch>\d+) steps/epoch x \d+ epochs, (?P<precision>\w+), (?P<mode>eager|compiled),"
    r" (?P<threads>\d+) threads(?: on (?P<device>.+?))?; out: "
)


@dataclass(frozen=True)
class Stretch:
    """Steps ``first_step`` (exclusive) to ``last_step`` of a run, trained by one process."""

    device: str  # "AMD EPYC (family 25, model 17), 2 logical CPUs", a GPU's name, "" (not logged)
    precision: str
    mode: str  # eager | compiled
    threads: int
    steps_per_epoch: int
    first_step: int
    last_step: int


def stretches(log: Path) -> list[Stretch]:
    """The stretches of training that made the run's final weights, in order, from its log: one
    per process (a start line, after a "resumed from" line unless it started the run). Steps redone
    after resuming from an earlier checkpoint belong to the stretch that redid them; a fresh start
    in the same folder forgets what came before; a process that logged no step is left out."""
    done: list[Stretch] = []
    current: Stretch | None = None
    resumed_at: int | None = None

    def close() -> None:
        if current is not None and current.last_step > current.first_step:
            done.append(current)

    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if m := re.search(r"resumed from .+ at step (\d+) \(epoch \d+\)", line):
            resumed_at = int(m.group(1))
        elif m := _START_LINE.search(line):
            close()
            first = resumed_at or 0
            if resumed_at is None:
                done.clear()  # a fresh start: earlier attempts made none of these weights
            # The process that trained up to this checkpoint is the last one that started before
            # it: it ends there, whether it logged steps past it (trained again here) or stopped
            # between a logged step and its checkpoint; later ones redid only what this one redoes.
            done[:] = [s for s in done if s.first_step < first]
            if done:
                done[-1] = dataclasses.replace(done[-1], last_step=first)
            current = Stretch(
                device=m.group("device") or "",
                precision=m.group("precision"),
                mode=m.group("mode"),
                threads=int(m.group("threads")),
                steps_per_epoch=int(m.group("steps_per_epoch")),
                first_step=first,
                last_step=first,
            )
            resumed_at = None
        elif current is not None and (m := re.search(r" step (\d+)/", line)):
            current = dataclasses.replace(current, last_step=int(m.group(1)))
    close()
    return done


def _setup(s: Stretch) -> tuple[str, str, str, int]:
    return (s.device, s.precision, s.mode, s.threads)


def trained_on(log: Path) -> str:
    """What trained the run, for its card ("... in N minutes on <this>"): the machine, threads,
    precision and eager/compiled of each stretch of its log (:func:`stretches`), with the epochs
    each machine trained when the run moved between machines across sessions."""
    groups: list[list[Stretch]] = []  # consecutive stretches on the same machine, set up alike
    for s in stretches(log):
        if groups and _setup(groups[-1][-1]) == _setup(s):
            groups[-1].append(s)
        else:
            groups.append([s])
    if not groups:
        # Logs from before the trainer's start line named the device and the schedule.
        found = re.findall(r" threads on (.+?); out: ", log.read_text(encoding="utf-8", errors="replace"))
        return "; ".join(dict.fromkeys(found)) or "not recorded (a log from before zoo named the device)"

    def machine(s: Stretch) -> str:
        cpu = re.fullmatch(r"(.+), (\d+) logical CPUs", s.device)
        if cpu:
            where = f"{s.threads} threads of a {cpu.group(2)}-CPU {cpu.group(1)}"
        else:  # a GPU, or a log from before the start line named the machine
            where = s.device or f"{s.threads} threads of a machine the log does not name"
        return f"{where}, {s.precision}, {s.mode}"

    def epoch(step: int, steps_per_epoch: int) -> str:
        return f"{step / steps_per_epoch:.1f}".removesuffix(".0")

    sessions = sum(len(g) for g in groups)
    if len(groups) == 1:
        return machine(groups[0][0]) + (
            f" ({sessions} sessions resumed from checkpoints)" if sessions > 1 else ""
        )
    return "; then ".join(
        f"{machine(g[0])}: epochs {epoch(g[0].first_step, g[0].steps_per_epoch)}-"
        f"{epoch(g[-1].last_step, g[-1].steps_per_epoch)} ({len(g)} session{'s' * (len(g) > 1)})"
        for g in groups
    )


def default_log(run_dir: Path) -> Path:
    """The log beside the run (``nohup zoo train ... > RUN.log``), else the one kept in it (a run
    spanning sessions appends each session's log to ``train.log`` and commits it with its parts)."""
    beside = run_dir.with_suffix(".log")
    return beside if beside.is_file() or not (run_dir / "train.log").is_file() else run_dir / "train.log"
