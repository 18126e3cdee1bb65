"""STAC 1.0 views of the asset index: items and collections as pystac models, and CQL2 filters
(text or JSON, parsed by pygeofilter) translated into index queries.

Supported CQL2: AND of comparisons; `=`, `IN` and OR of `=` on one facet property (a file matches
if any of its values does); `LIKE` on `id`/`name`/`filename` (becomes a text search); `<`, `<=`,
`>`, `>=`, `BETWEEN` and T_* operators on `datetime`; S_INTERSECTS/S_WITHIN with a geometry on
`geometry` (its bounding box). Anything else is refused with a clear message, never approximated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pystac
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from datalabs.assets.base import FACETS, AssetRecord, Query
from datalabs.assets.params import instant
from datalabs.errors import Invalid

TEXT_PROPERTIES = {"id", "name", "filename", "path"}
TIME_PROPERTIES = {"datetime", "start_datetime"}
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
]


def geometry(bbox) -> dict | None:
    if bbox is None:
        return None
    w, s, e, n = bbox
    if (w, s) == (e, n):
        return {"type": "Point", "coordinates": [w, s]}
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def item(record: AssetRecord, href: str, base_url: str) -> dict[str, Any]:
    properties: dict[str, Any] = {k: list(v) if len(v) > 1 else v[0] for k, v in record.facets.items()}
    properties.update(title=record.title or record.name, filename=record.name, path=record.path)
    if record.start and record.end:
        properties.update(start_datetime=_iso(record.start), end_datetime=_iso(record.end))
    model = pystac.Item(
        id=record.id,
        geometry=geometry(record.bbox),
        bbox=list(record.bbox) if record.bbox else None,
        datetime=record.date,
        properties=properties,
        collection=record.collection,
    )
    model.add_asset(
        "data",
        pystac.Asset(
            href=base_url + href,
            media_type=record.media_type,
            roles=["data"],
            extra_fields={"file:size": record.size},
        ),
    )
    data = model.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {
            "rel": "self",
            "href": f"{base_url}/stac/collections/{record.collection}/items/{record.id}",
            "type": "application/geo+json",
        },
        {"rel": "collection", "href": f"{base_url}/stac/collections/{record.collection}"},
        {"rel": "parent", "href": f"{base_url}/stac/collections/{record.collection}"},
        {"rel": "root", "href": f"{base_url}/stac"},
    ]
    return data


def collection(name: str, total: int, first: datetime | None, last: datetime | None, base_url: str) -> dict:
    extent = pystac.Extent(
        pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent([[first, last]])
    )
    model = pystac.Collection(
        id=name,
        description=f"Assets of data volume {name} ({total:,} files)",
        extent=extent,
        license="other",
        extra_fields={"assets_count": total},
    )
    data = model.to_dict(include_self_link=False, transform_hrefs=False)
    data["links"] = [
        {"rel": "self", "href": f"{base_url}/stac/collections/{name}", "type": "application/json"},
        {"rel": "items", "href": f"{base_url}/stac/collections/{name}/items", "type": "application/geo+json"},
        {"rel": "root", "href": f"{base_url}/stac", "type": "application/json"},
        {"rel": "parent", "href": f"{base_url}/stac", "type": "application/json"},
    ]
    return data


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


# ---- CQL2 -> Query --------------------------------------------------------------------------------


def parse_filter(value: str | dict, lang: str | None) -> ast.Node:
    try:
        if isinstance(value, dict) or lang == "cql2-json":
            import json

            return parse_json(value if isinstance(value, dict) else json.loads(value))
        return parse_text(value)
    except Exception as e:  # pygeofilter raises lark and value errors
        raise Invalid(f"filter is not valid CQL2: {e}", code="bad_filter") from None


def apply_filter(node: ast.Node, query: Query) -> None:
    """Narrow `query` by the CQL2 expression `node` (see the module docstring for what is supported)."""
    if isinstance(node, ast.And):
        apply_filter(node.lhs, query)
        apply_filter(node.rhs, query)
    elif isinstance(node, ast.Equal | ast.In | ast.Or):
        facet, wanted = _facet_values(node)
        present = query.facets.get(facet)
        query.facets[facet] = [v for v in wanted if present is None or v in present]
    elif isinstance(node, ast.Like):
        _like(node, query)
    elif isinstance(node, ast.LessThan | ast.LessEqual | ast.GreaterThan | ast.GreaterEqual | ast.Between):
        _time(node, query)
    elif isinstance(node, ast.TemporalPredicate):
        _temporal(node, query)
    elif isinstance(node, ast.SpatialComparisonPredicate):
        _spatial(node, query)
    else:
        raise _unsupported(node)


def _unsupported(node) -> Invalid:
    return Invalid(
        f"filter: {type(node).__name__} is not supported here; use AND of =, IN, LIKE on id, comparisons on "
        f"datetime and S_INTERSECTS on geometry (facet properties: {', '.join(FACETS)})",
        code="unsupported_filter",
    )


def _attribute(node) -> str:
    if not isinstance(node, ast.Attribute):
        raise _unsupported(node)
    return node.name.removeprefix("properties.")


def _facet_values(node) -> tuple[str, list[str]]:
    if isinstance(node, ast.Or):
        left, right = _facet_values(node.lhs), _facet_values(node.rhs)
        if left[0] != right[0]:
            raise Invalid("filter: OR is supported between values of one property", code="unsupported_filter")
        return left[0], left[1] + right[1]
    name = _attribute(node.lhs)
    if name not in FACETS:
        raise Invalid(
            f"filter: unknown property '{name}'; queryables: {', '.join(FACETS)}", code="bad_filter"
        )
    if isinstance(node, ast.In):
        if node.not_:
            raise _unsupported(node)
        return name, [str(v) for v in node.sub_nodes]
    return name, [str(node.rhs)]


def _like(node: ast.Like, query: Query) -> None:
    if _attribute(node.lhs) not in TEXT_PROPERTIES or node.not_:
        raise _unsupported(node)
    query.text = f"{query.text} {node.pattern.replace(node.wildcard, ' ').replace(node.singlechar, ' ')}"


def _when(value) -> datetime:
    if isinstance(value, values.Interval):
        raise _unsupported(value)
    return value if isinstance(value, datetime) else instant(str(value))


def _time(node, query: Query) -> None:
    if _attribute(node.lhs) not in TIME_PROPERTIES:
        raise _unsupported(node)
    if isinstance(node, ast.Between):
        _narrow(query, _when(node.low), None)
        _narrow(query, None, _when(node.high), inclusive=True)
    elif isinstance(node, ast.GreaterEqual | ast.GreaterThan):
        _narrow(query, _when(node.rhs), None, strict=isinstance(node, ast.GreaterThan))
    else:
        _narrow(query, None, _when(node.rhs), inclusive=isinstance(node, ast.LessEqual))


def _temporal(node, query: Query) -> None:
    if _attribute(node.lhs) not in TIME_PROPERTIES:
        raise _unsupported(node)
    target = node.rhs
    if isinstance(target, values.Interval):
        _narrow(query, _when(target.start), None)
        _narrow(query, None, _when(target.end), inclusive=True)
    else:
        moment = _when(target)
        _narrow(query, moment, None)
        _narrow(query, None, moment, inclusive=True)


def _narrow(query: Query, start, end, strict: bool = False, inclusive: bool = False) -> None:
    from datetime import timedelta

    second = timedelta(seconds=1)
    if start is not None:
        start = start.replace(microsecond=0) + (second if strict else timedelta(0))
        query.start = max(query.start, start) if query.start else start
    if end is not None:
        end = end.replace(microsecond=0) + (second if inclusive else timedelta(0))
        query.end = min(query.end, end) if query.end else end


def _spatial(node, query: Query) -> None:
    if _attribute(node.lhs) != "geometry" or not isinstance(
        node, ast.GeometryIntersects | ast.GeometryWithin
    ):
        raise _unsupported(node)
    target = node.rhs
    if isinstance(target, ast.Function) and target.name.lower() == "bbox":
        w, s, e, n = (float(a) for a in target.arguments[:4])
        coords = [[w, s], [e, n]]
    elif isinstance(target, values.Geometry):
        coords = _flatten(target.geometry["coordinates"])
    else:
        raise _unsupported(target)
    lons, lats = [c[0] for c in coords], [c[1] for c in coords]
    box = (min(lons), min(lats), max(lons), max(lats))
    if query.bbox:
        w, s, e, n = query.bbox
        box = (max(w, box[0]), max(s, box[1]), min(e, box[2]), min(n, box[3]))
    query.bbox = box


def _flatten(coords) -> list:
    if coords and isinstance(coords[0], int | float):
        return [coords]
    return [c for part in coords for c in _flatten(part)]
