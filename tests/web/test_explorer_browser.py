"""The explorer in a real browser (Debian's Chromium via Playwright) against `datalabs serve`: tick two
facets and watch the counts change, then pick a station on the map and see the results follow it; open
results in a REAL JupyterLab (bubblewrap sandbox): one in a lab launched from the dialog, one in that
lab once it runs, each time reading the file through the lab's own contents API."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from datalabs.assets.engine import BitmapIndex
from datalabs.assets.service import index_dir
from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.db.models import Volume
from tests.assets.seed import records
from tests.live import destroy_labs
from tests.web.test_browser import ADMIN, PASSWORD, _server, browser_page, log_in
from tests.web.test_browser_jupyterlab import BAD

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """The index, and data volume GsscOpen holding a small text file for each of its assets (indexed as
    text/plain, which the plain JupyterLab opens as a file; RINEX opens in JupyterLab GNSS as a notebook)."""
    home = tmp_path_factory.mktemp("explorer-home")
    archive = tmp_path_factory.mktemp("archive") / "GsscOpen"
    for record in records():
        if record.collection == "GsscOpen":
            (archive / record.path).parent.mkdir(parents=True, exist_ok=True)
            (archive / record.path).write_text(f"observations of {record.name}\n")
    texts = [replace(r, media_type="text/plain") if r.collection == "GsscOpen" else r for r in records()]
    BitmapIndex(index_dir(Settings(home=home))).ingest(texts)
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        db.add(Volume(name="GsscOpen", host_path=str(archive), allowed_groups=[]))
    engine.dispose()
    for base in _server(home):
        try:
            yield base
        finally:
            destroy_labs(base, ADMIN, PASSWORD)


def count_of(page, facet: str, value: str):
    return page.locator(f'fieldset[data-facet="{facet}"] li').filter(has_text=value).locator(".count")


def test_filter_by_two_facets_then_pick_a_station_on_the_map(server):
    with browser_page(server) as page:
        page.goto("/explorer")
        log_in(page, ADMIN, PASSWORD)
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


def open_result(page, name: str) -> None:
    page.goto("/explorer?" + f"q={quote(name)}")
    expect(page.locator("#result-count")).to_contain_text("1 – 1 of 1")
    page.get_by_role("link", name=f"Open {name} in a datalab").click()
    expect(page.locator("#open-dialog")).to_be_visible()


def expect_file_in_lab(page, name: str) -> str:
    """JupyterLab opened the file in place on the mounted volume (its editor shows the text), and the lab
    itself serves it from there."""
    page.wait_for_url(
        re.compile(rf"/datalabs/[0-9a-f]+/lab/tree/data/GsscOpen/.*{re.escape(name)}$"), timeout=120_000
    )
    lab_path = re.search(r"/datalabs/[0-9a-f]+/", page.url)[0]
    in_lab = page.url.split("/lab/tree/", 1)[1]
    expect(page.locator(".jp-FileEditor .cm-content").first).to_contain_text(
        f"observations of {name}", timeout=60_000
    )
    # Asked from the lab's page, as JupyterLab does: the lab is on its own origin (a *.localhost name
    # only the browser resolves), entered with the lab cookie.
    status, body = page.evaluate(
        "async (url) => { const r = await fetch(url); return [r.status, await r.json()]; }",
        f"{lab_path}api/contents/{in_lab}?content=1",
    )
    assert status == 200, status
    assert body["content"] == f"observations of {name}\n"
    return lab_path


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_open_results_in_a_launched_then_a_running_jupyterlab(server):
    first = "ZIM200CHE_R_20240100000_01D_30S_GO.crx.gz"
    second = "KIRU00SWE_R_20240050000_01D_30S_RO.crx.gz"
    with browser_page(server) as page:
        page.goto("/explorer")
        log_in(page, ADMIN, PASSWORD)

        # No lab yet: launch a JupyterLab from the dialog, in a new tab; its start page goes on to the file.
        open_result(page, first)
        expect(page.locator("#open-dialog")).to_contain_text("None of your running labs opens this file.")
        with page.context.expect_page() as opened:
            page.locator("#open-dialog").get_by_role("button", name="Launch JupyterLab", exact=True).click()
        lab_path = expect_file_in_lab(opened.value, first)
        expect(page.locator("#open-dialog")).to_be_visible()  # the explorer's tab stays as it was

        # The lab runs now: open another result in it.
        open_result(page, second)
        with page.context.expect_page() as opened:
            page.locator("#open-dialog").get_by_role("button", name="Open in JupyterLab").click()
        assert expect_file_in_lab(opened.value, second) == lab_path
        assert [p for p in page.problems if BAD.match(p)] == []
