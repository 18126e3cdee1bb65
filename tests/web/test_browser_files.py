"""The file manager in a real browser (Debian's Chromium via Playwright) against `datalabs serve`:
drag-and-drop upload, new folder, move, zip download, delete."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import ADMIN, PASSWORD, SCREENSHOTS, _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    yield from _server(tmp_path_factory.mktemp("browser-files"))


@pytest.fixture
def page(server):
    with browser_page(server) as page:
        yield page


def row(page, path: str):
    return page.locator(f'tr[data-entry="{path}"]')


def test_file_manager_in_a_browser(page, tmp_path):
    page.goto("/workspace")
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/workspace/me/$"))
    expect(page.get_by_role("link", name="Workspace", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("This folder is empty")).to_be_visible()

    # Drag and drop two files onto the drop zone: streamed PUTs to the API, then the list reloads.
    data = page.evaluate_handle(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(['hello from a drop'], 'dropped.txt', {type: 'text/plain'}));
            dt.items.add(new File([new Uint8Array(300000)], 'cube ü.fits'));
            return dt;
        }"""
    )
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": data})
    expect(row(page, "dropped.txt")).to_be_visible()
    expect(row(page, "cube ü.fits")).to_contain_text("300.0 KB")

    # New folder.
    page.get_by_label("New folder").fill("results")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status").first).to_contain_text("Folder 'results' created.")
    expect(row(page, "results")).to_be_visible()

    # Move the dropped file into it.
    row(page, "dropped.txt").get_by_text("Move / copy").click()
    row(page, "dropped.txt").locator("[data-move-to]").fill("results/dropped.txt")
    row(page, "dropped.txt").get_by_role("button", name="Move").click()
    expect(page.get_by_role("status").first).to_contain_text("Moved 'dropped.txt' to 'results/dropped.txt'.")
    expect(row(page, "dropped.txt")).to_have_count(0)

    # Download the folder as a zip.
    page.get_by_role("link", name="results/").click()
    expect(page).to_have_url(re.compile(r"/workspace/me/results/$"))
    expect(row(page, "results/dropped.txt")).to_be_visible()
    with page.expect_download() as download:
        page.locator("a[data-zip]").click()
    saved = tmp_path / "results.zip"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "results.zip"
    with zipfile.ZipFile(saved) as archive:
        assert archive.read("dropped.txt") == b"hello from a drop"
    page.screenshot(path=str(SCREENSHOTS / "datalabs-workspace.png"), full_page=True)

    # Delete the folder (after confirming).
    page.goto("/workspace/me/")
    page.once("dialog", lambda dialog: dialog.accept())
    row(page, "results").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").first).to_contain_text("Deleted 'results'.")
    expect(row(page, "results")).to_have_count(0)
    expect(row(page, "cube ü.fits")).to_be_visible()
    assert page.problems == []
