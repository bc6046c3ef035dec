"""The demo in a real browser: Debian's Chromium, driven by Playwright, on 127.0.0.1.

Chromium is the system package (``apt-get install chromium``; ``.ci/run`` installs it), never
a browser Playwright downloads, and it is started with every background service off so it
stays on the loopback interface.

Screenshots of every tab are what a reviewer looks at: they land in a ``screenshots`` folder
of the test run's tmp dir and are copied to ``artifacts/browser/`` in the repository (git
ignores it); the path is printed at the end of the module (``pytest -s`` shows it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app import CLASSES, held_out, make_gallery, running_app

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings(r"ignore::DeprecationWarning:gradio\.")]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def gallery(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gallery(data_root, tmp_path_factory.getbasetemp() / "app-gallery")


@pytest.fixture(scope="module")
def server(gallery: Path) -> Iterator[str]:
    with running_app(gallery) as url:
        yield url


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    try:
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        shutil.copytree(folder, ARTIFACTS)
        where = ARTIFACTS
    except OSError:  # a read-only checkout: the tmp dir still has them
        where = folder
    print(f"\nscreenshots of the demo: {where}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Chromium not found: install Debian's package (apt-get install -y chromium), as .ci/run does"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright not installed: pip install -r requirements.txt (the test extra has it)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh profile
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1200},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, server: str) -> Iterator[object]:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    yield page
    page.close()


def set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_header_names_the_gallery_and_its_classes(page, gallery: Path, screenshots: Path) -> None:
    header = page.locator("#header").inner_text()
    assert "gallery 'app-gallery'" in header and "church, golf ball, tench" in header
    assert str(gallery) not in page.content()
    page.locator("#retrieve-examples img").first.wait_for()
    page.screenshot(path=screenshots / "1-retrieve-start.png", full_page=True)


def test_first_use_of_a_model_shows_indexing_progress(page, gallery: Path, screenshots: Path) -> None:
    """Another model's gallery index is built on its first use: the page shows how far it is.
    (Runs before the Compare test, which would build it first.)"""
    other = "simclr-r18-imagenette"  # installed with zoo, not the server's first model
    page.locator("#model input").click()
    page.get_by_role("option", name=other, exact=True).click()
    page.locator("#retrieve-files input[type=file]").set_input_files(
        str(sorted((gallery / "n03445777").iterdir())[0])
    )
    page.locator("#retrieve-button").click()
    progress = page.get_by_text(re.compile(r"indexing the gallery for simclr-r18-imagenette: \d+/24 images"))
    progress.first.wait_for()
    page.screenshot(path=screenshots / "1b-retrieve-indexing.png", full_page=True)
    page.locator("#retrieve-gallery img").nth(5).wait_for()
    assert "golf ball" in page.locator("#retrieve-prediction").inner_text()


def test_upload_finds_neighbours_named_by_class(page, data_root: Path, screenshots: Path) -> None:
    query = held_out(data_root, "n03028079", 1)[0]  # a church not in the gallery
    page.locator("#retrieve-files input[type=file]").set_input_files(str(query))
    page.locator("#retrieve-button").click()
    # The query, then its 5 neighbours; the vote names the class, by its name.
    page.locator("#retrieve-gallery img").nth(5).wait_for()
    assert page.locator("#retrieve-gallery img").count() == 6
    prediction = page.locator("#retrieve-prediction").inner_text()
    assert "church" in prediction and "100% of the vote" in prediction
    captions = page.locator("#retrieve-gallery").inner_text()
    assert captions.count("church") >= 4 and "query: " in captions and "n03028079" not in captions
    page.screenshot(path=screenshots / "2-retrieve-upload.png", full_page=True)


def test_example_thumbnails_one_per_class_search_on_click(page, screenshots: Path) -> None:
    examples = page.locator("#retrieve-examples")
    examples.locator("img").first.wait_for()
    assert examples.locator("img").count() == len(CLASSES)  # thumbnails, one per class
    assert set(examples.inner_text().split()) >= {"tench", "church", "golf", "ball"}
    examples.locator("img").nth(2).click()  # golf ball
    page.locator("#retrieve-gallery img").nth(5).wait_for()
    assert "golf ball" in page.locator("#retrieve-prediction").inner_text()
    page.screenshot(path=screenshots / "3-retrieve-example.png", full_page=True)


def test_large_k_wraps_the_rows(page, gallery: Path, screenshots: Path) -> None:
    set_slider(page, "k", 20)
    page.locator("#retrieve-files input[type=file]").set_input_files(
        str(sorted((gallery / "n01440764").iterdir())[0])
    )
    page.locator("#retrieve-button").click()
    page.locator("#retrieve-gallery img").nth(20).wait_for()
    results = page.locator("#retrieve-gallery")
    overflow = results.evaluate("e => e.scrollWidth - e.clientWidth")
    assert overflow <= 0, f"the result rows run {overflow} px off the page"
    tops = {round(box["y"]) for box in (img.bounding_box() for img in results.locator("img").all()) if box}
    assert len(tops) >= 2  # the 21 images wrap onto several lines
    page.screenshot(path=screenshots / "4-retrieve-k20.png", full_page=True)


def test_bad_upload_shows_an_error_and_the_page_keeps_working(
    page, data_root: Path, tmp_path: Path, screenshots: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    page.locator("#retrieve-files input[type=file]").set_input_files(str(tmp_path / "notes.txt"))
    page.locator("#retrieve-button").click()
    toast = page.get_by_test_id("toast-text").filter(has_text="not a readable image")
    toast.wait_for()
    assert "notes.txt" in toast.inner_text() and "/tmp" not in toast.inner_text()
    page.wait_for_timeout(500)  # the toast slides in
    page.screenshot(path=screenshots / "5-retrieve-error.png")  # the viewport: the toast is pinned to it

    page.locator("#retrieve-files button[aria-label='Clear']").first.click()
    page.locator("#retrieve-files input[type=file]").set_input_files(
        str(held_out(data_root, "n03445777", 1)[0])
    )
    page.locator("#retrieve-button").click()
    page.locator("#retrieve-prediction").get_by_text("golf ball").wait_for()


def map_colours(page) -> tuple[set[str], list[str]]:
    """The colours of the points drawn on the cluster map, and the legend's labels."""
    svg = page.locator("#cluster-map svg").first.inner_html()
    points = re.findall(r'<path[^>]*role="graphics-symbol"[^>]*>', svg) or re.findall(
        r'class="mark-symbol role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.S
    )
    strokes = set(re.findall(r'stroke="(#[0-9a-f]{6})"', "".join(points)))
    legend = re.findall(r">(cluster \d+)</text>", svg)
    return strokes, legend


def test_cluster_map_draws_every_cluster_of_a_second_run(page, screenshots: Path) -> None:
    page.get_by_role("tab", name="Cluster").click()
    page.get_by_label("A sample of the gallery").check()
    set_slider(page, "cluster-k", 2)
    page.locator("#cluster-button").click()
    page.locator("#cluster-summary").get_by_text("2 clusters").wait_for()
    page.locator("#cluster-map svg").first.wait_for()
    page.wait_for_timeout(1000)
    assert len(map_colours(page)[0]) == 2

    set_slider(page, "cluster-k", 4)  # more clusters than the map was first drawn with
    page.locator("#cluster-button").click()
    page.locator("#cluster-summary").get_by_text("4 clusters").wait_for()
    page.wait_for_function(
        "() => (document.querySelector('#cluster-map svg')?.innerHTML.match(/>cluster \\d+<\\/text>/g)"
        " || []).length === 4"
    )
    page.wait_for_timeout(1000)
    strokes, legend = map_colours(page)
    assert len(strokes) == 4, strokes  # every cluster's points drawn, each in its own colour
    assert legend == [f"cluster {c}" for c in range(1, 5)]
    summary = page.locator("#cluster-summary").inner_text()
    assert "NMI" in summary
    page.screenshot(path=screenshots / "6-cluster.png", full_page=True)


def test_compare_lists_runnable_models_first_with_full_names(page, gallery: Path, screenshots: Path) -> None:
    page.get_by_role("tab", name="Compare").click()
    models = page.locator("#compare-models")
    models.locator("input").click()
    options = page.get_by_role("option").all_inner_texts()
    assert options, "the model list did not open"
    later = [i for i, text in enumerate(options) if "downloads on first use" in text]
    assert later and later == list(range(later[0], len(options)))  # runnable ones first
    page.screenshot(path=screenshots / "7-compare-models.png", full_page=True)
    page.keyboard.press("Escape")

    page.locator("#compare-files input[type=file]").set_input_files(
        str(sorted((gallery / "n03028079").iterdir())[0])
    )
    page.locator("#compare-button").click()
    page.locator("#compare-gallery img").nth(6).wait_for()
    page.locator("#comparison").get_by_text("church").first.wait_for()
    page.screenshot(path=screenshots / "8-compare.png", full_page=True)


def test_model_card_tab(page, screenshots: Path) -> None:
    page.get_by_role("tab", name="Model card").click()
    page.locator("#card").get_by_text("EfficientNet").first.wait_for()
    page.screenshot(path=screenshots / "9-model-card.png", full_page=True)


def test_bundled_gallery_out_of_the_box(browser, screenshots: Path) -> None:
    """`zoo serve` with no gallery: the bundled one, its classes as thumbnails; one click retrieves
    the other images of that class."""
    with running_app(None) as url:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url)
            assert (
                "the gallery bundled with zoo: 19 images of 5 classes" in page.locator("#header").inner_text()
            )
            examples = page.locator("#retrieve-examples")
            examples.locator("img").first.wait_for()
            assert examples.locator("img").count() == 5
            examples.get_by_text("gravel").click()
            page.locator("#retrieve-gallery img").nth(5).wait_for()
            assert "gravel" in page.locator("#retrieve-prediction").inner_text()
            assert (
                page.locator("#retrieve-gallery").inner_text().count("gravel") >= 4
            )  # its 3 others + itself
            page.screenshot(path=screenshots / "0-bundled-gallery.png", full_page=True)
        finally:
            page.close()
