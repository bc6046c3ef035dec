"""Where a long run stands: its online kNN against epochs and CPU-hours, next to a reference.

    python -m zoo.training.progress runs/flagship/moco_v2_r18q_cifar10 \
        [--reference moco-cifar10-demo] [--out curve.png] [--json progress.json]
    python -m zoo.training.progress --compare [LABEL=]A.knn.csv [LABEL=]B.knn.csv ... --out curves.png

A long CPU run (the flagship encoders) is judged by how its kNN curve compares with what the
published set-ups reach at the same epoch, and by what it costs: the CPU-hours are the sum of
the ``cpu_s`` column of ``metrics.csv`` (process CPU seconds between two logged rows, so time
spent waiting for a busy machine is not counted, and resumed runs add up). The figure has two
panels: kNN against epoch with the reference curve, and kNN against hours of compute: this run's
CPU-hours beside the reference's hours on its own device (a V100 for the MoCo demo) where known.
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
            (1, 31.98), (2, 33.52), (3, 34.71), (5, 37.95), (10, 48.03), (15, 54.84), (20, 61.38),
            (25, 65.55), (30, 67.05), (40, 71.32), (50, 73.30), (60, 75.00), (75, 75.93),
            (100, 78.06), (125, 79.92), (150, 81.18), (175, 82.42), (200, 82.58),
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
    cpu_hours: float
    #: The monitor's protocol at this point (``knn.csv``'s columns).
    k: int = 200
    temperature: float = 0.1
    train_images: int = 10_000


def read_progress(run: Path) -> list[Point]:
    """The run's kNN points, each with the CPU-hours spent up to its step."""
    knn_path, metrics_path = run / KNN_NAME, run / METRICS_NAME
    for path in (knn_path, metrics_path):
        if not path.is_file():
            raise ZooError(f"{path} does not exist: is {run} the out_dir of a zoo training run?")
    metrics = read_csv(metrics_path)
    if metrics and "cpu_s" not in metrics[0]:
        raise ZooError(f"{metrics_path} has no cpu_s column: the run predates CPU-time logging")
    steps = [(int(row["step"]), float(row["cpu_s"] or 0)) for row in metrics]
    points = []
    for row in read_csv(knn_path):
        step = int(row["step"])
        seconds = sum(cpu for s, cpu in steps if s <= step)
        k, temperature = int(row.get("k") or 200), float(row.get("temperature") or 0.1)
        images = int(row.get("train_images") or 0)
        points.append(Point(int(row["epoch"]), float(row["top1"]), seconds / 3600, k, temperature, images))
    return points


def reference_at(reference: Reference, epoch: int) -> float | None:
    """The reference's kNN at ``epoch`` (linear between its points), None outside them."""
    pts = reference.points
    if not pts[0][0] <= epoch <= pts[-1][0]:
        return None
    for (e0, v0), (e1, v1) in itertools.pairwise(pts):
        if e0 <= epoch <= e1:
            return v0 + (v1 - v0) * (epoch - e0) / max(1, e1 - e0)
    return pts[-1][1]


def plot(points: list[Point], reference: Reference | None, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_epoch, by_hours) = plt.subplots(1, 2, figsize=(11, 4.2))
    epochs = [p.epoch for p in points]
    top1 = [p.top1 for p in points]
    last = points[-1]
    by_epoch.plot(epochs, top1, "o-", label=f"this run (online kNN, {last.train_images:,} train images)")
    if reference is not None:
        by_epoch.plot(*zip(*reference.points, strict=True), "s--", alpha=0.7, label=reference.label)
    ylabel = f"kNN top-1 (%), k={last.k}, T={last.temperature:g}"
    by_epoch.set(xlabel="epoch", ylabel=ylabel, title="kNN against epochs")
    by_epoch.legend(fontsize=7)
    by_epoch.grid(alpha=0.3)
    by_hours.plot(
        [p.cpu_hours for p in points], top1, "o-", color="C2", label="this run, CPU-hours (1 thread)"
    )
    if reference is not None and reference.hours_per_epoch:
        hours = [epoch * reference.hours_per_epoch for epoch, _ in reference.points]
        by_hours.plot(
            hours,
            [v for _, v in reference.points],
            "s--",
            color="C1",
            alpha=0.7,
            label=f"{reference.label.split(' (')[0]}, {reference.device}-hours",
        )
        by_hours.legend(fontsize=7)
    by_hours.set(xlabel="hours of one device (process CPU time for this run)", title="kNN against compute")
    by_hours.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)


def plot_compare(curves: list[str], out: Path) -> None:
    """kNN against epoch of several runs (their ``knn.csv`` files), each ``LABEL=PATH`` or a
    path (labelled by its file name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for curve in curves:
        label, _, name = curve.rpartition("=")
        path = Path(name)
        if not path.is_file():
            raise ZooError(f"{path} does not exist")
        rows = read_csv(path)
        label = label or path.name.removesuffix(".csv").removesuffix(".knn")
        ax.plot([int(r["epoch"]) for r in rows], [float(r["top1"]) for r in rows], "o-", label=label)
    ax.set(xlabel="epoch", ylabel="online kNN top-1 (%), k=200, T=0.1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
    parser.add_argument("--compare", nargs="+", metavar="[LABEL=]KNN_CSV", help="plot these curves")
    parser.add_argument("--reference", choices=sorted(REFERENCES), default="moco-cifar10-demo")
    parser.add_argument("--out", type=Path, help="write the two-panel figure here (PNG)")
    parser.add_argument("--json", type=Path, help="write the points and the reference here")
    args = parser.parse_args(argv)
    if args.compare:
        if not args.out:
            parser.error("--compare needs --out")
        try:
            plot_compare(args.compare, args.out)
        except ZooError as e:
            parser.exit(2, f"zoo: error: {e}\n")
        print(f"wrote {args.out}")
        return 0
    if args.run is None:
        parser.error("give a run's out_dir, or --compare")
    try:
        points = read_progress(args.run)
    except ZooError as e:
        parser.exit(2, f"zoo: error: {e}\n")
    reference = REFERENCES[args.reference]
    print(f"{'epoch':>5} {'kNN':>6} {'CPU-h':>6} {'reference':>9}")
    for p in points:
        ref = reference_at(reference, p.epoch)
        print(f"{p.epoch:5d} {p.top1:6.2f} {p.cpu_hours:6.2f} {'' if ref is None else f'{ref:9.2f}'}")
    if args.out:
        plot(points, reference, args.out, args.run.name)
        print(f"wrote {args.out}")
    if args.json:
        data = {
            "run": str(args.run),
            "points": [p.__dict__ for p in points],
            "reference": {
                "label": reference.label,
                "source": reference.source,
                "points": reference.points,
                "hours_per_epoch": reference.hours_per_epoch,
                "device": reference.device,
            },
        }
        atomic_write_text(args.json, json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
