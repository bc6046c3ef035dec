"""The numbers zoo measured live in zoo/data/measured.csv and reach the registry at import; the
tables of zoo/pretrained.py are data that round-trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import zoo.pretrained
from zoo import results
from zoo.pretrained import TRAINED, attach_measured, trained_entry
from zoo.registry import Metric, iter_models, model_info
from zoo.results import Result, ResultsError

NAME = "simclr-r18q-cifar10"
SHA = zoo.model_info(NAME).weights.sha256[:16]


def _row(protocol: str = "knn-k20", *, model: str = NAME, dataset: str = "cifar10-test", weights: str = SHA):
    return Result(model, dataset, protocol, 12.5, f"{protocol} on test", f"zoo eval {model} --x", weights)


def test_registry_measured_numbers_are_the_rows_of_the_shipped_table() -> None:
    rows = results.load()
    assert rows, "the shipped table has rows"
    by_model: dict[str, set[Metric]] = {}
    for r in rows:
        by_model.setdefault(r.model, set()).add(Metric(r.dataset, r.protocol, r.value, r.how, r.command))
        assert r.weights == model_info(r.model).weights.sha256[:16]
    for entry in iter_models():
        assert set(entry.measured) == by_model.get(entry.name, set()), entry.name
        assert len(entry.measured) == len(set(entry.measured))
    for t in TRAINED:
        home = [m.protocol for m in model_info(t.name).measured if m.dataset.startswith(t.dataset)]
        assert home[:4] == ["knn-k20", "knn-k200", "linear", "nmi"], t.name


def test_rows_are_attached_in_card_order_with_other_protocols_and_sets_after(tmp_path: Path) -> None:
    path = tmp_path / "measured.csv"
    protocols = ("finetune-10pct", "nmi", "finetune-1pct", "linear", "knn-k200", "knn-k20")
    results.record([_row(p) for p in protocols] + [_row(dataset="imagenette-val")], path)
    entries = list(iter_models())
    out = {e.name: e for e in attach_measured(entries, path)}
    got = [(m.dataset, m.protocol) for m in out[NAME].measured]
    assert got == [
        ("cifar10-test", "knn-k20"),
        ("cifar10-test", "knn-k200"),
        ("cifar10-test", "linear"),
        ("cifar10-test", "nmi"),
        ("cifar10-test", "finetune-10pct"),
        ("cifar10-test", "finetune-1pct"),
        ("imagenette-val", "knn-k20"),
    ]
    assert all(m.value == 12.5 and m.source == f"zoo eval {NAME} --x" for m in out[NAME].measured)
    # Only the entries with rows change; the registry itself is untouched.
    assert out["byol-r18q-cifar10"].measured == ()
    assert out["swav-r50.ep800"] == model_info("swav-r50.ep800")
    assert model_info(NAME).measured[0].value != 12.5


def test_a_row_for_an_unknown_model_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "measured.csv"
    results.record([_row(), _row(model="simclr-r18q-cifar100")], path)
    with pytest.raises(ResultsError, match=r"line 3: a knn-k20 number for 'simclr-r18q-cifar100'") as info:
        attach_measured(iter_models(), path)
    assert str(path) in str(info.value) and "not a registered model" in str(info.value)


def test_a_row_measured_on_other_weights_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "measured.csv"
    results.record([_row("linear", weights="0123456789abcdef")], path)
    with pytest.raises(ResultsError) as info:
        attach_measured(iter_models(), path)
    assert str(info.value) == (
        f"{path}, line 2: {NAME}'s cifar10-test linear number was measured on weights 0123456789abcdef"
        f" but {NAME} now ships {SHA}; rerun: zoo eval {NAME} --x"
    )


def test_a_row_for_weights_without_a_pinned_sha256_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "measured.csv"
    results.record([_row(model="dino-r50", weights="0123456789abcdef")], path)
    with pytest.raises(ResultsError, match="dino-r50 ships weights with no pinned sha256"):
        attach_measured(iter_models(), path)


def test_an_empty_or_missing_table_attaches_nothing(tmp_path: Path) -> None:
    # The registry's entries carry rows from the shipped table; a missing or header-only table
    # leaves every entry without any (not the shipped rows, not an error).
    assert model_info("simclr-r18q-cifar10").measured
    header = tmp_path / "header.csv"
    header.write_text(Path(results.RESULTS_FILE).read_text().splitlines()[0] + "\n")
    for table in (tmp_path / "absent.csv", header):
        attached = attach_measured(list(iter_models()), table)
        assert len(attached) == len(list(iter_models()))
        assert all(e.measured == () for e in attached)


def test_the_shipped_table_is_in_canonical_form() -> None:
    # As results.record writes it (sorted by key), so a tool's rewrite only shows real changes.
    assert results.dumps(results.load()) == results.RESULTS_FILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("row", TRAINED, ids=lambda t: t.name)
def test_trained_rows_round_trip(row: zoo.pretrained.Trained) -> None:
    # The text a tool prints for the table is the row, and the row expands to the registered entry.
    assert eval(row.source().strip().rstrip(","), vars(zoo.pretrained)) == row
    # What ship prints is pasted as is: within the line length (ruff's 110).
    assert all(len(line) <= 110 for line in row.source().splitlines())
    assert trained_entry(row) == dataclasses.replace(model_info(row.name), measured=())
    assert model_info(row.name).training.curves == f"curves/{row.name}.png"


def test_a_long_command_is_cut_at_spaces_and_reads_back() -> None:
    overrides = " ".join(f"method.option_{i}=value_{i}" for i in range(12))
    row = TRAINED[0]._replace(command=f"{TRAINED[0].command} {overrides}")
    source = row.source()
    assert "command=(\n" in source and all(len(line) <= 110 for line in source.splitlines())
    assert eval(source.strip().rstrip(","), vars(zoo.pretrained)) == row


def test_a_row_on_an_unknown_training_set_is_named() -> None:
    row = TRAINED[0]._replace(name="simclr-r18q-stl10", dataset="stl10")
    with pytest.raises(ValueError, match="simclr-r18q-stl10: no training set 'stl10'"):
        trained_entry(row)


def test_a_distilled_or_labelled_encoder_says_so() -> None:
    # The card names a student's teacher and marks an encoder trained with labels.
    student = TRAINED[0]._replace(name="crd-r10q-cifar10", method="crd", teacher="vicreg-r18q-cifar10")
    assert eval(student.source().strip().rstrip(","), vars(zoo.pretrained)) == student
    assert "to match the frozen encoder `vicreg-r18q-cifar10`" in trained_entry(student).description
    labelled = trained_entry(TRAINED[0]._replace(name="supcon-r18q-cifar10", method="supcon"))
    assert "*with the class labels*" in labelled.description
    assert "labels" not in trained_entry(TRAINED[0]).description
