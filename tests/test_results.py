"""The measured-results table: validated on read, written atomically, upserted by key."""

from __future__ import annotations

import pytest

from zoo import results
from zoo.results import Result, ResultsError


def _row(model: str = "simclr-r18q-cifar10", protocol: str = "knn-k20", value: float = 50.0) -> Result:
    sha = "0123456789abcdef"
    return Result(model, "cifar10-test", protocol, value, "weighted kNN", f"zoo eval {model}", sha)


def test_record_upserts_and_round_trips(tmp_path):
    path = tmp_path / "measured.csv"
    results.record([_row(value=50.0), _row(protocol="linear", value=52.5)], path)
    results.record([_row(value=51.25)], path)
    rows = results.load(path)
    assert [(r.protocol, r.value) for r in rows] == [("knn-k20", 51.25), ("linear", 52.5)]
    results.forget("simclr-r18q-cifar10", path)
    assert results.load(path) == []


def test_text_with_commas_and_quotes_survives(tmp_path):
    path = tmp_path / "measured.csv"
    row = Result("a", "b", "c", 1.5, 'k=20, T=0.07, "cosine"', "zoo eval a --data x", "fedcba9876543210")
    results.record([row], path)
    assert results.load(path) == [row]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a,b,c,101,how,cmd,0123456789abcdef", "percentage"),
        ("a,b,c,nan,how,cmd,0123456789abcdef", "percentage"),
        ("a,b,c,5,how,cmd,0123", "16 hex digits"),
        ("a,b,c,5,,cmd,0123456789abcdef", "how it was measured"),
        ("A B,b,c,5,how,cmd,0123456789abcdef", "lower-case"),
        ("a,b,c,5,how,cmd", "expected 7 fields"),
        ("a,b,c,5,how,cmd,0123456789abcdef\na,b,c,6,how,cmd,0123456789abcdef", "already given on line 2"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "measured.csv"
    path.write_text("model,dataset,protocol,value,how,command,weights\n" + line + "\n")
    with pytest.raises(ResultsError, match=message) as info:
        results.load(path)
    assert "line" in str(info.value) and str(path) in str(info.value)


def test_wrong_header_is_named(tmp_path):
    path = tmp_path / "measured.csv"
    path.write_text("model,value\n")
    with pytest.raises(ResultsError, match="header must be"):
        results.load(path)


def _record_many(path: str, model: str, n: int, start) -> None:
    start.wait(60)
    for i in range(n):
        results.record([_row(model=model, protocol=f"knn-k{i + 1}", value=i / 2)], path)


def test_two_writers_at_once_lose_no_rows(tmp_path):
    # Each writer reads the table, adds a row and writes it back, 150 times, both at once: the
    # lock around read-change-write keeps every row of both (without it, most runs lose some).
    import multiprocessing

    path = str(tmp_path / "measured.csv")
    results.record([], path)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    writers = [ctx.Process(target=_record_many, args=(path, m, 150, start)) for m in ("a-r18", "b-r18")]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    rows = results.load(path)
    assert len(rows) == 300 and {r.model for r in rows} == {"a-r18", "b-r18"}
