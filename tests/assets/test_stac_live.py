"""STAC API against a real `datalabs serve` with 20,000 synthetic GNSS assets (issue 14, acceptance):
stac-api-validator reports no errors for core, collections, features, item-search, filter, sort and
fields; pystac-client follows every `next` link of the whole collection's search to its end, each of the
20,000 items once and in order, and of a narrower search in small pages, whose items joined are exactly
the search's one-page answer, every one valid STAC.
All offline: the schemas validators fetch are served from this machine (tests/assets/stac_offline.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pystac.validation import validate_dict
from pystac_client import Client

from datalabs.config import Settings
from datalabs.db.engine import open_database, transaction
from datalabs.db.models import Volume
from tests.assets.stac_offline import SchemaProxy, pystac_validator, schemas
from tests.cli.test_cli import run
from tests.live import live_server

# One worker builds the 20,000-asset platform once for the module (xdist would spread the tests).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stac-live")]
COLLECTION = "GsscDataProducts"
ASSETS = 20_000
WINDOW = "2026-10-30T22:00:00Z/2026-10-31T00:59:59Z"  # 3 hours of the synthetic files, midnight inside
VALIDATOR = str(Path(sys.executable).parent / "stac-api-validator")
CLASSES = [
    "core",
    "collections",
    "features",
    "item-search",
    "filter",
    "item-search#sort",
    "item-search#fields",
]
EUROPE = {"type": "Polygon", "coordinates": [[[0, 40], [30, 40], [30, 70], [0, 70], [0, 40]]]}


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(base URL, token of a user who may read the synthetic volume)."""
    home = tmp_path_factory.mktemp("stac-home")
    run(home, "admin", "create-user", "ada", "--password", "long-enough-pw")
    listing = home / "listing.txt"
    run(
        home,
        "assets",
        "synth",
        "--n",
        str(ASSETS),
        "--out",
        str(listing),
        "--ingest",
        "--collection",
        COLLECTION,
    )
    (home / COLLECTION).mkdir()
    engine, sessions = open_database(Settings(home=home).database_url)
    with transaction(sessions) as db:
        db.add(Volume(name=COLLECTION, host_path=str(home / COLLECTION), allowed_groups=[]))
    engine.dispose()
    token = run(home, "admin", "create-token", "ada", "--scopes", "assets:read").stdout.strip()
    with live_server(home) as base:
        yield base, token


def test_stac_api_validator_reports_no_errors(platform, tmp_path):
    base, token = platform
    args = [
        VALIDATOR,
        "--root-url",
        f"{base}/stac",
        "--collection",
        COLLECTION,
        "--geometry",
        json.dumps(EUROPE),
    ]
    args += [a for c in CLASSES for a in ("--conformance", c)]
    args += [
        "--fields-nested-property",
        "properties.datalabs:station",
        "-H",
        f"Authorization: Bearer {token}",
    ]
    with SchemaProxy(schemas(base), tmp_path) as proxy:
        done = subprocess.run(
            args, env={**os.environ, **proxy.env()}, capture_output=True, text=True, timeout=600
        )
    report = done.stdout + done.stderr
    assert "Errors: none" in report and done.returncode == 0, report[-20000:]
    assert not proxy.misses, f"fetched from the network: {proxy.misses}"


def test_pystac_client_pages_through_all_20000_items_each_once_in_order(platform):
    """The whole collection at the server's largest page (1,000): 20 pages, every `next` link followed to
    the end. Only ids and dates are asked for (the fields extension): the paging is the same, and the
    items' validity is the next test's."""
    base, token = platform
    client = Client.open(f"{base}/stac", headers={"Authorization": f"Bearer {token}"})
    search = client.search(
        collections=[COLLECTION], limit=1000, sortby="-datetime", fields=["id", "properties.datetime"]
    )
    pages = list(search.pages_as_dicts())
    assert [len(page["features"]) for page in pages] == [1000] * 20
    assert all(page["numberMatched"] == ASSETS for page in pages)
    items = [item for page in pages for item in page["features"]]
    ids = [i["id"] for i in items]
    assert len(ids) == ASSETS and len(set(ids)) == ASSETS
    dates = [i["properties"]["datetime"] for i in items]
    assert dates == sorted(dates, reverse=True)


def test_pystac_client_pages_a_search_in_small_pages_each_item_once_and_all_valid(platform):
    """A search of ~1,000 items around midnight (the daily files all start at 00:00: page boundaries
    fall inside runs of equal dates) in pages of 40: the pages joined are exactly its one-page answer,
    in the same order, and every item is valid STAC."""
    base, token = platform
    client = Client.open(f"{base}/stac", headers={"Authorization": f"Bearer {token}"})
    query = {"collections": [COLLECTION], "sortby": "-datetime", "datetime": WINDOW}
    whole = client.search(limit=1000, **query)
    expected = [i["id"] for page in whole.pages_as_dicts() for i in page["features"]]
    assert whole.matched() == len(expected) and 500 < len(expected) < 1000  # one page holds it all

    search = client.search(limit=40, **query)
    pages = list(search.pages_as_dicts())
    sizes = [len(page["features"]) for page in pages]
    assert len(pages) == -(-len(expected) // 40) and sizes[:-1] == [40] * (len(pages) - 1)
    items = [item for page in pages for item in page["features"]]
    assert [i["id"] for i in items] == expected
    dates = [i["properties"]["datetime"] for i in items]
    assert dates == sorted(dates, reverse=True)
    assert max(dates.count(d) for d in set(dates)) > 40  # a run of equal dates spans pages
    validator = pystac_validator(schemas(base, lambda url: httpx.get(url, timeout=10)))
    for item in items:
        validate_dict(item, validator=validator)
