"""The explorer in a real browser (Debian's Chromium via Playwright) against `datalabs serve`: tick two
facets and watch the counts change, then pick a station on the map and see the results follow it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from datalabs.assets.engine import BitmapIndex
from datalabs.assets.service import index_dir
from datalabs.config import Settings
from tests.assets.seed import records
from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("explorer-home")
    BitmapIndex(index_dir(Settings(home=home))).ingest(records())
    yield from _server(home)


def count_of(page, facet: str, value: str):
    return page.locator(f'fieldset[data-facet="{facet}"] li').filter(has_text=value).locator(".count")


def test_filter_by_two_facets_then_pick_a_station_on_the_map(server):
    with browser_page(server) as page:
        page.goto("/explorer")
        page.get_by_label("User name").fill(ADMIN)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#result-count")).to_contain_text("of 62")
        expect(count_of(page, "constellation", "GLONASS")).to_have_text("30")
        page.get_by_label(re.compile("^ABMF00GLP")).check()
        expect(page.locator("#result-count")).to_contain_text("of 20")
        expect(count_of(page, "constellation", "GLONASS")).to_have_text("10")  # counts follow the station
        page.get_by_label(re.compile("^GPS")).check()
        expect(page.locator("#result-count")).to_contain_text("1 – 10 of 10")
        expect(count_of(page, "station", "KIRU00SWE")).to_have_text("10")  # GPS files of Kiruna
        marker = page.locator("#map path.leaflet-interactive")
        expect(marker).to_have_count(1)  # the one station left: Les Abymes
        page.get_by_label(re.compile("^ABMF00GLP")).uncheck()
        page.get_by_label(re.compile("^GPS")).uncheck()
        expect(page.locator("#result-count")).to_contain_text("of 62")
        page.locator("#map path.loc-m61d528_16d262").click()  # Les Abymes, far from the others: unclustered
        expect(page.locator("#result-count")).to_contain_text("of 20")
        expect(page.locator(".assets-table tbody tr").first).to_contain_text("ABMF00GLP")
        assert not page.problems, page.problems
