"""Numbers zoo measured itself, in one flat table: ``zoo/data/measured.csv``.

One row per (encoder, evaluation set, protocol): the value, how it was measured, the command
that reproduces it, and the first 16 hex digits of the sha256 of the weights it was measured
on. The registry reads the table at import time and attaches each row to its entry as a
:class:`~zoo.registry.Metric` in ``measured``; tools that measure (``python -m zoo.training.ship``,
``zoo eval ... --record``) write rows with :func:`record`, never the Python source.

Why a data file: the numbers change whenever weights are retrained or a protocol is added,
and they are written by programs; keeping them out of ``zoo/pretrained.py`` keeps that file
a table of releases, and the weights column makes a stale number (measured on weights that
were since replaced) an error instead of a silent lie.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from zoo.errors import ZooError
from zoo.folder import atomic_write_text

#: The table shipped with zoo.
RESULTS_FILE = Path(__file__).parent / "data" / "measured.csv"
#: Set to another CSV path to record somewhere else than the shipped table (tests, dry runs).
RESULTS_ENV = "ZOO_RESULTS"

_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class ResultsError(ZooError, ValueError):
    """The measured-results table is malformed; the message names the file and the line."""


@dataclass(frozen=True)
class Result:
    """One measured number.

    ``model`` is a registry name; ``dataset`` the evaluation set (``cifar10-test``,
    ``imagenette-val``); ``protocol`` the evaluation (``knn-k20``, ``knn-k200``, ``linear``,
    ``nmi``, ``finetune-1pct``, ``finetune-10pct``, ``scratch-finetune-1pct`` ...); ``value`` a
    percentage; ``weights`` the first 16 hex digits of the sha256 of the weights measured.
    """

    model: str
    dataset: str
    protocol: str
    value: float
    how: str
    command: str
    weights: str

    def __post_init__(self) -> None:
        for name in ("model", "dataset", "protocol"):
            if not _KEY_RE.match(getattr(self, name)):
                raise ValueError(
                    f"{name} must be lower-case letters, digits, '-', '_' or '.', got {getattr(self, name)!r}"
                )
        if not (isinstance(self.value, float) and math.isfinite(self.value) and 0.0 <= self.value <= 100.0):
            raise ValueError(f"value must be a percentage in [0, 100], got {self.value!r}")
        if not self.how.strip() or not self.command.strip():
            raise ValueError("a measured number needs how it was measured and the command that reproduces it")
        if not _HEX16.match(self.weights):
            raise ValueError(f"weights must be the first 16 hex digits of their sha256, got {self.weights!r}")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.dataset, self.protocol)


_COLUMNS = tuple(f.name for f in fields(Result))


def results_file() -> Path:
    """The table ``zoo eval --record`` writes and ``zoo.training.measure`` reads: ``$ZOO_RESULTS``
    if set, else the shipped one (the registry itself always reads the shipped one)."""
    return Path(os.environ.get(RESULTS_ENV) or RESULTS_FILE)


def load(path: str | os.PathLike = RESULTS_FILE) -> list[Result]:
    """Every row of ``path``, validated; a missing file is an empty table."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if tuple(header) != _COLUMNS:
        raise ResultsError(f"{path}: the header must be {','.join(_COLUMNS)}, found {','.join(header)}")
    rows: list[Result] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, cells in enumerate(reader, start=2):
        if len(cells) != len(_COLUMNS):
            raise ResultsError(f"{path}, line {line}: expected {len(_COLUMNS)} fields, found {len(cells)}")
        try:
            value = float(cells[3])
            row = Result(*cells[:3], value, *cells[4:])
        except ValueError as e:
            raise ResultsError(f"{path}, line {line}: {e}") from None
        if row.key in seen:
            raise ResultsError(f"{path}, line {line}: {row.key} is already given on line {seen[row.key]}")
        seen[row.key] = line
        rows.append(row)
    return rows


def dumps(rows: Iterable[Result]) -> str:
    """The CSV text of ``rows``, sorted by key so that diffs stay small."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for row in sorted(rows, key=lambda r: r.key):
        writer.writerow(astuple(row))
    return out.getvalue()


@contextlib.contextmanager
def _locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``<path>.lock`` while the table is read, changed and written back: two tools
    recording at once (a measure sweep and a ship) would otherwise each write back the table
    they read, and one side's rows would be lost without a word."""
    lock = Path(f"{os.fspath(path)}.lock")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one writer at a time is then the user's rule
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def record(rows: Iterable[Result], path: str | os.PathLike = RESULTS_FILE) -> Path:
    """Insert or replace ``rows`` (by model, dataset, protocol) in ``path``, atomically."""
    with _locked(path):
        table = {r.key: r for r in load(path)}
        table.update({r.key: r for r in rows})
        return atomic_write_text(path, dumps(table.values()))


def forget(model: str, path: str | os.PathLike = RESULTS_FILE) -> Path:
    """Drop every row of ``model`` (before its weights are replaced), atomically."""
    with _locked(path):
        return atomic_write_text(path, dumps(r for r in load(path) if r.model != model))


def renew(rows: list[Result], path: str | os.PathLike = RESULTS_FILE) -> list[Result]:
    """Record the rows of one model's new weights in ``path`` in one atomic write, dropping that
    model's rows measured on other weights; returns the dropped rows that ``rows`` do not
    replace, so they can be measured again (a re-shipped encoder's fine-tune and transfer rows)."""
    model, weights = rows[0].model, rows[0].weights
    with _locked(path):
        table = {r.key: r for r in load(path)}
        stale = [r for r in table.values() if r.model == model and r.weights != weights]
        for r in stale:
            del table[r.key]
        table.update({r.key: r for r in rows})
        atomic_write_text(path, dumps(table.values()))
    fresh = {r.key for r in rows}
    return [r for r in stale if r.key not in fresh]
