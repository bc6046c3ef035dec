"""The leaderboard: rendered from the registry, and README.md holds exactly that render."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import zoo
from zoo import leaderboard
from zoo.cli import main
from zoo.registry import Metric, iter_models

ROOT = Path(__file__).resolve().parents[1]


def test_readme_holds_the_registry_leaderboard() -> None:
    readme = (ROOT / "README.md").read_text()
    assert leaderboard.block() in readme, (
        "README's leaderboard is stale: run `zoo leaderboard --update README.md`"
    )


def test_every_measured_number_is_on_the_board() -> None:
    table = leaderboard.rows()
    md = leaderboard.render("md", table)
    shown = 0
    for entry in iter_models():
        for m in entry.measured:
            key = leaderboard.column_of(m.protocol)
            if key is None:
                continue
            row = next(r for r in table if r.name == entry.name and r.dataset == m.dataset)
            assert row.metrics[key] is m
            start = f"| `{entry.name}` | {leaderboard.method_label(row)} | {leaderboard.data_label(row)} |"
            line = next(ln for ln in md.splitlines() if ln.startswith(start))
            assert f" {m.value:.2f} " in line
            shown += 1
    assert shown >= 4 * 8 + 2  # eight trained encoders x four protocols, and the default's two kNN numbers
    # A method trained with labels says so in its method cell (SupCon, the supervised bound).
    assert any(ln.startswith("| `supcon-r18q-cifar10` | supcon (supervised) |") for ln in md.splitlines())
    trained = [r for r in table if r.epochs is not None]
    assert {r.name for r in trained} == {
        n for n in zoo.list_models() if zoo.model_info(n).training is not None
    }


def test_each_evaluation_set_is_ranked_and_has_its_baseline() -> None:
    table = leaderboard.rows()
    for data in ("cifar10-test", "imagenette-val"):
        group = [r for r in table if r.dataset == data]
        native = [r for r in group if not r.transfer]
        assert group == native + [r for r in group if r.transfer], "transfer rows follow the set's own"
        for part in (native, group[len(native) :]):
            scores = [r.value("knn_k20") for r in part]
            assert scores == sorted(scores, reverse=True)
        # A random-init row per trained architecture (a distilled student has its own), one per
        # input size where they differ much (resnet18 at 64 and at 96 px); an encoder compares
        # with its own size's row, else with its architecture's (the flagship reads 48 px).
        baselines = {(r.arch, r.size): r for r in group if r.baseline}
        trained = [r for r in native if r.epochs is not None]
        assert len(baselines) == len([r for r in group if r.baseline]) >= 1
        assert {r.arch for r in trained} == {a for a, _ in baselines}, "each trained arch has a baseline"
        for r in trained:
            own = baselines.get((r.arch, r.size)) or next(b for (a, _), b in baselines.items() if a == r.arch)
            assert r.value("nmi") > own.value("nmi"), r.name


def test_baselines_say_how_they_were_measured() -> None:
    for b in leaderboard.BASELINES:
        entry = zoo.model_info(b.like)
        metrics = b.metrics()
        assert {m.protocol for m in metrics} == set(b.scores) <= {m.protocol for m in entry.measured}
        # Random weights are measured on the set the entry was trained for, never on a transfer set.
        assert len({m.dataset for m in metrics}) == 1
        assert not any(leaderboard.is_transfer(entry, m.dataset) for m in metrics)
        for m in metrics:
            assert m.source.startswith(f"zoo eval {b.like} --random-init --data ../shared/data/")
            assert "random weights" in m.how and m.value == b.scores[m.protocol]


@pytest.mark.parametrize(
    ("protocol", "key"),
    [
        ("knn-k20", "knn_k20"),
        ("knn-k200", "knn_k200"),
        ("linear", "linear"),
        ("nmi", "nmi"),
        ("finetune-1pct", "finetune_1pct"),
        ("finetune-1%", "finetune_1pct"),
        ("fine-tune-0.01", "finetune_1pct"),
        ("finetune-10pct", "finetune_10pct"),
        ("finetune-0.1", "finetune_10pct"),
        ("img/s", "img_per_s"),
        ("throughput", "img_per_s"),
        ("top1", None),
        ("finetune-50pct", None),
        ("retrieval", None),
    ],
)
def test_column_of(protocol: str, key: str | None) -> None:
    assert leaderboard.column_of(protocol) == key


def test_fine_tune_and_throughput_columns_appear_when_measured() -> None:
    base = zoo.model_info("simclr-r18q-cifar10")
    extra = (
        Metric("cifar10-test", "finetune-1pct", 44.5, "full fine-tune on 1% of the labels", "zoo eval x"),
        Metric("cifar10-test", "finetune-10pct", 61.25, "full fine-tune on 10% of the labels", "zoo eval x"),
        Metric(
            "cifar10-test", "img/s", 1234.56, "ONNX Runtime, batch 64, 2-core CPU", "python benchmarks/x.py"
        ),
    )
    frozen = tuple(m for m in base.measured if m.dataset == "cifar10-test" and "finetune" not in m.protocol)
    entry = dataclasses.replace(base, measured=frozen + extra)
    table = leaderboard.rows(entries=[entry], baselines=[])
    md = leaderboard.render("md", table)
    assert "| fine-tune 1% | fine-tune 10% | img/s |" in md
    assert "| 44.50 | 61.25 | 1234.6 |" in md
    # Without such numbers the columns stay out of the Markdown but not out of CSV/JSON.
    plain = leaderboard.rows(entries=[dataclasses.replace(base, measured=frozen)], baselines=[])
    assert "fine-tune" not in leaderboard.render("md", plain)
    row = next(csv.DictReader(io.StringIO(leaderboard.render("csv", plain))))
    knn = next(m.value for m in frozen if m.protocol == "knn-k20")
    assert row["finetune_1pct"] == "" and row["knn_k20"] == f"{knn:.2f}"


def test_a_method_trained_with_labels_is_marked_supervised() -> None:
    base = zoo.model_info("simclr-r18q-cifar10")
    supcon = dataclasses.replace(base, name="supcon-r18q-cifar10", method="supcon")
    table = leaderboard.rows(entries=[base, supcon], baselines=[])
    md = leaderboard.render("md", table)
    assert "| `supcon-r18q-cifar10` | supcon (supervised) |" in md
    assert "| `simclr-r18q-cifar10` | simclr |" in md
    flags = {r["name"]: r["supervised"] for r in json.loads(leaderboard.render("json", table))}
    assert flags == {"supcon-r18q-cifar10": True, "simclr-r18q-cifar10": False}


def with_few_labels_and_transfer(name: str = "swav-r18q-cifar10") -> zoo.ModelEntry:
    """A zoo-trained entry with fine-tuning (1%, 10%), from-scratch and transfer numbers."""
    base = zoo.model_info(name)
    data = "../shared/data/cifar10"
    tune = f"zoo eval {name} --data {data} --protocol finetune --label-fraction"
    extra = (
        Metric(
            "cifar10-test",
            "finetune-1pct",
            47.25,
            "fine-tune (full) on 500 labelled",
            f"{tune} 0.01 --epochs 30",
        ),
        Metric(
            "cifar10-test",
            "finetune-10pct",
            63.5,
            "fine-tune (full) on 5000 labelled",
            f"{tune} 0.1 --epochs 10",
        ),
        Metric(
            "cifar10-test",
            "scratch-finetune-1pct",
            31.75,
            "fine-tune (full) on 500 labelled, from random initialisation",
            f"{tune} 0.01 --from-scratch --epochs 30",
        ),
        Metric(
            "imagenette-val", "knn-k20", 27.5, "weighted kNN on Imagenette", f"zoo eval {name} -k 20 (nette)"
        ),
        Metric(
            "imagenette-val", "linear", 33.25, "linear probe on Imagenette", f"zoo eval {name} linear (nette)"
        ),
    )
    return dataclasses.replace(base, measured=base.measured + extra)


def test_fine_tune_from_scratch_and_transfer_rows() -> None:
    entry = with_few_labels_and_transfer()
    table = leaderboard.rows(entries=[entry], baselines=[leaderboard.BASELINES[0]])
    assert [(r.name, r.dataset, r.transfer) for r in table] == [
        (entry.name, "cifar10-test", False),
        (leaderboard.BASELINES[0].label, "cifar10-test", False),
        (entry.name, "imagenette-val", True),
    ]
    own, baseline, moved = table
    assert (own.value("finetune_1pct"), own.value("finetune_10pct")) == (47.25, 63.5)
    # The from-scratch number sits in the random-init row of the architecture, not the encoder's.
    assert baseline.value("finetune_1pct") == 31.75 and baseline.value("finetune_10pct") is None
    assert baseline.value("knn_k20") == leaderboard.BASELINES[0].scores["knn-k20"]
    assert (moved.value("knn_k20"), moved.value("linear"), moved.value("finetune_1pct")) == (
        27.5,
        33.25,
        None,
    )
    md = leaderboard.render("md", table).splitlines()
    assert md[0].startswith("| encoder | method | evaluated on | kNN k=20 | kNN k=200 | linear | NMI |")
    assert "| fine-tune 1% | fine-tune 10% | epochs | minutes |" in md[0]
    assert md[2].endswith("| 47.25 | 63.50 | 8 | 19 |")
    assert (
        "(`--random-init`, `--from-scratch`) | none | CIFAR-10 test |" in md[3] and "| 31.75 | – |" in md[3]
    )
    assert md[4].startswith(
        f"| `{entry.name}` | swav | Imagenette val (transfer) | 27.50 | – | 33.25 | – | – | – |"
    )
    item = json.loads(leaderboard.render("json", table))[1]
    assert item["metrics"]["finetune_1pct"]["command"].endswith("--from-scratch --epochs 30")
    assert json.loads(leaderboard.render("json", table))[2]["transfer"] is True
    line = list(csv.DictReader(io.StringIO(leaderboard.render("csv", table))))[2]
    assert line["transfer"] == "1" and line["linear"] == "33.25"


def test_csv_and_json_carry_the_same_numbers() -> None:
    table = leaderboard.rows()
    parsed = list(csv.DictReader(io.StringIO(leaderboard.render("csv"))))
    data = json.loads(leaderboard.render("json"))
    assert len(parsed) == len(data) == len(table)
    for row, line, item in zip(table, parsed, data, strict=True):
        for key, m in row.metrics.items():
            assert float(line[key]) == m.value == item["metrics"][key]["value"]
            assert item["metrics"][key]["how"] == m.how and item["metrics"][key]["command"] == m.source
        assert item["baseline"] is row.baseline and line["baseline"] == str(int(row.baseline))


def test_cli_update_rewrites_only_the_block(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", readme)
    text = readme.read_text()
    row = next(line for line in leaderboard.block().splitlines() if line.startswith("| `"))
    stale = text.replace(row, row.replace(" | ", " | 99.99 | ", 1), 1)  # a stale number in the block
    assert stale != text
    readme.write_text(stale)
    assert main(["leaderboard", "--update", str(readme)]) == 0
    assert readme.read_text() == text and "updated" in capsys.readouterr().out
    assert main(["leaderboard", "--update", str(readme)]) == 0
    assert "unchanged" in capsys.readouterr().out

    assert main(["leaderboard", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(leaderboard.render("json"))

    readme.write_text("# no markers here\n")
    assert main(["leaderboard", "--update", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and "no leaderboard block" in err and err.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("baseline", leaderboard.BASELINES, ids=lambda b: b.like)
def test_baseline_numbers_are_what_zoo_eval_random_init_measures(baseline, data_root: Path) -> None:
    """Remeasures each baseline's kNN k=20 with the command its metric records."""
    from zoo.evaluate import evaluate

    m = next(m for m in baseline.metrics() if m.protocol == "knn-k20")
    torch.manual_seed(0)
    model = zoo.load(baseline.like, pretrained=False)
    data = data_root / Path(m.source.split("--data ")[1].split()[0]).name
    assert evaluate(model, data, k=20, temperature=0.07)["top1"] == pytest.approx(m.value, abs=0.011)


# ---------------------------------------------------------------------------------------------
# The demo's Leaderboard tab
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tab_server() -> Iterator[tuple[str, object]]:
    """The Leaderboard tab alone in a real Gradio server on 127.0.0.1: its URL and its table."""
    gr = pytest.importorskip("gradio")
    from _servers import free_port
    from zoo.app.leaderboard import leaderboard_tab

    with gr.Blocks(analytics_enabled=False) as demo:
        board = leaderboard_tab()["board"]
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield url, board
    finally:
        demo.close()


def test_app_table_is_the_leaderboard_with_number_columns() -> None:
    pytest.importorskip("gradio")
    from zoo.app.leaderboard import table

    rows = leaderboard.rows()
    headers, datatypes, cells = table(rows)
    assert len(cells) == len(rows) and all(len(c) == len(headers) == len(datatypes) for c in cells)
    for row, line in zip(rows, cells, strict=True):
        for c in leaderboard.COLUMNS:
            if c.header in headers:
                value = line[headers.index(c.header)]
                assert value == row.value(c.key) and (value is None or isinstance(value, float))
            else:
                assert all(r.value(c.key) is None for r in rows), "a column with numbers is shown"
    # Numbers, not text, so the table sorts 9.5 before 10.2.
    numbers = {h for h, t in zip(headers, datatypes, strict=True) if t == "number"}
    assert numbers == set(headers) - {"encoder", "method", "architecture", "evaluated on"}
    assert {"kNN k=20", "kNN k=200", "linear", "NMI"} <= numbers
    assert ("fine-tune 1%" in numbers) == any(r.value("finetune_1pct") is not None for r in rows)
    base = zoo.model_info("simclr-r18q-cifar10")
    frozen = tuple(m for m in base.measured if m.dataset == "cifar10-test" and "finetune" not in m.protocol)
    tuned = dataclasses.replace(
        base,
        measured=(*frozen, Metric("cifar10-test", "finetune-10pct", 61.0, "fine-tune", "zoo eval")),
    )
    headers, _, cells = table(leaderboard.rows(entries=[tuned], baselines=[]))
    assert cells[0][headers.index("fine-tune 10%")] == 61.0 and "fine-tune 1%" not in headers
    # Transfer rows say so in the demo as in the README.
    headers, _, cells = table(rows)
    where = [line[headers.index("evaluated on")] for line in cells]
    assert [w.endswith("(transfer)") for w in where] == [r.transfer for r in rows]


def test_app_table_shows_one_evaluation_set_at_a_time() -> None:
    pytest.importorskip("gradio")
    from zoo.app.leaderboard import ALL_SETS, evaluation_sets, table

    rows = leaderboard.rows()
    sets = evaluation_sets(rows)
    # Own-dataset sets come before transfer ones, CIFAR-10 (the leaderboard's budget) first.
    assert sets[0] == "CIFAR-10 test"
    transfer = [s.endswith("(transfer)") for s in sets]
    assert transfer == sorted(transfer) and any(transfer)
    for chosen in sets:
        headers, _, cells = table(rows, evaluated_on=chosen)
        kept = [r for r in rows if leaderboard.data_label(r) == chosen]
        assert [line[0] for line in cells] == [r.name.replace("`", "") for r in kept]
        assert {line[headers.index("evaluated on")] for line in cells} == {chosen}
        # A column is shown when one of this set's rows has a number in it.
        for c in leaderboard.COLUMNS:
            assert (c.header in headers) == any(r.value(c.key) is not None for r in kept)
    # Every CIFAR-10 row has its NMI, so sorting that view never meets an empty cell.
    headers, _, cells = table(rows, evaluated_on="CIFAR-10 test")
    assert all(line[headers.index("NMI")] is not None for line in cells)
    assert "NMI" not in table(rows, evaluated_on="Imagenette val (transfer)")[0]
    assert table(rows, evaluated_on=ALL_SETS) == table(rows)
    with pytest.raises(ValueError, match=r"STL-10 test.*choose one of"):
        table(rows, evaluated_on="STL-10 test")


def test_app_leaderboard_tab_over_http(tab_server) -> None:
    from gradio_client import Client
    from zoo.app.leaderboard import table

    url, board = tab_server
    headers, _, data = table(evaluated_on="CIFAR-10 test")  # the set shown first
    assert board.value["headers"] == headers and board.value["data"] == data
    assert board.interactive is False and board.elem_id == "leaderboard"
    client = Client(url, verbose=False, httpx_kwargs={"timeout": 60})
    try:
        assert "/leaderboard" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert client.predict(api_name="/leaderboard") == json.loads(leaderboard.render("json"))
    finally:
        client.close()


@pytest.mark.browser
def test_app_leaderboard_sorts_by_a_column_in_a_browser(tab_server, tmp_path: Path) -> None:
    """Debian's Chromium (as tests/test_browser.py starts it) sorts the table from a column's menu."""
    import shutil as _shutil

    from test_browser import CHROMIUM_ARGS
    from zoo.app.leaderboard import table as tab_table

    executable = _shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Chromium not found: install Debian's package (apt-get install -y chromium), as .ci/run does"
        )
    from playwright.sync_api import sync_playwright

    url, _ = tab_server
    # The tab opens on CIFAR-10 test, the set every trained encoder has rows on.
    table = [r for r in leaderboard.rows() if leaderboard.data_label(r) == "CIFAR-10 test"]

    def column(page, header: str, evaluated_on: str = "CIFAR-10 test") -> list[str]:
        """The header's column as the page shows it, top to bottom (rows are virtual divs)."""
        rows = page.locator("#leaderboard [role=row].virtual-row")
        order = sorted(range(rows.count()), key=lambda i: int(rows.nth(i).get_attribute("data-index")))
        col = tab_table(evaluated_on=evaluated_on)[0].index(header)
        return [rows.nth(i).locator(f"[role=gridcell][data-col='{col}']").inner_text().strip() for i in order]

    def sort(page, header: str, order: str) -> None:
        cell = page.locator(f"#leaderboard th[title='{header}']")
        cell.hover()
        cell.locator("button.cell-menu-button").click(force=True)
        page.get_by_role("menuitem", name=f"Sort {order}").click()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.set_default_timeout(90_000)
            page.goto(url)
            page.get_by_text(table[0].name).first.wait_for()
            # The table scrolls inside its box (and renders only the rows in view): each sort is
            # checked on the rows it shows first, both ends of the order in turn.
            values = sorted(r.value("nmi") for r in table)
            sort(page, "NMI", "ascending")
            shown = [float(v) for v in column(page, "NMI")]
            assert len(shown) >= 5 and shown == values[: len(shown)]
            page.goto(url)  # a fresh table: sorts of several columns combine
            page.get_by_text(table[0].name).first.wait_for()
            sort(page, "NMI", "descending")
            shown = [float(v) for v in column(page, "NMI") if v]
            assert len(shown) >= 5 and shown == values[::-1][: len(shown)]
            page.goto(url)
            page.get_by_text(table[0].name).first.wait_for()
            sort(page, "kNN k=20", "descending")
            best = max(table, key=lambda r: r.value("knn_k20") or -1)
            assert column(page, "encoder")[0] == best.name.replace("`", "")
            # Choosing another set replaces the rows and the columns (transfer rows have no NMI).
            page.locator("#leaderboard-set").get_by_text("Imagenette val (transfer)", exact=True).click()
            page.locator("#leaderboard th[title='NMI']").wait_for(state="detached")
            where = column(page, "evaluated on", "Imagenette val (transfer)")
            assert len(where) >= 5 and set(where) == {"Imagenette val (transfer)"}
            page.screenshot(path=tmp_path / "leaderboard.png", full_page=True)
        finally:
            browser.close()


def test_the_demo_has_the_leaderboard_tab_and_endpoint() -> None:
    """zoo serve's page (default gallery and model, offline) carries the tab and /leaderboard."""
    pytest.importorskip("gradio")
    from zoo.app import AppConfig
    from zoo.app.leaderboard import table
    from zoo.app.ui import create_app

    demo = create_app(AppConfig())
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert "tab-leaderboard" in blocks and blocks["leaderboard-set"].value == "CIFAR-10 test"
    assert blocks["leaderboard"].value["data"] == table(evaluated_on="CIFAR-10 test")[2]
    assert "leaderboard" in {d.get("api_name") for d in demo.config["dependencies"]}
