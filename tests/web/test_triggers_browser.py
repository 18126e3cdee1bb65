"""A "new data" trigger in a real browser (Debian's Chromium via Playwright) against `datalabs serve`:
made from the explorer's current search, then a file lands in the watched folder (written there as a lab or
an instrument would) and the run it started appears on the runs page, showing what started it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.pipelines.conftest import COUNT
from tests.web.test_browser import ADMIN, PASSWORD, SCREENSHOTS, _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("triggers-home")


@pytest.fixture(scope="module")
def server(home) -> Iterator[str]:
    # No pipeline worker: the run the file starts stays queued, where the page shows it.
    yield from _server(home, {"DATALABS_PIPELINES__WORKER": "false", "DATALABS_TRIGGERS__SETTLE": "0.3"})


def test_a_new_data_trigger_from_an_explorer_search_starts_a_run_when_a_file_lands(server, home):
    with httpx.Client(base_url=server, timeout=30) as api:
        r = api.post("/api/v1/login", json={"username": ADMIN, "password": PASSWORD})
        api.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        r = api.post("/api/v1/pipelines", json={"name": "count-lines", "cwl": COUNT})
        assert r.status_code == 201, r.text
        assert api.post("/api/v1/workspaces/me/files/incoming", json={"op": "mkdir"}).status_code < 300
    with browser_page(server) as page:
        page.goto("/explorer?q=obs")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/explorer\?q=obs"))
        page.get_by_role("link", name="Run a pipeline on new matches").click()
        expect(page).to_have_url(re.compile(r"/pipelines/-/new-data-trigger\?q=obs"))
        expect(page.get_by_role("heading", name="Your search")).to_be_visible()
        page.get_by_label("Pipeline").select_option("count-lines")
        page.get_by_label("Watched folder").fill("me/incoming")
        page.get_by_role("button", name="Create trigger").click()
        expect(page).to_have_url(re.compile(r"/pipelines/count-lines#triggers$"))
        row = page.locator("#trigger-table tr[data-kind='new_data']")
        expect(row).to_contain_text("new files in me/incoming")
        expect(row).to_contain_text("Active")
        page.screenshot(path=str(SCREENSHOTS / "datalabs-triggers.png"), full_page=True)

        folder = home / "workspaces" / "users" / ADMIN / "incoming"
        (folder / ".obs-1.txt.part").write_text("1\n2\n3\n")
        (folder / ".obs-1.txt.part").rename(folder / "obs-1.txt")
        (folder / "notes.txt").write_text("not a match for 'obs'\n")

        deadline = time.monotonic() + 30
        while True:
            page.goto("/runs?pipeline=count-lines")
            if page.locator("tr[data-run]").count() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        runs = page.locator("tr[data-run]")
        expect(runs).to_have_count(1)
        runs.first.get_by_role("link").first.click()
        expect(page.locator("#run-trigger")).to_contain_text("new file me/incoming/obs-1.txt")
        page.goto("/pipelines/count-lines")
        expect(page.locator("#trigger-table")).to_contain_text("new file me/incoming/obs-1.txt")
