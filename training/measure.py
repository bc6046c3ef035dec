"""Measure what the measured table lacks for zoo's own encoders, one ``zoo eval --record`` at a time.

    python -m zoo.training.measure                      # every zoo-trained encoder
    python -m zoo.training.measure swav-r18q-cifar10 '*-imagenette' --protocols finetune --dry-run

For each encoder zoo trained (registry entries with ``training``) it plans

* ``finetune``: the semi-supervised protocol on the encoder's own dataset with 1% and 10% of
  the labels (``zoo eval NAME --protocol finetune --label-fraction F``), and once per
  architecture and dataset the same from random initialisation on the same labels
  (``--from-scratch``): the baseline the pretraining is compared with;
* ``transfer``: weighted kNN (k=20, T=0.07) and the linear probe on the *other* dataset (CIFAR-10
  encoders on Imagenette, Imagenette encoders on CIFAR-10), each image through the encoder's
  own preprocessing (resized to its input size).

A number is planned when its row is missing from the table, was measured on other weights
(the row's sha256 prefix is not the entry's: the encoder was retrained since) or by another
command (other settings). Fresh rows are skipped. Each planned command runs in this process
with ``--record``, so every number is written to the table as soon as it is measured: an
interruption loses at most the one running. ``--dry-run`` prints the plan and runs nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import zoo
from zoo import memory
from zoo.evaluate import FINETUNE_EPOCHS, shown_path
from zoo.registry import ModelEntry, is_registered, resolve_name
from zoo.results import RESULTS_ENV, Result, load, results_file

#: The datasets zoo trains on: the registry's ``dataset`` -> (folder under the data root, split scored).
DATASETS = {"cifar10": ("cifar10", "test"), "imagenette": ("imagenette", "val")}
#: Where each dataset's encoders are evaluated for transfer.
TRANSFER = {"cifar10": "imagenette", "imagenette": "cifar10"}
PROTOCOLS = ("finetune", "transfer")


@dataclass(frozen=True)
class Task:
    """One ``zoo eval`` run that records one number."""

    model: str
    dataset: str  # the table's evaluation set, e.g. imagenette-val
    protocol: str  # the table's protocol, e.g. finetune-1pct
    argv: tuple[str, ...]  # the zoo command's arguments, without --record
    reason: str  # why it runs: missing, or what made the row stale

    @property
    def command(self) -> str:
        """What the table's command column will say (what ``zoo eval`` records)."""
        return shlex.join(["zoo", *self.argv])


def default_data_root() -> Path:
    """``../shared/data`` beside the checkout (where the README's commands find the datasets)."""
    return Path(zoo.__file__).resolve().parent.parent.parent / "shared" / "data"


def trained_entries(patterns: Sequence[str] = ()) -> list[ModelEntry]:
    """The zoo-trained entries matching ``patterns`` (all of them when none); a pattern that
    matches no zoo-trained encoder is an error, not a silent no-op."""
    entries = [e for e in map(zoo.model_info, zoo.list_models()) if e.training is not None]
    if not patterns:
        return entries
    chosen: dict[str, ModelEntry] = {}
    for pattern in patterns:
        # A bare name stands for its default tag, as everywhere else (``moco-v2-r18q-cifar10``).
        name = resolve_name(pattern) if is_registered(pattern) else pattern
        found = [e for e in entries if fnmatch.fnmatchcase(e.name, name)]
        if not found:
            raise zoo.ZooError(
                f"{pattern!r} names no zoo-trained encoder; they are: {', '.join(e.name for e in entries)}"
            )
        chosen.update((e.name, e) for e in found)
    return sorted(chosen.values(), key=lambda e: e.name)


def _finetune_argv(name: str, data: str, fraction: float, *, scratch: bool) -> tuple[str, ...]:
    # The order ``zoo eval`` writes its command in, so that a planned command equals a recorded one.
    argv = ["eval", name, "--data", data, "--protocol", "finetune", "--label-fraction", f"{fraction:g}"]
    return (*argv, *(["--from-scratch"] if scratch else []), "--epochs", str(FINETUNE_EPOCHS[fraction]))


def _pct(fraction: float) -> str:
    return f"{100 * fraction:g}pct"


def _why(row: Result | None, entry: ModelEntry, command: str) -> str | None:
    """Why ``row`` must be measured again (None when it is fresh)."""
    if row is None:
        return "missing"
    if row.weights != entry.weights.sha256[:16]:
        return f"stale: measured on weights {row.weights}, the entry's are {entry.weights.sha256[:16]}"
    if row.command != command:
        return f"stale: measured by `{row.command}`"
    return None


def _baseline_key(entry: ModelEntry) -> tuple[str, int, str]:
    """What a from-scratch baseline depends on: architecture, input size and dataset."""
    return entry.arch, entry.preprocess.input_size, entry.dataset


def plan(
    entries: Iterable[ModelEntry],
    rows: Iterable[Result],
    *,
    data_root: str | os.PathLike,
    protocols: Sequence[str] = PROTOCOLS,
) -> list[Task]:
    """The runs that would make the table complete and fresh for ``entries``."""
    entries = list(entries)
    table = {r.key: r for r in rows}
    every = {e.name: e for e in map(zoo.model_info, zoo.list_models()) if e.training is not None}
    every.update((e.name, e) for e in entries)
    tasks: list[Task] = []
    baselines: set[tuple[tuple[str, int, str], float]] = set()

    def need(entry: ModelEntry, dataset: str, protocol: str, argv: tuple[str, ...]) -> None:
        task = Task(entry.name, dataset, protocol, argv, "")
        reason = _why(table.get((entry.name, dataset, protocol)), entry, task.command)
        if reason:
            tasks.append(Task(entry.name, dataset, protocol, argv, reason))

    for entry in entries:
        if entry.dataset not in DATASETS:
            continue  # trained on a dataset this command does not know how to evaluate on
        folder, split = DATASETS[entry.dataset]
        home = f"{folder}-{split}"
        data = shown_path(Path(data_root) / folder)
        if "finetune" in protocols:
            for fraction in FINETUNE_EPOCHS:
                need(
                    entry,
                    home,
                    f"finetune-{_pct(fraction)}",
                    _finetune_argv(entry.name, data, fraction, scratch=False),
                )
                baselines.add((_baseline_key(entry), fraction))
        if "transfer" in protocols:
            other, other_split = DATASETS[TRANSFER[entry.dataset]]
            where = shown_path(Path(data_root) / other)
            target = f"{other}-{other_split}"
            need(
                entry,
                target,
                "knn-k20",
                ("eval", entry.name, "--data", where, "-k", "20", "--temperature", "0.07"),
            )
            need(entry, target, "linear", ("eval", entry.name, "--data", where, "--protocol", "linear"))
    # The from-scratch baseline depends on the architecture, its input size and the labels, not on
    # any weights: one fresh row from any zoo-trained entry of that architecture and size serves
    # all of them (the cards compare a fine-tune only with a baseline at its own size).
    for key, fraction in sorted(baselines):
        folder, split = DATASETS[key[-1]]  # (arch, input size, dataset)
        home, data = f"{folder}-{split}", shown_path(Path(data_root) / folder)
        protocol = f"scratch-finetune-{_pct(fraction)}"
        peers = sorted(n for n, e in every.items() if _baseline_key(e) == key)
        reasons = []
        for name in peers:
            argv = _finetune_argv(name, data, fraction, scratch=True)
            reason = _why(table.get((name, home, protocol)), every[name], shlex.join(["zoo", *argv]))
            if reason is None:
                break
            if reason != "missing":
                reasons.append(f"{name}: {reason}")
        else:
            runner = next(e for e in entries if _baseline_key(e) == key)
            argv = _finetune_argv(runner.name, data, fraction, scratch=True)
            tasks.append(Task(runner.name, home, protocol, argv, "; ".join(reasons) or "missing"))
    return tasks


def run(tasks: Sequence[Task], *, out: TextIO | None = None) -> None:
    """Run and record ``tasks`` in order; the first failure stops the sweep (exit code 2)."""
    from zoo.cli import main

    out = out or sys.stdout
    # The tasks' data paths are the table's, relative to the checkout (shown_path): run them there,
    # wherever the sweep was started from.
    checkout = Path(zoo.__file__).resolve().parent.parent
    for i, task in enumerate(tasks, 1):
        print(f"[{i}/{len(tasks)}] {task.command}", file=out, flush=True)
        start = time.perf_counter()
        with contextlib.chdir(checkout):
            code = main([*task.argv, "--record"])
        minutes = (time.perf_counter() - start) / 60
        if code:
            raise SystemExit(
                f"zoo: error: `{task.command}` failed (exit {code}); {i - 1} of {len(tasks)} recorded"
            )
        print(
            f"[{i}/{len(tasks)}] recorded {task.model} {task.dataset} {task.protocol} in {minutes:.1f} min",
            file=out,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.measure",
        description="Measure the fine-tuning (1%%/10%% labels, and from scratch) and transfer numbers that"
        " the measured table lacks, or holds for older weights, for zoo's own encoders; each is recorded as"
        " soon as it is measured.",
    )
    parser.add_argument("names", nargs="*", help="zoo-trained encoders or patterns (default: all of them)")
    parser.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help=f"comma-separated, of {', '.join(PROTOCOLS)} (default: both)",
    )
    parser.add_argument(
        "--data-root", default=None, help="folder holding cifar10/ and imagenette/ (../shared/data)"
    )
    parser.add_argument(
        "--results", default=None, help=f"the table to complete (default: ${RESULTS_ENV} or the shipped one)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    args = parser.parse_args(argv)
    memory.keep_freed_memory()  # batch after batch of features
    try:
        protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
        unknown = sorted(set(protocols) - set(PROTOCOLS))
        if unknown or not protocols:
            raise zoo.ZooError(f"--protocols takes {', '.join(PROTOCOLS)}; got {args.protocols!r}")
        if args.results:
            os.environ[RESULTS_ENV] = args.results  # zoo eval --record, run in-process, writes there too
        root = Path(args.data_root) if args.data_root else default_data_root()
        for folder, _ in DATASETS.values():
            if not (root / folder).is_dir():
                raise zoo.ZooError(f"{root / folder}: dataset not found (give --data-root)")
        path = results_file()
        tasks = plan(trained_entries(args.names), load(path), data_root=root, protocols=protocols)
    except zoo.ZooError as e:
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(tasks)} to measure into {path}" + (" (dry run: nothing runs)" if args.dry_run else ""))
    for task in tasks:
        print(f"  {task.command}   # {task.dataset} {task.protocol}: {task.reason}")
    if not args.dry_run:
        run(tasks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
