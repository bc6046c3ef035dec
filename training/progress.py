"""Where a long run stands: its online kNN against epochs and CPU-hours, next to a reference.

    python -m zoo.training.progress runs/flagship/moco_v2_r18q_cifar10 \
        [--reference moco-cifar10-demo] [--out curve.png] [--json progress.json]
    python -m zoo.training.progress --compare [LABEL=]RUN_DIR [LABEL=]B.knn.csv ... --out curves.png \
        [--reference moco-cifar10-demo|none] [--title ...]

A long CPU run (the flagship encoders) is judged by how its kNN curve compares with what the
published set-ups reach at the same epoch, and by what it costs: the CPU-hours are the sum of
the ``cpu_s`` column of ``metrics.csv`` (process CPU seconds between two logged rows, so time
spent waiting for a busy machine is not counted, and resumed runs add up). The figure has two
panels: kNN against epoch with the reference curve, and kNN against hours of compute: this run's
CPU-hours beside the reference's hours on its own device (a V100 for the MoCo demo) where known.
``--compare`` draws several runs on the same two panels (a bare ``knn.csv`` without its run's
``metrics.csv`` only against epochs), e.g. a flagship beside the attempts that led to it; with
``RUN --json F.json`` it also writes that run's points, which the card's Compute section reads.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from zoo.training.loop import KNN_NAME, METRICS_NAME, read_csv

from zoo.errors import ZooError
from zoo.folder import atomic_write_text


@dataclass(frozen=True)
class Reference:
    """A published kNN curve: (epoch, top-1 %) points, and what produced them."""

    label: str
    points: tuple[tuple[int, float], ...]
    source: str
    #: Hours per epoch on the reference's own device, and that device ("1 V100"), where published:
    #: the compute panel draws the reference against those device-hours beside our CPU-hours.
    hours_per_epoch: float | None = None
    device: str = ""


#: Published curves to compare against: kNN top-1 % against epochs.
REFERENCES = {
    "moco-cifar10-demo": Reference(
        label="MoCo CIFAR-10 demo (ResNet-18, batch 512, 200-epoch cosine, 1 V100)",
        points=(
            (1, 31.98),
            (2, 33.52),
            (3, 34.71),
            (5, 37.95),
            (10, 48.03),
            (15, 54.84),
            (20, 61.38),
            (25, 65.55),
            (30, 67.05),
            (40, 71.32),
            (50, 73.30),
            (60, 75.00),
            (75, 75.93),
            (100, 78.06),
            (125, 79.92),
            (150, 81.18),
            (175, 82.42),
            (200, 82.58),
        ),
        source="facebookresearch/moco, branch colab-notebook, colab/moco_cifar10_demo.ipynb (log output)",
        # About 20 s per epoch on one V100, 67 minutes for 200 (../shared/reference/small-budget-ssl.md).
        hours_per_epoch=20 / 3600,
        device="1 V100",
    ),
    # Only the final number is published (the max over epochs); the docs say k=20, the script
    # sets k=200, so the protocol is uncertain (../shared/reference/small-budget-ssl.md, sec. 2).
    "lightly-imagenette-simclr": Reference(
        label="lightly Imagenette benchmark, SimCLR (ResNet-18, 128 px, batch 256, 200 epochs, 1 A6000)",
        points=((200, 83.5),),
        source="lightly-ai/lightly, docs/source/getting_started/benchmarks.rst (imagenette_benchmark.py)",
    ),
}


@dataclass(frozen=True)
class Point:
    epoch: int
    top1: float
    #: Process CPU time (all threads) up to this point; None where the run logged none.
    cpu_hours: float | None
    #: The monitor's protocol at this point (``knn.csv``'s columns).
    k: int = 200
    temperature: float = 0.1
    train_images: int = 10_000


@dataclass(frozen=True)
class Curve:
    """One run's points and its label on a figure."""

    label: str
    points: list[Point]


def _points(knn_path: Path, steps: list[tuple[int, float]] | None) -> list[Point]:
    points = []
    for row in read_csv(knn_path):
        step = int(row["step"])
        hours = None if steps is None else sum(cpu for s, cpu in steps if s <= step) / 3600
        k, temperature = int(row.get("k") or 200), float(row.get("temperature") or 0.1)
        images = int(row.get("train_images") or 0)
        points.append(Point(int(row["epoch"]), float(row["top1"]), hours, k, temperature, images))
    return points


def _cpu_steps(metrics_path: Path) -> list[tuple[int, float]]:
    metrics = read_csv(metrics_path)
    if metrics and "cpu_s" not in metrics[0]:
        raise ZooError(f"{metrics_path} has no cpu_s column: the run predates CPU-time logging")
    return [(int(row["step"]), float(row["cpu_s"] or 0)) for row in metrics]


def read_progress(run: Path) -> list[Point]:
    """The run's kNN points, each with the CPU-hours spent up to its step."""
    knn_path, metrics_path = run / KNN_NAME, run / METRICS_NAME
    for path in (knn_path, metrics_path):
        if not path.is_file():
            raise ZooError(f"{path} does not exist: is {run} the out_dir of a zoo training run?")
    return _points(knn_path, _cpu_steps(metrics_path))


def read_curve(spec: str) -> Curve:
    """``[LABEL=]PATH``: a run's out_dir, or a kNN CSV file; CPU-hours come from the
    ``metrics.csv`` beside a run's ``knn.csv`` where there is one with CPU time in it."""
    label, _, name = spec.rpartition("=")
    path = Path(name)
    knn_path = path / KNN_NAME if path.is_dir() else path
    if not knn_path.is_file():
        raise ZooError(f"{knn_path} does not exist")
    metrics_path = knn_path.parent / METRICS_NAME
    steps = None
    if knn_path.name == KNN_NAME and metrics_path.is_file():
        try:
            steps = _cpu_steps(metrics_path)
        except ZooError:
            steps = None  # an older run: drawn against epochs only
    label = label or (path.name if path.is_dir() else path.name.removesuffix(".csv").removesuffix(".knn"))
    return Curve(label, _points(knn_path, steps))


def reference_at(reference: Reference, epoch: int) -> float | None:
    """The reference's kNN at ``epoch`` (linear between its points), None outside them."""
    pts = reference.points
    if not pts[0][0] <= epoch <= pts[-1][0]:
        return None
    for (e0, v0), (e1, v1) in itertools.pairwise(pts):
        if e0 <= epoch <= e1:
            return v0 + (v1 - v0) * (epoch - e0) / max(1, e1 - e0)
    return pts[-1][1]


def plot(curves: list[Curve], reference: Reference | None, out: Path, title: str) -> None:
    """kNN against epochs, and, where the runs logged CPU time, against hours of compute:
    each run's process CPU-hours beside the reference's hours on its own device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [c for c in curves if c.points and all(p.cpu_hours is not None for p in c.points)]
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11, 4.2) if timed else (6.5, 4.2), squeeze=False)
    by_epoch = axes[0][0]
    for i, curve in enumerate(curves):
        by_epoch.plot(
            [p.epoch for p in curve.points],
            [p.top1 for p in curve.points],
            "o-",
            color=f"C{i}",
            label=curve.label,
        )
    if reference is not None:
        by_epoch.plot(
            *zip(*reference.points, strict=True), "s--", color="0.45", alpha=0.8, label=reference.label
        )
    last = curves[-1].points[-1]
    by_epoch.set(
        xlabel="epoch",
        ylabel=f"kNN top-1 (%), k={last.k}, T={last.temperature:g}",
        title="kNN against epochs",
    )
    by_epoch.legend(fontsize=7)
    by_epoch.grid(alpha=0.3)
    if timed:
        by_hours = axes[0][1]
        for i, curve in enumerate(curves):
            if curve in timed:
                by_hours.plot(
                    [p.cpu_hours for p in curve.points],
                    [p.top1 for p in curve.points],
                    "o-",
                    color=f"C{i}",
                    label=f"{curve.label}, CPU-hours",
                )
        if reference is not None and reference.hours_per_epoch:
            by_hours.plot(
                [epoch * reference.hours_per_epoch for epoch, _ in reference.points],
                [v for _, v in reference.points],
                "s--",
                color="0.45",
                alpha=0.8,
                label=f"{reference.label.split(' (')[0]}, {reference.device}-hours",
            )
        by_hours.legend(fontsize=7)
        by_hours.set(
            xlabel="hours: process CPU time of all threads (zoo), device time (reference)",
            title="kNN against compute",
        )
        by_hours.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.progress", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run", type=Path, nargs="?", help="a run's out_dir (with knn.csv and metrics.csv)")
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="[LABEL=]RUN_DIR|KNN_CSV",
        help="plot these runs together (against CPU-hours too where they logged CPU time)",
    )
    parser.add_argument("--reference", choices=[*sorted(REFERENCES), "none"], default="moco-cifar10-demo")
    parser.add_argument("--title", default="", help="the figure's title (default: the run's folder name)")
    parser.add_argument("--out", type=Path, help="write the figure here (PNG)")
    parser.add_argument("--json", type=Path, help="write the points and the reference here")
    args = parser.parse_args(argv)
    reference = None if args.reference == "none" else REFERENCES[args.reference]
    if args.compare:
        if not args.out:
            parser.error("--compare needs --out")
        if args.json and args.run is None:
            # The card's Compute section reads one run's points from it.
            parser.error(
                "--json writes one run's points: name the run too (progress RUN --compare ... --json F)"
            )
        try:
            curves = [read_curve(spec) for spec in args.compare]
            points = read_progress(args.run) if args.json else []
        except ZooError as e:
            parser.exit(2, f"zoo: error: {e}\n")
        plot(curves, reference, args.out, args.title)
        print(f"wrote {args.out}")
        if args.json:
            _write_json(args.json, args.run, points, reference)
        return 0
    if args.run is None:
        parser.error("give a run's out_dir, or --compare")
    try:
        points = read_progress(args.run)
    except ZooError as e:
        parser.exit(2, f"zoo: error: {e}\n")
    print(f"{'epoch':>5} {'kNN':>6} {'CPU-h':>6} {'reference':>9}")
    for p in points:
        ref = None if reference is None else reference_at(reference, p.epoch)
        print(f"{p.epoch:5d} {p.top1:6.2f} {p.cpu_hours:6.2f} {'' if ref is None else f'{ref:9.2f}'}")
    if args.out:
        label = f"this run (online kNN, {points[-1].train_images:,} train images)"
        plot([Curve(label, points)], reference, args.out, args.title or args.run.name)
        print(f"wrote {args.out}")
    if args.json:
        _write_json(args.json, args.run, points, reference)
    return 0


def _write_json(path: Path, run: Path, points: list[Point], reference: Reference | None) -> None:
    """The run's points and the reference, as the card's Compute section reads them."""
    data = {
        "run": str(run),
        "points": [p.__dict__ for p in points],
        "reference": None
        if reference is None
        else {
            "label": reference.label,
            "source": reference.source,
            "points": reference.points,
            "hours_per_epoch": reference.hours_per_epoch,
            "device": reference.device,
        },
    }
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
