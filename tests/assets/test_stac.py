"""STAC API 1.0 in process: status codes, datetime and bbox grammar, CQL2, fields, sort, paging, links,
one STAC version, the Datalabs and File extensions, queryables. The seed (tests/assets/seed.py): 60 files
of GsscOpen that ada may see (10 days x KIRU00SWE/ZIM200CHE/ABMF00GLP x GPS/GLONASS), plus files of
collections she may not see. The live suites: test_stac_live.py (pystac-client, stac-api-validator)."""

from __future__ import annotations

import pytest
from pystac.validation import validate_dict

from datalabs.assets import stac
from datalabs.assets.base import AssetRecord
from tests.assets.seed import T0, seed
from tests.assets.stac_offline import pystac_validator, schemas

ITEM = "GsscOpen:obs/2024/001/ABMF00GLP_R_20240010000_01D_30S_GO.crx.gz"
VALID_DATETIMES = [  # stac-api-validator's list
    "1985-04-12T23:20:50.52Z",
    "1996-12-19T16:39:57-08:00",
    "../1985-04-12T23:20:50.52Z",
    "1985-04-12T23:20:50.52Z/..",
    "/1985-04-12T23:20:50.52Z",
    "1985-04-12T23:20:50.52Z/",
    "1985-04-12T23:20:50.52+01:00/1986-04-12T23:20:50.52+01:00",
    "1985-04-12t23:20:50.000z",
    "2020-07-23T00:00:00.012345678Z",
    "1990-12-31T23:59:60Z",
]
INVALID_DATETIMES = ["/", "../..", "/..", "../", "a/b/c", "1984-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z/"]
INVALID_DATETIMES += [
    "1985-04-12",
    "1937-01-01T12:00:27.87+0100",
    "1985-12-12T23:20:50.52",
    "1985-13-12T23:20:50Z",
]
INVALID_DATETIMES += [
    "1985-12-01T25:20:50Z",
    "1990-12-31T23:59:61Z",
    "1985-04-12T23:20:50.Z",
    "2024-02-30T00:00:00Z",
]
INVALID_DATETIMES += ["1986-04-12T23:20:50.52Z/1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50,52Z"]


@pytest.fixture
def db_url(tmp_path, sqlite_template):  # STAC reads the index, not the database: SQLite is enough here
    import shutil

    shutil.copy(sqlite_template, tmp_path / "datalabs.db")
    return f"sqlite:///{tmp_path / 'datalabs.db'}"


@pytest.fixture
def api(app, people, client, tmp_path):
    seed(app, tmp_path)
    app.state.assets.index.ingest(
        [  # near the antimeridian, and one footprint across it
            AssetRecord(
                collection="GsscOpen", path="pacific/east.txt", start=T0, bbox=(179.5, -17, 179.5, -17)
            ),
            AssetRecord(
                collection="GsscOpen", path="pacific/west.txt", start=T0, bbox=(-179.5, -17, -179.5, -17)
            ),
            AssetRecord(collection="GsscOpen", path="pacific/both.txt", start=T0, bbox=(178, -20, -178, -10)),
        ]
    )
    people.user("ada")
    client.headers.update(people.token("ada", ["assets:read"]))
    return client


def ids(page: dict) -> list[str]:
    return [f["id"] for f in page["features"]]


def test_landing_page_links_and_one_stac_version(api):
    landing = api.get("/stac").json()
    assert (
        landing["stac_version"] == stac.STAC_VERSION
        and api.get("/stac").headers["content-type"] == "application/json"
    )
    search = [link for link in landing["links"] if link["rel"] == "search"]
    assert sorted(link["method"] for link in search) == ["GET", "POST"]
    desc = next(link for link in landing["links"] if link["rel"] == "service-desc")
    served = api.get(desc["href"], headers={"Accept": desc["type"]})
    assert served.status_code == 200 and served.headers["content-type"] == desc["type"]
    assert desc["type"].startswith("application/vnd.oai.openapi+json;version=3.")
    assert served.json()["paths"]["/stac/search"]
    item = api.get(f"/stac/collections/GsscOpen/items/{ITEM}").json()
    collection = api.get("/stac/collections/GsscOpen").json()
    assert item["stac_version"] == collection["stac_version"] == stac.STAC_VERSION
    assert api.get("/stac/conformance").json()["conformsTo"] == landing["conformsTo"]
    anonymous = {"Authorization": ""}  # the documents that describe the API are public, the API is not
    assert api.get("/stac", headers=anonymous).status_code == 401
    assert api.get("/stac/api", headers=anonymous).status_code == 200
    assert api.get(stac.EXTENSION_PATH, headers=anonymous).status_code == 200


@pytest.mark.parametrize(
    "params",
    [{"limit": v} for v in ("-1", "0", "abc", "1.5")]
    + [
        {"bbox": v}
        for v in ("[100.0, 0.0, 105.0, 1.0]", "100.0,1.0,105.0,0.0", "0", "0,0,0", "0,0,0,1,1", "0,0,200,1")
    ]
    + [{"bbox": "0,0,1,1", "intersects": '{"type": "Point", "coordinates": [0, 0]}'}]
    + [
        {"intersects": v}
        for v in ("nonsense", '{"type": "Feature"}', '{"type": "Point", "coordinates": "x"}')
    ]
    + [{"datetime": v} for v in INVALID_DATETIMES]
    + [{"token": "bogus"}, {"sortby": "title"}, {"sortby": "-datetime,id"}, {"filter": "nonsense (("}]
    + [{"filter": "title = 'x'"}, {"filter": "id < 'x'"}, {"filter-lang": "sql", "filter": "id = 'x'"}],
)
def test_bad_get_parameters_are_400(api, params):
    r = api.get("/stac/search", params=params)
    assert r.status_code == 400, (params, r.text)
    assert r.json()["error"]["code"].startswith(("bad_", "unsupported_"))


@pytest.mark.parametrize(
    "body",
    [
        {"limit": -1},
        {"limit": "ten"},
        {"limit": True},
        {"bbox": "100.0, 0.0, 105.0, 1.0"},
        {"bbox": [100, 1, 105, 0]},
    ]
    + [{"bbox": [0, 0, 1, 1], "intersects": {"type": "Point", "coordinates": [0, 0]}}, {"fields": None}]
    + [
        {"fields": {"include": "id"}},
        {"datetime": 5},
        {"ids": [1]},
        {"sortby": [{"field": "datetime", "direction": "up"}]},
    ]
    + [{"filter": "id = 'x'"}, {"filter": {"op": "=", "args": [{"property": "datalabs:station"}, 3]}}],
)
def test_bad_post_bodies_are_400(api, body):
    r = api.post("/stac/search", json=body)
    assert r.status_code == 400, (body, r.text)


def test_bodies_that_are_not_json_objects_are_400(api):
    assert api.post("/stac/search", content=b"{nope").status_code == 400
    assert api.post("/stac/search", json=[1, 2]).status_code == 400


def test_valid_datetimes_and_their_meaning(api):
    for value in VALID_DATETIMES:
        assert api.get("/stac/search", params={"datetime": value}).status_code == 200, value
    day = lambda d: f"2024-01-{d:02d}T00:00:00Z"  # noqa: E731
    count = lambda value: api.get("/stac/search", params={"datetime": value}).json()["numberMatched"]  # noqa: E731
    assert count(day(1)) == 6 + 3  # the six daily files of Jan 1 and the three Pacific files
    assert count(f"{day(2)}/{day(4)}") == 18  # closed: both ends included
    assert count(f"../{day(1)}") == 9 and count(f"{day(10)}/..") == 6
    assert count("2024-01-01T00:00:00.5Z") == 0  # files are dated to the second: none at this instant
    assert count("2024-01-01T01:00:00+01:00") == 9  # the same instant as midnight UTC


def test_limits_are_clamped_and_paging_walks_every_item_once(api):
    assert len(api.get("/stac/search", params={"limit": 1_000_000}).json()["features"]) == 63
    seen, url, pages = [], "/stac/search?limit=7&sortby=%2Bdatetime", 0
    while url:
        page = api.get(url).json()
        rels = {link["rel"]: link for link in page["links"]}
        assert {"self", "root", "parent"} <= set(rels) and rels["self"]["href"].endswith(
            url.split("/stac")[-1]
        )
        assert ("prev" in rels) == (pages > 0)
        seen += ids(page)
        url, pages = rels.get("next", {}).get("href", ""), pages + 1
    assert len(seen) == len(set(seen)) == 63 and pages == 9
    body, seen = {"limit": 25, "collections": ["GsscOpen"]}, []
    while body is not None:
        page = api.post("/stac/search", json=body).json()
        seen += ids(page)
        nxt = next((link for link in page["links"] if link["rel"] == "next"), None)
        assert nxt is None or (nxt["method"] == "POST" and nxt["body"]["collections"] == ["GsscOpen"])
        body = nxt and nxt["body"]
    assert len(set(seen)) == 63


def test_bbox_and_intersects_including_the_antimeridian(api):
    def found(**params):
        return sorted(
            i.rsplit("/", 1)[-1] for i in ids(api.get("/stac/search", params=params | {"limit": 100}).json())
        )

    assert found(bbox="170,-50,-170,50") == ["both.txt", "east.txt", "west.txt"]
    assert found(bbox="-170,-30,170,-5") == []  # the rest of the world at their latitudes: none of them
    assert found(bbox="179.6,-50,180,50") == ["both.txt"]  # only the footprint that crosses
    assert len(found(bbox="0,40,-10,30,70,100")) == 40  # 3D: heights ignored; Kiruna and Zimmerwald
    polygon = '{"type": "Polygon", "coordinates": [[[7, 46], [8, 47], [7, 47], [7, 46]]]}'
    assert len(found(intersects=polygon)) == 20  # Zimmerwald (7.465, 46.877) lies inside the triangle
    triangle = '{"type": "Polygon", "coordinates": [[[7, 46], [8, 46], [8, 47], [7, 46]]]}'
    assert found(intersects=triangle) == []  # its bbox holds Zimmerwald, the triangle does not
    both = api.get("/stac/search", params={"ids": "GsscOpen:pacific/both.txt"}).json()["features"][0]
    assert both["geometry"]["type"] == "MultiPolygon" and both["bbox"] == [178, -20, -178, -10]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("datalabs:station = 'KIRU00SWE'", 20),
        ("datalabs:station <> 'KIRU00SWE'", 40),  # files without a station are unknown, not unequal
        ("datalabs:station < 'B'", 20),
        ("datalabs:station LIKE 'KI%' OR datalabs:station LIKE '%CHE'", 40),
        ("NOT datalabs:constellation = 'GPS'", 30),
        ("datalabs:station = 'KIRU00SWE' OR datalabs:constellation = 'GPS'", 40),
        ("A_CONTAINS(datalabs:constellation, ('GPS', 'GLONASS'))", 0),
        ("A_OVERLAPS(datalabs:constellation, ('GPS', 'GLONASS'))", 60),
        ("datalabs:station IS NULL", 3),
        ("geometry IS NULL", 0),
        (f"id = '{ITEM}'", 1),
        (f"NOT id = '{ITEM}' AND collection = 'GsscOpen'", 62),
        ("collection <> 'GsscOpen'", 0),
        ("collection >= 'GsscOpen' AND collection <= 'GsscOpen'", 63),
        ("datetime = TIMESTAMP('2024-01-01T00:00:00Z')", 9),
        ("datetime > TIMESTAMP('2024-01-09T00:00:00Z')", 6),
        ("datetime <= DATE('2024-01-02')", 15),
        ("T_INTERSECTS(datetime, INTERVAL('2024-01-09T00:00:00Z', '..'))", 12),
        ("T_DURING(datetime, INTERVAL('2024-01-01T00:00:00Z', '2024-01-03T00:00:00Z'))", 6),
        ("S_INTERSECTS(geometry, BBOX(0, 40, 30, 70))", 40),
        ("S_INTERSECTS(geometry, POINT(-178.5 -15))", 1),
        ("eo:cloud_cover < 10", 0),  # a property no item has: null, so unknown everywhere
        ("NOT eo:cloud_cover < 10", 0),
        ("eo:cloud_cover < 10 OR eo:cloud_cover IS NULL", 63),
    ],
)
def test_cql2_text_filters(api, text, want):
    r = api.get("/stac/search", params={"filter": text, "limit": 1})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == want


def test_cql2_json_in_post_and_get(api):
    station = {"op": "=", "args": [{"property": "properties.datalabs:station"}, "ZIM200CHE"]}
    when = {"op": ">=", "args": [{"property": "datetime"}, {"timestamp": "2024-01-05T00:00:00Z"}]}
    body = {"filter": {"op": "and", "args": [station, when]}, "limit": 1}
    assert api.post("/stac/search", json=body).json()["numberMatched"] == 12
    text = {"filter": "datalabs:station = 'ZIM200CHE'", "filter-lang": "cql2-text"}
    assert api.post("/stac/search", json=text).json()["numberMatched"] == 20
    import json

    params = {"filter": json.dumps(station), "filter-lang": "cql2-json"}
    assert api.get("/stac/search", params=params).json()["numberMatched"] == 20


def test_sort(api):
    def dates(page):
        return [f["properties"]["datetime"] for f in page["features"]]

    ascending = dates(api.get("/stac/search", params={"sortby": "+properties.datetime", "limit": 100}).json())
    assert ascending == sorted(ascending) and ascending[0] < ascending[-1]
    desc = dates(api.get("/stac/search", params={"sortby": "-datetime", "limit": 100}).json())
    assert desc == sorted(desc, reverse=True)
    body = {"sortby": [{"field": "properties.datetime", "direction": "asc"}], "limit": 100}
    assert dates(api.post("/stac/search", json=body).json()) == ascending


@pytest.mark.parametrize(
    ("fields", "keys", "properties"),
    [
        ("", {*stac.ITEM_KEYS}, {"datetime"}),  # the default set
        ("-geometry", stac.ITEM_KEYS - {"geometry"}, None),  # everything but
        ("type", {"type", "stac_version", "id", "collection"}, None),
        ("+geometry,-geometry", {"type", "stac_version", "id", "collection", "geometry"}, None),
        (
            "-properties,+properties.datalabs:station",
            {"type", "stac_version", "id", "collection", "properties"},
            {"datalabs:station"},
        ),
        (
            "properties,-properties.datalabs:path",
            {"type", "stac_version", "id", "collection", "properties"},
            "no path",
        ),
    ],
)
def test_fields_get(api, fields, keys, properties):
    item = api.get("/stac/search", params={"fields": fields, "limit": 1}).json()["features"][0]
    assert set(item) == keys
    if properties == "no path":
        assert "datalabs:path" not in item["properties"] and "datalabs:station" in item["properties"]
    elif properties is not None:
        assert set(item["properties"]) == properties
    else:
        assert "properties" not in item or "datalabs:path" in item["properties"]


def test_fields_post(api):
    def first(fields):
        body = {"fields": fields, "limit": 1, "collections": ["GsscOpen"]}
        return api.post("/stac/search", json=body).json()["features"][0]

    default = first({})
    assert set(default) == stac.ITEM_KEYS and set(default["properties"]) == {"datetime"}
    assert first({"include": None, "exclude": None}) == first({"include": [], "exclude": []}) == default
    assert "datalabs:station" in first({"exclude": ["geometry"]})["properties"]  # no include: everything else
    assert set(first({"exclude": ["geometry"], "include": []})["properties"]) == {"datetime"}
    narrow = first({"exclude": ["properties"], "include": ["properties.datalabs:station"]})
    assert len(narrow) == 5 and set(narrow["properties"]) == {"datalabs:station"}


def test_items_and_collections_are_valid_stac_with_their_extensions(api):
    item = api.get(f"/stac/collections/GsscOpen/items/{ITEM}").json()
    assert item["stac_extensions"] == [stac.FILE_EXTENSION, "http://testserver" + stac.EXTENSION_PATH]
    assert (
        item["properties"]["datalabs:constellation"] == ["GPS"]
        and item["assets"]["data"]["file:size"] == 1000
    )
    rels = {link["rel"]: link["href"] for link in item["links"]}
    assert rels["self"] == f"http://testserver/stac/collections/GsscOpen/items/{ITEM}"
    assert rels["parent"] == rels["collection"] == "http://testserver/stac/collections/GsscOpen"
    anonymous = lambda url: api.get(url, headers={"Authorization": ""})  # noqa: E731 (schemas are public)
    validator = pystac_validator(schemas("http://testserver", anonymous))
    validate_dict(item, validator=validator)
    validate_dict(api.get("/stac/collections/GsscOpen").json(), validator=validator)
    validate_dict(api.get("/stac").json(), validator=validator)
    broken = item | {"properties": item["properties"] | {"datalabs:constellation": "GPS"}}
    with pytest.raises(Exception, match="Validation failed"):
        validate_dict(broken, validator=validator)  # the extension's schema does hold arrays to arrays


def test_collections_queryables_and_not_found(api):
    collections = api.get("/stac/collections").json()
    assert [c["id"] for c in collections["collections"]] == ["GsscOpen"]  # AstroSecret is not ada's
    assert {link["rel"] for link in collections["links"]} >= {"self", "root"}
    queryables = api.get("/stac/queryables")
    assert queryables.headers["content-type"] == "application/schema+json"
    body = queryables.json()
    assert body["$id"] == "http://testserver/stac/queryables" and body["additionalProperties"] is True
    assert {f"datalabs:{f}" for f in stac.ITEM_FACETS} | {"id", "collection", "datetime", "geometry"} == set(
        body["properties"]
    )
    mine = api.get("/stac/collections/GsscOpen/queryables").json()
    assert mine["$id"] == "http://testserver/stac/collections/GsscOpen/queryables"
    for url in (
        "/stac/collections/AstroSecret",
        "/stac/collections/nope/items",
        "/stac/collections/nope/queryables",
    ):
        assert api.get(url).status_code == 404, url
    assert api.get("/stac/collections/GsscOpen/items/GsscOpen:nope").status_code == 404
    items = api.get("/stac/collections/GsscOpen/items", params={"limit": 2}).json()
    rels = {link["rel"]: link["href"] for link in items["links"]}
    assert rels["parent"] == "http://testserver/stac/collections/GsscOpen" and "limit=2" in rels["self"]
