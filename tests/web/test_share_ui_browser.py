"""Sharing from the labs page in a real browser (Chromium via Playwright, the real server process, the fake
runtime): the owner opens Share on a running lab's card, is told about an unknown user, shares with a
colleague, who finds it under "Shared with me" saying whose lab it is; the owner revokes it and it is gone
from the colleague's page. No JupyterLab needed: the pages are the platform's (tests/web/test_share_browser.py
covers the shared JupyterLab itself)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from datalabs.accounts import service
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from tests.live import destroy_labs
from tests.share_support import VIEWABLE_DEFINITION
from tests.web.test_browser import ADMIN, PASSWORD, VIEWPORT, _server, browser_page
from tests.web.test_browser import log_in as browser_log_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("browser-share")
    (home / "defs" / "fake").mkdir(parents=True)
    (home / "defs" / "fake" / "datalab-meta.yml").write_text(VIEWABLE_DEFINITION)  # enforces view
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        service.create_user(db, "bob", PASSWORD)
    engine.dispose()
    env = {
        "DATALABS_LABS__BACKEND": "datalabs.runtimes.testing:FakeRuntime",
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(home / "defs")]),
        "DATALABS_CATALOGUE__BUILTIN": "false",
    }
    yield from _server(home, env)


def log_in(page, name: str) -> None:
    page.goto("/login")
    browser_log_in(page, name, PASSWORD)
    expect(page).to_have_url(re.compile(r"/catalogue$"))


def test_share_from_the_card_see_it_as_the_guest_and_revoke(base: str, tmp_path: Path):
    with browser_page(base) as page:
        try:
            log_in(page, ADMIN)
            page.goto("/catalogue/fake/launch")
            page.get_by_text("Advanced configuration").click()
            page.get_by_label("Name").fill("Shared lab")
            page.get_by_role("button", name="Launch", exact=True).click()
            page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/$"))
            lab_id = re.search(r"/datalabs/([0-9a-f]+)/", page.url).group(1)

            page.goto("/labs")
            page.get_by_role("link", name="Share Shared lab").click()
            expect(page).to_have_url(re.compile(rf"/labs/{lab_id}/share$"))
            expect(page.get_by_text("Not shared with anyone.")).to_be_visible()
            page.get_by_label("Name").fill("nobody")
            page.get_by_role("button", name="Share", exact=True).click()
            expect(page.locator("#add-error")).to_have_text("No user 'nobody'.")
            page.get_by_label("Name").fill("bob")
            page.get_by_label("View (read only)").check()
            page.get_by_role("button", name="Share", exact=True).click()
            expect(page.locator('tr[data-grantee="bob"]')).to_contain_text("view")

            guest = page.context.browser.new_context(base_url=base, viewport=VIEWPORT).new_page()
            log_in(guest, "bob")
            guest.goto("/labs")
            card = guest.locator(f'.lab-card-shared[data-lab="{lab_id}"]')
            expect(card).to_contain_text("ada's lab")
            expect(card).to_contain_text("view only")
            card.get_by_role("link", name="Shared lab", exact=True).click()
            expect(guest.locator("main")).to_contain_text("ada's lab, shared with you: view (read only).")

            page.get_by_role("button", name="Revoke the share with bob").click()
            expect(page.get_by_text("Not shared with anyone.")).to_be_visible()
            guest.goto("/labs")
            expect(guest.locator(".lab-card-shared")).to_have_count(0)
            guest.context.close()
            told = f"HTTP 404 {base}/labs/{lab_id}/shares"  # the unknown user's answer, on purpose
            problems = [p for p in page.problems if p != told]
            assert problems == [], problems
        finally:
            destroy_labs(base, ADMIN, PASSWORD)  # labs outlive the platform by design
