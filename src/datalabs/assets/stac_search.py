"""STAC item search (GET and POST /stac/search, GET /stac/collections/{c}/items): parameters to an index
`Query`, and the result page as an ItemCollection with self/root/parent and next/prev links.

Paging is by offset, carried in an opaque `token` ('next:<offset>'); with an unchanged index every item
of a search appears on exactly one page. Sorting: `datetime` (either direction), the index's own orders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import shapely

from datalabs.assets import stac, stac_filter, stac_params
from datalabs.assets import where as w
from datalabs.assets.base import AssetRecord, Query
from datalabs.assets.params import MAX_WINDOW
from datalabs.assets.stac_fields import Selection
from datalabs.errors import BadRequest

GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}
SORTABLE = {"datetime", "properties.datetime"}
QUERY_KEYS = ("bbox", "datetime", "limit", "token", "ids", "collections", "sortby", "fields", "intersects")
QUERY_KEYS += ("filter", "filter-lang", "filter-crs")
CRS84 = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "https://www.opengis.net/def/crs/OGC/1.3/CRS84")


@dataclass
class Search:
    query: Query
    selection: Selection | None


def from_query_string(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The search parameters of a GET request (the last of a repeated one)."""
    return {k: v for k, v in pairs if k in QUERY_KEYS}


def parse(body: dict[str, Any], from_query_string: bool) -> Search:
    """The index query for a search request (GET parameters or POST body); a 400 for anything invalid."""
    get = from_query_string
    limit = stac_params.limit(body.get("limit"))
    offset = stac_params.token(body.get("token"))
    if offset + limit > MAX_WINDOW:
        raise BadRequest(f"paging stops at {MAX_WINDOW:,} items: narrow the search", code="bad_token")
    start, end = stac_params.interval(body.get("datetime"))
    if body.get("bbox") not in (None, "") and body.get("intersects") not in (None, ""):
        raise BadRequest("bbox and intersects cannot be used together", code="bad_bbox")
    where = []
    if body.get("intersects") not in (None, ""):
        where.append(w.Spatial("intersects", _geometry(body["intersects"], get)))
    if body.get("filter") not in (None, ""):
        if body.get("filter-crs") not in (None, *CRS84):
            raise BadRequest("filter-crs must be CRS84 (longitude, latitude)", code="bad_filter")
        parsed = stac_filter.parse(
            body["filter"], body.get("filter-lang"), "cql2-text" if get else "cql2-json"
        )
        where.append(stac_filter.translate(parsed))
    ids = stac_params.strings(body.get("ids"), "ids", get)
    collections = stac_params.strings(body.get("collections"), "collections", get)
    query = Query(
        start=start,
        end=end,
        bbox=stac_params.bbox(body.get("bbox"), get),
        ids=ids or None,
        collections=frozenset(collections) if collections else None,
        where=None if not where else where[0] if len(where) == 1 else w.And(tuple(where)),
        sort=_sort(stac_params.sortby(body.get("sortby"), get)),
        limit=limit,
        offset=offset,
        with_facets=False,
    )
    if "fields" not in body:
        return Search(query, None)
    include, exclude = stac_params.fields(body["fields"], get)
    if include is None and exclude is None:
        include = []  # `fields` given, but empty: the default set
    return Search(query, Selection(include, exclude))


def _sort(keys: list[tuple[str, bool]]) -> str:
    if not keys:
        return "date"
    if len(keys) > 1 or keys[0][0] not in SORTABLE:
        raise BadRequest("sortby: one key, 'datetime' (ascending or descending)", code="bad_sort")
    return "date" if keys[0][1] else "-date"


def _geometry(value, from_query_string: bool):
    if from_query_string and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequest("intersects must be a GeoJSON geometry", code="bad_intersects") from None
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        raise BadRequest("intersects must be a GeoJSON geometry", code="bad_intersects")
    try:
        return shapely.geometry.shape(value)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, shapely.errors.ShapelyError):
        raise BadRequest("intersects is not a valid GeoJSON geometry", code="bad_intersects") from None


def page(
    search: Search,
    records: list[AssetRecord],
    total: int,
    base_url: str,
    href: Callable[[AssetRecord], str],
    here: Here,
) -> dict[str, Any]:
    """The ItemCollection of one page."""
    features = [stac.item(r, href(r), base_url) for r in records]
    if search.selection is not None:
        features = [search.selection.apply(f) for f in features]
    q = search.query
    links = [here.link("self", None), {"rel": "root", "href": f"{base_url}/stac", "type": stac.JSON}]
    links.append(here.parent)
    if q.offset + q.limit < total:
        links.append(here.link("next", f"next:{q.offset + q.limit}"))
    if q.offset > 0:
        links.append(here.link("prev", f"next:{max(0, q.offset - q.limit)}"))
    return {
        "type": "FeatureCollection",
        "features": features,
        "links": links,
        "numberMatched": total,
        "numberReturned": len(features),
    }


@dataclass
class Here:
    """Where a page was asked: its URL (no query), GET parameters or POST body, and its parent link."""

    url: str
    method: str
    pairs: list[tuple[str, str]]
    body: dict[str, Any]
    parent: dict[str, str]

    def link(self, rel: str, token: str | None) -> dict[str, Any]:
        if self.method == "POST":
            body = {k: v for k, v in self.body.items() if k != "token"}
            if token is not None or "token" in self.body:
                body["token"] = token if token is not None else self.body["token"]
            return {"rel": rel, "href": self.url, "type": stac.GEOJSON, "method": "POST", "body": body}
        pairs = [(k, v) for k, v in self.pairs if k != "token" or token is None]
        if token is not None:
            pairs.append(("token", token))
        query = urlencode(pairs)
        return {"rel": rel, "href": f"{self.url}?{query}" if query else self.url, "type": stac.GEOJSON}
