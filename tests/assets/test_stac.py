"""STAC API: pystac-client against a real HTTP server (uvicorn) serving the app; plus filter edge cases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from pystac_client import Client

from tests.assets.seed import seed
from tests.live import free_port


@pytest.fixture
def stac_server(app, people, tmp_path) -> Iterator[tuple[str, dict]]:
    seed(app, tmp_path)
    people.user("ada")
    headers = people.token("ada", ["assets:read"])
    port = free_port()
    # The app's lifespan already runs under the `people` test client; uvicorn only serves HTTP here.
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", headers
    server.should_exit = True
    thread.join(10)


def test_pystac_client_lists_collections_and_searches(stac_server):
    base, headers = stac_server
    client = Client.open(f"{base}/stac", headers=headers)
    assert [c.id for c in client.get_collections()] == ["GsscOpen"]  # AstroSecret is not ada's
    search = client.search(
        collections=["GsscOpen"],
        bbox=[0, 40, 30, 70],
        datetime="2024-01-02T00:00:00Z/2024-01-05T00:00:00Z",
        filter="constellation = 'GPS' AND station IN ('KIRU00SWE', 'ABMF00GLP')",
        filter_lang="cql2-text",
        max_items=100,
        limit=2,  # several pages, followed through the next links
    )
    items = list(search.items())
    assert len(items) == 3  # Kiruna only (the bbox), GPS, 3 days
    assert {i.properties["station"] for i in items} == {"KIRU00SWE"}
    assert all(i.properties["constellation"] == "GPS" for i in items)
    assert items[0].datetime > items[-1].datetime
    assert items[0].assets["data"].href.startswith(f"{base}/api/v1/volumes/GsscOpen/files/obs/2024/")
    assert search.matched() == 3


def test_post_search_with_cql2_json_sort_and_fields(stac_server):
    base, headers = stac_server
    body = {
        "filter-lang": "cql2-json",
        "filter": {
            "op": "and",
            "args": [
                {"op": "=", "args": [{"property": "station"}, "ZIM200CHE"]},
                {
                    "op": "s_intersects",
                    "args": [
                        {"property": "geometry"},
                        {"type": "Polygon", "coordinates": [[[0, 40], [10, 40], [10, 50], [0, 40]]]},
                    ],
                },
            ],
        },
        "sortby": [{"field": "properties.datetime", "direction": "asc"}],
        "fields": {"include": ["properties.station"], "exclude": ["assets"]},
        "limit": 5,
    }
    r = httpx.post(f"{base}/stac/search", json=body, headers=headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["numberMatched"] == 20
    assert page["features"][0]["properties"]["datetime"].startswith("2024-01-01")
    assert set(page["features"][0]["properties"]) == {"station", "datetime"}
    assert "assets" not in page["features"][0]
    assert [link["rel"] for link in page["links"]] == ["root", "next"]
    assert page["links"][1]["body"]["token"] == "next:5"


@pytest.mark.parametrize(
    "filter_text",
    ["size > 3", "station = 'A' OR constellation = 'GPS'", "nonsense ((", "unknown_property = 'x'"],
)
def test_unsupported_or_bad_filters_are_clear_4xx(stac_server, filter_text):
    base, headers = stac_server
    r = httpx.get(f"{base}/stac/search", params={"filter": filter_text}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("bad_filter", "unsupported_filter")


def test_item_and_landing(stac_server):
    base, headers = stac_server
    landing = httpx.get(f"{base}/stac", headers=headers).json()
    assert {"conformance", "data", "search"} <= {link["rel"] for link in landing["links"]}
    item_id = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
    item = httpx.get(f"{base}/stac/collections/GsscOpen/items/{item_id}", headers=headers).json()
    assert item["id"] == item_id and item["geometry"]["type"] == "Point"
    assert httpx.get(f"{base}/stac", headers={}).status_code == 401
