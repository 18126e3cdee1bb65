"""My datalabs in a real browser (Chromium via Playwright, the real server process, the fake runtime):
a lab opens in a new tab and the platform's tab stays; its logs page follows new output live and stops
following when the lab is stopped (from another tab); the stopped lab is restarted from My datalabs
under the same id, and its log goes on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("browser-restart")
    (home / "defs" / "fake").mkdir(parents=True)
    (home / "defs" / "fake" / "datalab-meta.yml").write_text(
        'title: Fake Lab\nversion: "1.0"\nruntime:\n  kind: web\n  command: [fake-lab]\n'
    )
    return home


@pytest.fixture(scope="module")
def base(home) -> Iterator[str]:
    env = {
        "DATALABS_LABS__BACKEND": "datalabs.runtimes.testing:FakeRuntime",
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(home / "defs")]),
        "DATALABS_CATALOGUE__BUILTIN": "false",
    }
    yield from _server(home, env)


def test_open_in_a_new_tab_follow_the_log_stop_and_restart(base, home):
    with browser_page(base) as page:
        page.goto("/login")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/catalogue$"))
        page.goto("/catalogue/fake/launch")
        page.get_by_text("Advanced configuration").click()
        page.get_by_label("Name").fill("Browser lab")
        page.get_by_role("button", name="Launch", exact=True).click()
        page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/$"))
        lab_id = re.search(r"/datalabs/([0-9a-f]+)/", page.url).group(1)

        # From the lab's page, Open gives the lab a tab of its own; this one stays.
        page.goto(f"/labs/{lab_id}")
        with page.context.expect_page() as opened:
            page.get_by_role("link", name="Open Browser lab").click()
        lab_tab = opened.value
        expect(lab_tab.get_by_text("fake lab ok")).to_be_visible()
        assert re.search(rf"/datalabs/{lab_id}/$", lab_tab.url)
        expect(page).to_have_url(re.compile(rf"/labs/{lab_id}$"))
        lab_tab.close()

        # The logs page shows what the lab writes while it runs, newest lines in view.
        page.goto(f"/labs/{lab_id}/logs")
        status = page.locator("[data-log-status]")
        expect(status).to_contain_text("The log follows the lab live.")
        log = home / "labs" / lab_id / "lab.log"
        with log.open("a") as f:
            f.write("".join(f"browser follow line {n}\n" for n in range(300)))
        output = page.locator("#lab-log pre")
        expect(output).to_contain_text("browser follow line 299", timeout=15_000)
        at_end = "pre => pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30"
        assert output.evaluate(at_end), "the newest lines are not in view"

        # Stopped from another tab: the logs page notices and stops following.
        other = page.context.new_page()
        other.goto(f"/labs/{lab_id}")
        other.get_by_role("button", name="Stop Browser lab").click()
        expect(other.get_by_role("status").first).to_contain_text("'Browser lab' stopped.")
        other.close()
        expect(status).to_contain_text("The lab has ended", timeout=15_000)
        expect(page.locator("#lab-log")).not_to_have_attribute("hx-trigger", re.compile("."))

        # Restart from My datalabs: the same lab (same id) runs again, its log goes on.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="My datalabs").click()
        page.get_by_role("button", name="Restart Browser lab").click()
        expect(page).to_have_url(re.compile(rf"/labs/{lab_id}$"))
        expect(page.get_by_role("status").first).to_contain_text("Restarting 'Browser lab'.")
        expect(page.get_by_text("Your lab is running.")).to_be_visible(timeout=15_000)
        page.goto(f"/labs/{lab_id}/logs")
        expect(page.locator("#lab-log pre")).to_contain_text("---- restarted at")
        expect(page.locator("#lab-log pre")).to_contain_text("browser follow line 299")
        expect(page.locator("[data-log-status]")).to_contain_text("The log follows the lab live.")
        assert page.problems == []
