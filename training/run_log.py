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


# Lines both readers look for: a process starting, and a logged step.
_SETTING_UP = re.compile(r"\[[\d:]+\] setting up ")
_STEP = re.compile(r" step (\d+)/")


def _lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8", errors="replace").splitlines()


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
    for line in _lines(log):
        m = re.match(r"\[(\d\d:\d\d:\d\d)\]", line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%H:%M:%S")
        if _SETTING_UP.match(line):
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
        step = _STEP.search(line)
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
    r" (?P<processes>\d+) process\(es\), batch \d+, (?P<steps_per_epoch>\d+) steps/epoch x \d+ epochs,"
    r" (?P<precision>\w+), (?P<mode>eager|compiled), (?P<threads>\d+) threads(?: on (?P<device>.+?))?; out: "
)


@dataclass(frozen=True)
class Stretch:
    """Steps ``first_step`` (exclusive) to ``last_step`` of a run, trained by one ``zoo train``
    (of ``processes`` ranks: torchrun)."""

    device: str  # "AMD EPYC (family 25, model 17), 2 logical CPUs", a GPU's name, "" (not logged)
    precision: str
    mode: str  # eager | compiled
    threads: int
    processes: int
    steps_per_epoch: int
    first_step: int
    last_step: int

    @property
    def setup(self) -> tuple[str, str, str, int, int]:
        return (self.device, self.precision, self.mode, self.threads, self.processes)


def stretches(log: Path) -> list[Stretch]:
    """The stretches of training that made the run's final weights, in order, from its log: one
    per process (a start line, after a "resumed from" line unless it started the run).

    A process ends where the next one resumes, whether it logged steps past that checkpoint
    (which the next one trained again) or saved it after its last logged step (every 20 steps
    are logged, checkpoints fall between); a fresh start in the same folder forgets what came
    before; a process that trained no step that counts is left out.
    """
    done: list[Stretch] = []
    resumed_at: int | None = None
    for line in _lines(log):
        if _SETTING_UP.match(line) or "starting a new run" in line:
            resumed_at = None  # a "resumed from" line of a process that died before training
        elif m := re.search(r"resumed from .+ at step (\d+) \(epoch \d+\)", line):
            resumed_at = int(m.group(1))
        elif m := _START_LINE.search(line):
            first = resumed_at or 0
            # The process that saved this checkpoint is the last one that started before it.
            done = [s for s in done if s.first_step < first] if resumed_at is not None else []
            if done:
                done[-1] = dataclasses.replace(done[-1], last_step=first)
            done.append(
                Stretch(
                    device=m.group("device") or "",
                    precision=m.group("precision"),
                    mode=m.group("mode"),
                    threads=int(m.group("threads")),
                    processes=int(m.group("processes")),
                    steps_per_epoch=int(m.group("steps_per_epoch")),
                    first_step=first,
                    last_step=first,
                )
            )
            resumed_at = None
        elif done and (m := _STEP.search(line) or re.search(r"stopping after step (\d+)", line)):
            done[-1] = dataclasses.replace(done[-1], last_step=int(m.group(1)))
    return [s for s in done if s.last_step > s.first_step]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _machine(s: Stretch) -> str:
    """ "AMD EPYC (family 25, model 17) with 2 logical CPUs, 2 threads, bf16, eager"."""
    cpu = re.fullmatch(r"(.+), (\d+) logical CPUs", s.device)
    threads = _count(s.threads, "thread")
    ranks = f"{s.processes} processes x {threads}" if s.processes > 1 else threads  # torchrun on CPUs
    if cpu:
        where = f"{cpu.group(1)} with {cpu.group(2)} logical CPUs, {ranks}"
    elif s.device:  # a GPU per process
        where = f"{s.processes} x {s.device}" if s.processes > 1 else s.device
    else:  # a log from before the start line named the machine
        where = f"a machine the log does not name, {ranks}"
    return f"{where}, {s.precision}, {s.mode}"


def trained_on(log: Path) -> str:
    """What trained the run, for its card ("... in N minutes on <this>"): the machine, threads,
    precision and eager/compiled of each stretch of its log (:func:`stretches`), with the epochs
    each machine trained when the run moved between machines across sessions."""
    groups: list[list[Stretch]] = []  # consecutive stretches on the same machine, set up alike
    for s in stretches(log):
        if groups and groups[-1][-1].setup == s.setup:
            groups[-1].append(s)
        else:
            groups.append([s])
    if not any(s.device for group in groups for s in group):
        # Logs from before the trainer's start line named the device (with the schedule or not).
        found = re.findall(r" threads on (.+?); out: ", log.read_text(encoding="utf-8", errors="replace"))
        return "; ".join(dict.fromkeys(found)) or "not recorded (a log from before zoo named the device)"

    def epoch(step: int, steps_per_epoch: int) -> str:
        return f"{step / steps_per_epoch:.1f}".removesuffix(".0")

    if len(groups) == 1:
        sessions = len(groups[0])
        return _machine(groups[0][0]) + (f", across {sessions} sessions" if sessions > 1 else "")
    return "; then ".join(
        f"{_machine(g[0])}: epochs {epoch(g[0].first_step, g[0].steps_per_epoch)}-"
        f"{epoch(g[-1].last_step, g[-1].steps_per_epoch)} ({_count(len(g), 'session')})"
        for g in groups
    )


def default_log(run_dir: Path) -> Path:
    """The log beside the run (``nohup zoo train ... > RUN.log``), else the one kept in it (a run
    spanning sessions appends each session's log to ``train.log`` and commits it with its parts)."""
    beside = run_dir.with_suffix(".log")
    return beside if beside.is_file() or not (run_dir / "train.log").is_file() else run_dir / "train.log"
