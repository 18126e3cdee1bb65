"""The explorer page in process: facet counts, filters changing counts, map data, histogram, htmx partial."""

from __future__ import annotations

import html
import json
import re

from tests.assets.seed import seed


def _count(page: str, facet: str, value: str) -> int:
    block = page.split(f'data-facet="{facet}"', 1)[1].split("</fieldset>", 1)[0]
    match = re.search(rf'value="{re.escape(value)}".*?<span class="count">([\d,]+)</span>', block, re.S)
    return int(match.group(1).replace(",", "")) if match else 0


def _locations(page: str) -> list:
    attribute = page.split('id="explorer-locations" hidden data-json="', 1)[1].split('"', 1)[0]
    return json.loads(html.unescape(attribute))


def test_explorer_shows_counts_that_follow_the_filters(admin, tmp_path):
    seed(admin.app, tmp_path)
    page = admin.get("/explorer").text
    assert 'aria-current="page">Explorer<' in page
    assert "1 – 20 of 62" in page
    assert _count(page, "station", "KIRU00SWE") == 20
    assert _count(page, "constellation", "GPS") == 30
    assert len(_locations(page)) == 4  # three stations and the JWST target
    assert page.count("<rect ") > 1  # the time histogram
    narrowed = admin.get("/explorer", params=[("station", "KIRU00SWE"), ("constellation", "GPS")]).text
    assert "1 – 10 of 10" in narrowed
    assert _count(narrowed, "constellation", "GLONASS") == 10  # counted under the station filter only
    assert _count(narrowed, "station", "ABMF00GLP") == 10  # counted under the constellation filter only
    assert _locations(narrowed) == [{"bbox": [20.968, 67.857, 20.968, 67.857], "count": 10}]


def test_map_selection_and_htmx_partial(admin, tmp_path):
    seed(admin.app, tmp_path)
    r = admin.get("/explorer", params={"bbox": "20.968,67.857,20.968,67.857"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "<html" not in r.text and "of 20" in r.text and "KIRU00SWE_R_2024010" in r.text
    bad = admin.get("/explorer", params={"bbox": "1,2,3"}).text
    assert "bbox needs 4 numbers" in bad


def test_explorer_needs_login(client):
    r = client.get("/explorer", follow_redirects=False)
    assert r.status_code in (302, 303, 401)
