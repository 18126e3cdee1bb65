"""STAC API against a real `datalabs serve` with 20,000 synthetic GNSS assets (issue 14, acceptance):
stac-api-validator reports no errors for core, collections, features, item-search, filter, sort and
fields; pystac-client pages through the whole search, each item once; every item is valid STAC.
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

pytestmark = pytest.mark.slow
COLLECTION = "GsscDataProducts"
ASSETS = 20_000
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


def test_pystac_client_pages_through_20000_items_each_once_and_all_valid(platform):
    base, token = platform
    headers = {"Authorization": f"Bearer {token}"}
    client = Client.open(f"{base}/stac", headers=headers)
    search = client.search(collections=[COLLECTION], limit=1000, sortby="-datetime")
    items = list(search.items_as_dicts())
    assert search.matched() == ASSETS
    ids = [i["id"] for i in items]
    assert len(ids) == ASSETS and len(set(ids)) == ASSETS
    dates = [i["properties"]["datetime"] for i in items]
    assert dates == sorted(dates, reverse=True)
    validator = pystac_validator(schemas(base, lambda url: httpx.get(url, timeout=10)))
    for item in items:
        validate_dict(item, validator=validator)
