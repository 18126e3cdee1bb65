"""Admin → Catalogue in a real browser (Debian's Chromium driven by Playwright) against the real server:
a datalab that cannot be used says why; "Build now" opens its build page, which follows the build live
(htmx) until it is built, and the datalab is then usable. The build is real (uv in bubblewrap, a wheel
from the datalab's folder, no network)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.catalogue.test_builds import tiny_datalab
from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture
def page(tmp_path) -> Iterator:
    tiny_datalab(tmp_path / "defs")
    env = {
        "DATALABS_CATALOGUE__DIRS": json.dumps([str(tmp_path / "defs")]),
        "DATALABS_CATALOGUE__BUILTIN": "false",
    }
    (tmp_path / "home").mkdir()
    for base in _server(tmp_path / "home", env):
        with browser_page(base) as page:
            yield page


def test_build_now_is_followed_live_until_the_datalab_is_usable(page):
    page.goto("/login")
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/catalogue$"))

    page.goto("/admin/catalogue")
    row = page.locator('#unavailable-table tr[data-datalab="tiny"]')
    expect(row).to_contain_text("not built yet")
    row.get_by_role("button", name="Build now tiny").click()
    expect(page).to_have_url(re.compile(r"/admin/catalogue/tiny/build$"))
    expect(page.get_by_text("Building the environment of 'tiny' 1.0.")).to_be_visible()
    # While the build runs the status part is polled (htmx) and swapped in place; however fast the build,
    # the page ends showing it built, with its log, without a reload.
    status = page.locator("#catalogue-build-status")
    expect(status).to_have_attribute("data-state", "built", timeout=120_000)
    expect(page.locator("[data-build-log]")).to_contain_text("BUILD SUCCEEDED")
    expect(page.get_by_role("heading", name=re.compile("^Built"))).to_be_visible()

    page.goto("/admin/catalogue")
    expect(page.locator('tr[data-datalab="tiny"]')).to_have_count(0)
    expect(page.get_by_role("heading", name="Every datalab can be used")).to_be_visible()
    assert page.problems == []
