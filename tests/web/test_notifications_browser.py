"""The notification centre in a real browser (Debian's Chromium via Playwright) against `datalabs serve`
with a real SMTP server (aiosmtpd): a run launched from the form with "E-mail me when it succeeds" ends,
the mail arrives, the run page lists the e-mail as delivered, the header's bell counts the notice, the
bell leads to the list, following the notice marks it read, and Mark all read clears the rest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from datalabs.accounts.service import get_user
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.notifications import service as notifications
from tests.live import free_port
from tests.pipelines.conftest import Mailbox
from tests.web.test_browser import ADMIN, PASSWORD, SCREENSHOTS, _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notifications-home")


@pytest.fixture(scope="module")
def server(home, mailbox) -> Iterator[str]:
    env = {"DATALABS_PIPELINES__SMTP_HOST": "127.0.0.1", "DATALABS_PIPELINES__SMTP_PORT": str(mailbox.port)}
    yield from _server(home, env)


def leave_notices(home: Path, *texts: str) -> None:
    """Notices for ada as a service writes them (say, review decisions), in the served platform's DB."""
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        for text in texts:
            notifications.add(db, get_user(db, ADMIN).id, text, "/appstore")
    engine.dispose()


def test_a_run_e_mails_its_owner_and_the_bell_leads_to_its_notice(server, home, mailbox):
    with browser_page(server) as page:
        page.goto("/pipelines/hello-world/launch")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/pipelines/hello-world/launch$"))
        bell = page.locator("a.bell")
        expect(bell).to_have_attribute("data-unread", "0")
        expect(bell.locator(".bell-count")).to_have_count(0)

        page.get_by_label("When it succeeds").check()
        page.get_by_label("E-mail me").check()
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))
        run_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#run-state")).to_have_text("Succeeded", timeout=60_000)

        # The page says what was notified: the e-mail to ada, delivered (the worker sends right after the
        # run's end; the page shows it at its next load).
        row = page.locator('.run-notifications tr[data-channel="email"]')
        for _ in range(50):
            page.reload()
            if row.count() and row.get_attribute("data-state") == "delivered":
                break
            page.wait_for_timeout(200)
        expect(row).to_have_attribute("data-state", "delivered")
        expect(row).to_contain_text("ada@example.org")
        expect(row).to_contain_text("Delivered")
        assert len(mailbox.messages) == 1 and run_id in mailbox.messages[0]["Subject"]
        expect(bell).to_have_attribute("data-unread", "1")
        expect(bell.locator(".bell-count")).to_have_text("1")
        page.screenshot(path=str(SCREENSHOTS / "datalabs-run-notified.png"), full_page=True)

        bell.click()
        expect(page).to_have_url(re.compile(r"/notifications$"))
        notice = page.locator(".notice-item").first
        expect(notice).to_have_class(re.compile("notice-unread"))
        expect(notice).to_contain_text(f"Run {run_id} of hello-world succeeded.")
        page.screenshot(path=str(SCREENSHOTS / "datalabs-notifications.png"), full_page=True)
        notice.get_by_role("link").click()
        expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))
        expect(bell).to_have_attribute("data-unread", "0")

        # Nothing unread: no Mark all read. Two more notices: the bell counts them, the button clears them.
        page.goto("/notifications")
        expect(page.get_by_role("button", name="Mark all read")).to_have_count(0)
        leave_notices(home, "Your datalab 'x' 1.0 was approved.", "Your datalab 'y' 1.0 was approved.")
        page.reload()
        expect(bell).to_have_attribute("data-unread", "2")
        expect(page.locator(".notice-unread")).to_have_count(2)
        page.get_by_role("button", name="Mark all read").click()
        expect(page.locator(".flash")).to_have_text("Marked 2 notifications read.")
        expect(bell).to_have_attribute("data-unread", "0")
        expect(page.locator(".notice-unread")).to_have_count(0)
        expect(page.locator(".notice-item")).to_have_count(3)
        assert not page.problems, page.problems
