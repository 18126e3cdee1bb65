"""STAC views of the asset index: the landing page, items, collections, queryables and the Datalabs
extension that says how facets appear in items. One STAC version everywhere (`STAC_VERSION`, the one
pystac writes and ships schemas of); the API speaks STAC API 1.0 (`CONFORMANCE`).

Items are built as plain dicts (a page holds up to 1,000 of them; pystac models cost ~10x more), and
the tests validate them with pystac against the STAC schemas.

The Datalabs extension (`EXTENSION`, schema served at `extension_url`): every facet is an item property
`datalabs:<facet>` holding an array of strings, because a file may observe several constellations,
satellites or codes, and the common metadata names (`constellation`, `mission`) are single strings;
`datalabs:path` is the file's path in its data volume. Assets carry `file:size` (File Info extension).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from datalabs.assets.base import FACETS, AssetRecord
from datalabs.assets.stac_filter import PREFIX

STAC_VERSION = "1.1.0"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
EXTENSION_PATH = "/stac/extensions/datalabs/v1.0.0/schema.json"
GEOJSON = "application/geo+json"
JSON = "application/json"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
ITEM_FACETS = tuple(f for f in FACETS if f != "collection")  # the collection is the item's own member
ITEM_KEYS = frozenset(
    {"type", "stac_version", "stac_extensions", "id", "geometry", "bbox", "properties", "links", "assets"}
    | {"collection"}
)
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0-rc.3/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/array-functions",
]


def extension_url(base_url: str) -> str:
    return base_url + EXTENSION_PATH


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def geometry(bbox) -> dict | None:
    """A file's footprint as GeoJSON: a Point, a Polygon, or a MultiPolygon across the antimeridian."""
    if bbox is None:
        return None
    w, s, e, n = bbox
    if (w, s) == (e, n):
        return {"type": "Point", "coordinates": [w, s]}
    if w > e:
        parts = [_ring(w, s, 180.0, n), _ring(-180.0, s, e, n)]
        return {"type": "MultiPolygon", "coordinates": [[p] for p in parts]}
    return {"type": "Polygon", "coordinates": [_ring(w, s, e, n)]}


def _ring(w: float, s: float, e: float, n: float) -> list:
    return [[w, s], [e, s], [e, n], [w, n], [w, s]]


def item_url(base_url: str, record: AssetRecord) -> str:
    return f"{collection_url(base_url, record.collection)}/items/{quote(record.id, safe='/:')}"


def collection_url(base_url: str, name: str) -> str:
    return f"{base_url}/stac/collections/{quote(name, safe='')}"


def item(record: AssetRecord, href: str, base_url: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"datetime": iso(record.date)}
    if record.start and record.end:
        properties.update(start_datetime=iso(record.start), end_datetime=iso(record.end))
    if record.title:
        properties["title"] = record.title
    properties[f"{PREFIX}path"] = record.path
    for facet in ITEM_FACETS:
        if record.facets.get(facet):
            properties[f"{PREFIX}{facet}"] = list(record.facets[facet])
    parent = collection_url(base_url, record.collection)
    out: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [FILE_EXTENSION, extension_url(base_url)],
        "id": record.id,
        "geometry": geometry(record.bbox),
    }
    if record.bbox:
        out["bbox"] = list(record.bbox)
    out["properties"] = properties
    out["links"] = [
        {"rel": "self", "href": item_url(base_url, record), "type": GEOJSON},
        {"rel": "parent", "href": parent, "type": JSON},
        {"rel": "collection", "href": parent, "type": JSON},
        {"rel": "root", "href": f"{base_url}/stac", "type": JSON},
    ]
    data = {"href": base_url + href, "type": record.media_type, "title": record.name, "roles": ["data"]}
    out["assets"] = {"data": data | {"file:size": int(record.size)}}
    out["collection"] = record.collection
    return out


def collection(name: str, total: int, first: datetime | None, last: datetime | None, base_url: str) -> dict:
    url = collection_url(base_url, name)
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "id": name,
        "description": f"Assets of data volume {name} ({total:,} files)",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[first and iso(first), last and iso(last)]]},
        },
        "links": [
            {"rel": "self", "href": url, "type": JSON},
            {"rel": "items", "href": f"{url}/items", "type": GEOJSON},
            {"rel": QUERYABLES_REL, "href": f"{url}/queryables", "type": "application/schema+json"},
            {"rel": "parent", "href": f"{base_url}/stac", "type": JSON},
            {"rel": "root", "href": f"{base_url}/stac", "type": JSON},
        ],
    }


def landing(base_url: str, openapi_type: str) -> dict:
    def link(rel: str, path: str, media: str, **extra) -> dict:
        return {"rel": rel, "href": base_url + path, "type": media, **extra}

    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "datalabs",
        "title": "Datalabs assets",
        "description": "Archived files of the data volumes you may use",
        "conformsTo": CONFORMANCE,
        "links": [
            link("self", "/stac", JSON),
            link("root", "/stac", JSON),
            link("conformance", "/stac/conformance", JSON),
            link("data", "/stac/collections", JSON),
            link("search", "/stac/search", GEOJSON, method="GET"),
            link("search", "/stac/search", GEOJSON, method="POST"),
            link(QUERYABLES_REL, "/stac/queryables", "application/schema+json"),
            link("service-desc", "/stac/api", openapi_type),
            link("service-doc", "/api/docs", "text/html"),
        ],
    }


def queryables(url: str, title: str) -> dict:
    """The filter's queryables; other names are allowed and are null on every item (STAC filter ext.)."""
    props: dict[str, Any] = {
        "id": {"title": "Item id", "type": "string"},
        "collection": {"title": "Collection (data volume)", "type": "string"},
        "datetime": {
            "title": "Observation start (else the file's time)",
            "type": "string",
            "format": "date-time",
        },
        "geometry": {"title": "Footprint", "$ref": "https://geojson.org/schema/Geometry.json"},
    }
    for facet in ITEM_FACETS:
        props[f"{PREFIX}{facet}"] = {
            "title": facet.replace("_", " ").capitalize(),
            "description": "An array: =, <, LIKE, IN... hold when one value does; A_* compare arrays",
            "type": "array",
            "items": {"type": "string"},
        }
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "properties": props,
        "additionalProperties": True,
    }


def extension_schema(base_url: str) -> dict:
    """JSON Schema of the Datalabs extension for items (the STAC extension template's layout)."""
    facets = {
        f"{PREFIX}{f}": {
            "title": f.replace("_", " ").capitalize(),
            "type": "array",
            "minItems": 1,
            "items": {"type": "string"},
        }
        for f in ITEM_FACETS
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": extension_url(base_url) + "#",
        "title": "Datalabs Extension",
        "description": "Datalabs facets of an archived file, each an array of strings, and its path.",
        "type": "object",
        "required": ["type", "stac_extensions", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "stac_extensions": {"type": "array", "contains": {"const": extension_url(base_url)}},
            "properties": {
                "type": "object",
                "required": [f"{PREFIX}path"],
                "properties": {
                    f"{PREFIX}path": {"title": "Path in the data volume", "type": "string"},
                    **facets,
                },
                "patternProperties": {f"^(?!{PREFIX})": {}},
                "additionalProperties": False,
            },
        },
    }
