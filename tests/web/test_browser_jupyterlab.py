"""The whole lab journey in a real browser with a REAL JupyterLab in a real sandbox: log in, launch
JupyterLab from the catalogue, watch the start progress, land in JupyterLab, run a cell, go back to My
datalabs, see it running, destroy it."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]
# What must never happen on the way: refused or failing requests, or anything fetched from elsewhere.
# (JupyterLab itself answers 404 to a few optional lookups, e.g. absent workspaces; those are fine.)
BAD = re.compile(r"^(HTTP (401|403|5\d\d) |outside request|page error|horizontal scroll)")


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    yield from _server(tmp_path_factory.mktemp("browser-jupyter"))


def test_launch_jupyterlab_run_a_cell_and_destroy_it(real_server):
    with browser_page(real_server) as page:
        page.goto("/login")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/catalogue$"))

        page.locator('.cards > li.card[data-name="jupyterlab"]').get_by_role("link", name="Launch").click()
        page.get_by_text("Advanced configuration").click()
        page.get_by_label("Name").fill("Notebook lab")
        page.get_by_role("button", name="Launch", exact=True).click()

        # The start page shows the progress messages while the sandbox comes up, then opens the lab.
        expect(page.locator("#progress-log")).to_contain_text("sandbox", timeout=10_000)
        page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/lab"), timeout=90_000)
        lab_path = re.search(r"/datalabs/[0-9a-f]+/", page.url)[0]

        page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=60_000)
        # Idle in the status bar: the kernel is up and connected over the proxied WebSocket.
        expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first).to_be_visible(timeout=60_000)
        cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
        cell.click()
        page.keyboard.type("1 + 1")
        expect(cell).to_contain_text("1 + 1")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
        expect(output).to_have_text("2", timeout=60_000)

        # Back in the platform: My datalabs shows it running, with Open pointing at the lab.
        page.goto("/labs")
        card = page.locator(".lab-card", has_text="Notebook lab")
        expect(card).to_contain_text("Running")
        expect(card.get_by_role("link", name="Open Notebook lab")).to_have_attribute("href", lab_path)
        page.get_by_role("link", name="Destroy Notebook lab").click()
        page.get_by_role("button", name="Destroy lab").click()
        expect(page.get_by_role("status").first).to_contain_text("'Notebook lab' destroyed")
        expect(page.locator(".lab-card", has_text="Notebook lab")).to_have_count(0)

        # The lab is gone for real: its URL no longer reaches a JupyterLab.
        response = page.request.get(lab_path + "api/status")
        assert response.status in (404, 503), response.status
        assert [p for p in page.problems if BAD.match(p)] == []
