"""The usage page in a real browser (Chromium via Playwright, the real server process, the fake runtime):
a launch over the user's CPU quota is refused on the launch form naming the limit; the lab that ran is on
"Usage" (header link) with its chart of CPU-hours per day, its tables and the quota; administrators find
everyone's on Admin > Usage and download the CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page

pytestmark = pytest.mark.slow
REFUSAL = "you use 1 of 1 CPUs on cluster local; this lab asks for 1"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("browser-usage")
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
        "DATALABS_QUOTAS": json.dumps({"local": {"user": {"cpu": 1, "cpu_hours": 100}}}),
    }
    yield from _server(home, env)


def test_quota_refusal_then_the_usage_pages(base, home):
    with browser_page(base) as page:
        page.goto("/login")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/catalogue$"))

        page.goto("/catalogue/fake/launch")
        page.get_by_role("button", name="Launch", exact=True).click()
        page.wait_for_url(re.compile(r"/datalabs/[0-9a-f]+/$"))
        lab_id = re.search(r"/datalabs/([0-9a-f]+)/", page.url).group(1)
        expect(page.get_by_text("fake lab ok")).to_be_visible()

        # A second lab would take the user past their 1 CPU on cluster local: the form says so.
        page.goto("/catalogue/fake/launch")
        page.get_by_role("button", name="Launch", exact=True).click()
        expect(page.get_by_text(REFUSAL, exact=False)).to_be_visible()

        page.goto(f"/labs/{lab_id}")
        page.get_by_role("button", name="Stop Fake Lab").click()
        expect(page.get_by_text("Stopped").first).to_be_visible()

        # The header's Usage link: this month, the chart, the tables, the quota.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
        expect(page).to_have_url(re.compile(r"/usage$"))
        expect(page.get_by_role("heading", name="My usage")).to_be_visible()
        chart = page.get_by_role("img", name=re.compile(r"CPU-hours per day of \w+ \d{4}"))
        expect(chart).to_be_visible()
        assert 28 <= chart.locator("rect.usage-bar").count() <= 31
        assert chart.bounding_box()["width"] > 300
        expect(page.locator("#usage-by-cluster tr[data-key='local']")).to_be_visible()
        expect(page.locator("#usage-by-datalab")).to_contain_text("fake (datalab)")
        expect(page.locator(f"#usage-sessions tr[data-session='{lab_id}']")).to_contain_text("platform")
        quotas = page.locator("#usage-quotas")
        expect(quotas).to_contain_text("CPUs in use")
        expect(quotas).to_contain_text("CPU-hours this month")

        # Administrators: everyone's, by user, and the CSV export.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
        page.get_by_role("navigation", name="Administration").get_by_role("link", name="Usage").click()
        expect(page).to_have_url(re.compile(r"/admin/usage$"))
        expect(page.locator(f"#usage-by-user tr[data-key='{ADMIN}']")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert [(row["user"], row["id"], row["name"]) for row in rows] == [(ADMIN, lab_id, "fake")]
        assert download.value.suggested_filename.startswith("usage-")

        # The refused launch answered 429 on purpose; nothing else went wrong on any page.
        assert [p for p in page.problems if not re.fullmatch(r"HTTP 429 .*/catalogue/fake/launch", p)] == []
