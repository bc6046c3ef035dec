"""The leaderboard: every encoder with measured numbers, in one table rendered from the registry.

One row per encoder and evaluation set (an encoder measured on two sets has two rows), with the
frozen-feature evaluations (weighted kNN k=20 and k=200, linear probe, k-means NMI), the
semi-supervised fine-tuning ones (1% and 10% of the labels) and the throughput in img/s where
they were measured, and the training budget of the encoders zoo trained. Numbers come from each
entry's ``measured`` metrics only (those quoted from papers are in the cards): each one says how
it was measured and gives the command that reproduces it, in the card and in ``--format json``.

The random-initialisation baselines (:data:`BASELINES`) are measured the same way, with the same
command plus ``--random-init``: the floor that training must beat. Their fine-tuning columns are
the same architecture fine-tuned from scratch on the same labels (``zoo eval NAME --protocol
finetune --from-scratch --record`` keeps them in the measured table as ``scratch-finetune-*``
rows of whichever zoo-trained entry of that architecture ran them: the result depends on the
architecture and the labels only).

Rows of a zoo-trained encoder on another dataset than its own (CIFAR-10 encoders on Imagenette,
and the reverse) are its *transfer* rows: shown after the native rows of that set, marked
"(transfer)".

``zoo leaderboard`` prints it as Markdown, CSV or JSON; ``zoo leaderboard --update README.md``
rewrites the block between :data:`START` and :data:`END` in place, and a test keeps README.md
equal to the registry.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.registry import SUPERVISED_METHODS, Metric, ModelEntry, iter_models, model_info

__all__ = [
    "BASELINES",
    "COLUMNS",
    "END",
    "START",
    "Baseline",
    "Row",
    "data_label",
    "is_transfer",
    "method_label",
    "render",
    "rows",
    "scratch_metrics",
    "update_file",
]

START = "<!-- leaderboard: start (generated from the registry by `zoo leaderboard --update README.md`) -->"
END = "<!-- leaderboard: end -->"


@dataclass(frozen=True)
class Column:
    """A metric column: its key (CSV/JSON), its header (Markdown) and how values are printed."""

    key: str
    header: str
    digits: int = 2


#: Metric columns, in order. Which protocol fills which column: :func:`column_of`.
COLUMNS = (
    Column("knn_k20", "kNN k=20"),
    Column("knn_k200", "kNN k=200"),
    Column("linear", "linear"),
    Column("nmi", "NMI"),
    Column("finetune_1pct", "fine-tune 1%"),
    Column("finetune_10pct", "fine-tune 10%"),
    Column("img_per_s", "img/s", digits=1),
)
_FIXED = {"knn-k20": "knn_k20", "knn-k200": "knn_k200", "linear": "linear", "nmi": "nmi"}
_THROUGHPUT = {"img/s", "img-per-s", "images-per-second", "throughput"}
_FINETUNE = re.compile(r"^fine-?tune[-_ ]?(?:@)?(\d+(?:\.\d+)?)\s*(%|pct|percent)?$")

DATA_NAMES = {
    "cifar10-test": "CIFAR-10 test",
    "imagenette-val": "Imagenette val",
    "imagenet-1k": "ImageNet-1k val",
}
# Evaluation sets in the order the table shows them; others follow, sorted.
_DATA_ORDER = ("cifar10-test", "imagenette-val")


def column_of(protocol: str) -> str | None:
    """The column key of a metric protocol, or None for protocols the leaderboard does not show.

    Fine-tuning is recognised however its fraction is written (``finetune-1pct``, ``finetune-1%``,
    ``finetune-0.01``); throughput as ``img/s`` or ``throughput``.
    """
    p = protocol.strip().lower()
    if p in _FIXED:
        return _FIXED[p]
    if p in _THROUGHPUT:
        return "img_per_s"
    match = _FINETUNE.match(p)
    if match is not None:
        value = float(match.group(1))
        percent = value if match.group(2) or value > 1 else value * 100
        return {1.0: "finetune_1pct", 10.0: "finetune_10pct"}.get(round(percent, 6))
    return None


@dataclass(frozen=True)
class Baseline:
    """An architecture with seeded random weights, evaluated like the encoder ``like``.

    ``scores`` maps protocols to values measured by the ``like`` entry's own commands with
    ``--random-init`` added (the architecture built after ``torch.manual_seed(0)``).
    """

    like: str
    label: str
    scores: dict[str, float]

    def metrics(self) -> tuple[Metric, ...]:
        entry = model_info(self.like)
        out = []
        for m in entry.measured:
            # Only the set the entry was trained for: its transfer rows have no random-init twin.
            if m.protocol in self.scores and not is_transfer(entry, m.dataset):
                out.append(
                    Metric(
                        dataset=m.dataset,
                        protocol=m.protocol,
                        value=self.scores[m.protocol],
                        how=f"{m.how}; the architecture with random weights (torch.manual_seed(0)) instead",
                        source=m.source.replace(
                            f"zoo eval {self.like} ", f"zoo eval {self.like} --random-init ", 1
                        ),
                    )
                )
        return tuple(out)


#: Random-initialisation baselines, one per (architecture, evaluation set) of zoo's trained encoders.
BASELINES = (
    Baseline(
        like="simclr-r18q-cifar10",
        label="random init, `resnet18_cifar_quarter`",
        scores={"knn-k20": 33.37, "knn-k200": 32.36, "linear": 36.27, "nmi": 5.34},
    ),
    Baseline(
        like="moco-v2-r18q-cifar10.ep200",  # the flagship reads CIFAR-10 at 48 px
        label="random init, `resnet18_cifar_quarter` at 48 px",
        scores={"knn-k20": 35.75, "knn-k200": 33.68, "linear": 39.03, "nmi": 5.11},
    ),
    Baseline(
        like="moco-v2-r18h-cifar10.ep200",  # the half-width flagship: 48 px, mirror-averaged
        label="random init, `resnet18_cifar_half` at 48 px, mirror-averaged",
        scores={"knn-k20": 40.98, "knn-k200": 38.04, "linear": 46.22, "nmi": 8.52},
    ),
    Baseline(
        like="cpc-v2-r18q-cifar10.grid7x8",
        label="random init, `resnet18_cifar_quarter_grid7x8`",
        scores={"knn-k20": 34.39, "knn-k200": 33.87, "linear": 39.60, "nmi": 7.78},
    ),
    Baseline(
        like="crd-r10q-cifar10",
        label="random init, `resnet10_cifar_quarter`",
        scores={"knn-k20": 34.02, "knn-k200": 32.82, "linear": 36.23, "nmi": 7.99},
    ),
    Baseline(
        like="cmc-r18q-cifar10",
        label="random init, `cmc_resnet18_cifar_quarter`",
        scores={"knn-k20": 32.39, "knn-k200": 32.09, "linear": 42.10, "nmi": 3.67},
    ),
    Baseline(
        like="dcgan-disc-cifar10",
        label="random init, `dcgan_discriminator`",
        scores={"knn-k20": 48.99, "knn-k200": 42.44, "linear": 53.50, "nmi": 8.86},
    ),
    Baseline(
        like="mae-vitt4-cifar10",
        label="random init, `vit_tiny_patch4_32`",
        scores={"knn-k20": 31.41, "knn-k200": 30.94, "linear": 41.58, "nmi": 7.68},
    ),
    Baseline(
        like="simclr-r18-imagenette",
        label="random init, `resnet18` at 64 px",
        scores={"knn-k20": 34.90, "knn-k200": 31.64, "linear": 38.52, "nmi": 6.50},
    ),
    Baseline(
        like="jigsaw-r18-imagenette",
        label="random init, `resnet18` at 96 px",
        scores={"knn-k20": 34.88, "knn-k200": 32.15, "linear": 41.32, "nmi": 6.76},
    ),
    Baseline(
        like="simclr-r18h-imagenette",
        label="random init, `resnet18_half` at 128 px",
        scores={"knn-k20": 36.92, "knn-k200": 35.26, "linear": 41.22, "nmi": 8.81},
    ),
)


@dataclass(frozen=True)
class Row:
    """One line of the leaderboard."""

    name: str  # the registry name, or the baseline's label
    method: str
    arch: str
    dataset: str  # the evaluation set, e.g. cifar10-test
    metrics: dict[str, Metric] = field(default_factory=dict)  # column key -> Metric
    epochs: int | None = None
    minutes: float | None = None
    baseline: bool = False
    transfer: bool = False  # a zoo-trained encoder evaluated on another dataset than its own
    size: int | None = None  # the input size the encoder reads: one architecture, several baselines

    def value(self, key: str) -> float | None:
        m = self.metrics.get(key)
        return None if m is None else m.value


def is_transfer(entry: ModelEntry, dataset: str) -> bool:
    """Whether ``dataset`` (an evaluation set, ``imagenette-val``) is another dataset than the one
    zoo trained ``entry`` on (``cifar10``); upstream encoders have no such notion here."""
    return entry.training is not None and dataset.split("-")[0] != entry.dataset


def _entry_rows(entry: ModelEntry) -> list[Row]:
    by_data: dict[str, dict[str, Metric]] = {}
    for m in entry.measured:
        key = column_of(m.protocol)
        if key is not None:
            by_data.setdefault(m.dataset, {})[key] = m
    t = entry.training
    return [
        Row(
            entry.name,
            entry.method,
            entry.arch,
            data,
            metrics,
            epochs=t.epochs if t else None,
            minutes=t.minutes if t else None,
            transfer=is_transfer(entry, data),
            size=entry.preprocess.input_size,
        )
        for data, metrics in by_data.items()
    ]


SCRATCH = "scratch-"


def scratch_metrics(
    arch: str, dataset: str, entries: Iterable[ModelEntry], size: int | None = None
) -> dict[str, Metric]:
    """Column key -> the from-scratch fine-tuning number of ``arch`` on ``dataset``: the
    ``scratch-finetune-*`` rows of the zoo-trained entries of that architecture reading ``size``
    px when given (the first in ``entries``' order where several entries ran the same one)."""
    out: dict[str, Metric] = {}
    for entry in entries:
        if entry.arch != arch or entry.training is None:
            continue
        if size is not None and entry.preprocess.input_size != size:
            continue
        for m in entry.measured:
            if m.dataset == dataset and m.protocol.startswith(SCRATCH):
                key = column_of(m.protocol[len(SCRATCH) :])
                if key is not None:
                    out.setdefault(key, m)
    return out


def rows(
    entries: Iterable[ModelEntry] | None = None, baselines: Iterable[Baseline] | None = None
) -> list[Row]:
    """Every row: evaluation sets in a fixed order, then best kNN k=20 (else first metric) first."""
    entries = list(iter_models() if entries is None else entries)
    out = [r for e in entries for r in _entry_rows(e)]
    for b in BASELINES if baselines is None else baselines:
        entry = model_info(b.like)
        metrics = {column_of(m.protocol): m for m in b.metrics()}
        for data in sorted({m.dataset for m in metrics.values()}):
            chosen = {k: m for k, m in metrics.items() if k is not None and m.dataset == data}
            size = entry.preprocess.input_size
            chosen.update(scratch_metrics(entry.arch, data, entries, size))
            out.append(Row(b.label, "none", entry.arch, data, chosen, baseline=True, size=size))

    def order(row: Row) -> tuple:
        rank = _DATA_ORDER.index(row.dataset) if row.dataset in _DATA_ORDER else len(_DATA_ORDER)
        first = next((row.value(c.key) for c in COLUMNS if row.value(c.key) is not None), 0.0)
        return (rank, row.dataset, row.transfer, -first, row.name)

    return sorted(out, key=order)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(table: list[Row]) -> str:
    """A GitHub Markdown table; metric columns that no row has are left out."""
    shown = [c for c in COLUMNS if any(r.value(c.key) is not None for r in table)]
    header = ["encoder", "method", "evaluated on", *(c.header for c in shown), "epochs", "minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table:
        name = f"`{r.name}`"
        if r.baseline:
            scratch = any(m.protocol.startswith(SCRATCH) for m in r.metrics.values())
            name = f"{r.name} (`--random-init`{', `--from-scratch`' if scratch else ''})"
        cells = [name, method_label(r), data_label(r)]
        cells += [_number(r.value(c.key), c.digits) for c in shown]
        cells += ["–" if r.epochs is None else str(r.epochs), _number(r.minutes, 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def method_label(r: Row) -> str:
    """The "method" cell: a method trained with labels says so (SupCon is a supervised bound)."""
    labelled = r.method in SUPERVISED_METHODS and r.method != "supervised"
    return f"{r.method} (supervised)" if labelled else r.method


def data_label(r: Row) -> str:
    """The "evaluated on" cell: the set's name, and "(transfer)" on transfer rows."""
    return DATA_NAMES.get(r.dataset, r.dataset) + (" (transfer)" if r.transfer else "")


def _plain(r: Row) -> str:
    return r.name.replace("`", "")


def to_csv(table: list[Row]) -> str:
    """One line per row, every metric column (empty where not measured)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "name",
            "method",
            "arch",
            "dataset",
            *(c.key for c in COLUMNS),
            "epochs",
            "minutes",
            "baseline",
            "transfer",
        ]
    )
    for r in table:
        values = ["" if r.value(c.key) is None else r.value(c.key) for c in COLUMNS]
        epochs = "" if r.epochs is None else r.epochs
        minutes = "" if r.minutes is None else r.minutes
        cells = [
            _plain(r),
            r.method,
            r.arch,
            r.dataset,
            *values,
            epochs,
            minutes,
            int(r.baseline),
            int(r.transfer),
        ]
        writer.writerow(cells)
    return buf.getvalue()


def to_json(table: list[Row]) -> str:
    """Every row with, for each measured number, how it was measured and the command that gives it."""
    data: list[dict[str, Any]] = []
    for r in table:
        data.append(
            {
                "name": _plain(r),
                "method": r.method,
                "arch": r.arch,
                "dataset": r.dataset,
                "baseline": r.baseline,
                "transfer": r.transfer,
                "supervised": r.method in SUPERVISED_METHODS,
                "metrics": {
                    c.key: {
                        "value": r.metrics[c.key].value,
                        "protocol": r.metrics[c.key].protocol,
                        "how": r.metrics[c.key].how,
                        "command": r.metrics[c.key].source,
                    }
                    for c in COLUMNS
                    if c.key in r.metrics
                },
                "epochs": r.epochs,
                "minutes": r.minutes,
            }
        )
    return json.dumps(data, indent=2) + "\n"


FORMATS = {"md": markdown, "csv": to_csv, "json": to_json}


def render(fmt: str = "md", table: list[Row] | None = None) -> str:
    """The leaderboard as ``md``, ``csv`` or ``json`` text."""
    if fmt not in FORMATS:
        raise ZooError(f"unknown leaderboard format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt](rows() if table is None else table)


def block() -> str:
    """What README.md holds between the markers (markers included)."""
    return f"{START}\n\n{render('md')}\n{END}"


def update_file(path: str | os.PathLike) -> bool:
    """Rewrite the leaderboard block of ``path`` (README.md) from the registry; True if it changed."""
    from zoo.folder import atomic_write_text

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ZooError(f"cannot read {path} ({e.strerror or e})") from None
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ZooError(
            f"{path} has no leaderboard block: add a line {START} and a line {END} where the table goes,"
            " then run the command again"
        )
    new = text[:start] + block() + text[end + len(END) :]
    if new == text:
        return False
    atomic_write_text(path, new)
    return True
