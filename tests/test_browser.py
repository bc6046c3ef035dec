"""The demo in a real browser: Debian's Chromium, driven by Playwright, on 127.0.0.1.

Chromium is the system package (``apt-get install chromium``; ``.ci/run`` installs it), never
a browser Playwright downloads, and it is started with every background service off so it
stays on the loopback interface. Screenshots land in the test's tmp_path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app import CLASSES, held_out, make_gallery, running_app

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings(r"ignore::DeprecationWarning:gradio\.")]

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
def server(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gallery = make_gallery(data_root, tmp_path_factory.getbasetemp() / "app-gallery")
    with running_app(gallery) as url:
        yield url


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


def test_upload_finds_neighbours(page, data_root: Path, tmp_path: Path) -> None:
    query = held_out(data_root, "n03028079", 1)[0]  # a church not in the gallery
    page.locator("#retrieve-files input[type=file]").set_input_files(str(query))
    page.locator("#retrieve-button").click()
    # The query, then its 5 neighbours; the vote names the class.
    page.locator("#retrieve-gallery img").nth(5).wait_for()
    assert page.locator("#retrieve-gallery img").count() == 6
    assert "n03028079" in page.locator("#retrieve-prediction").inner_text()
    captions = page.locator("#retrieve-gallery").inner_text()
    assert captions.count("n03028079") >= 4 and "query: " in captions
    page.screenshot(path=tmp_path / "retrieve.png", full_page=True)


def test_bad_upload_shows_an_error_and_the_page_keeps_working(page, data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    page.locator("#retrieve-files input[type=file]").set_input_files(str(tmp_path / "notes.txt"))
    page.locator("#retrieve-button").click()
    toast = page.get_by_test_id("toast-text").filter(has_text="not a readable image")
    toast.wait_for()
    assert "notes.txt" in toast.inner_text()
    page.wait_for_timeout(500)  # the toast slides in
    page.screenshot(path=tmp_path / "error.png")  # the viewport: the toast is pinned to it

    page.locator("#retrieve-files button[aria-label='Clear']").first.click()
    page.locator("#retrieve-files input[type=file]").set_input_files(
        str(held_out(data_root, "n03445777", 1)[0])
    )
    page.locator("#retrieve-button").click()
    page.get_by_text("n03445777").first.wait_for()


def test_cluster_a_gallery_sample(page, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Cluster").click()
    page.get_by_label("A sample of the gallery").check()
    page.locator("#cluster-button").click()
    page.get_by_text("NMI").first.wait_for()
    page.locator("#clusters img").wait_for()
    summary = page.locator("#cluster-summary").inner_text()
    assert f"{len(CLASSES)} clusters" in summary
    page.screenshot(path=tmp_path / "cluster.png", full_page=True)
