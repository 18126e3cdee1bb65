"""STAC API 1.0 under /stac (DESIGN §6): landing page, conformance, queryables, collections, items and
item search (GET and POST) with bbox, datetime, ids, collections, CQL2 filter, sortby, fields, paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.assets import download_href
from datalabs.api.deps import get_db, scope
from datalabs.assets import params, stac
from datalabs.assets import service as assets_service
from datalabs.assets.base import FACETS, Query
from datalabs.errors import Invalid, NotFound

router = APIRouter(prefix="/stac", tags=["stac"], responses={401: {}, 403: {}})
read = scope("assets:read")
GEOJSON = "application/geo+json"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(data: dict, media_type: str = "application/json") -> JSONResponse:
    return JSONResponse(data, media_type=media_type)


@router.get("", summary="STAC landing page")
def landing(request: Request, principal: Principal = Depends(read)) -> JSONResponse:
    base = _base(request)
    links = [
        ("self", "/stac", "application/json"),
        ("root", "/stac", "application/json"),
        ("conformance", "/stac/conformance", "application/json"),
        ("data", "/stac/collections", "application/json"),
        ("search", "/stac/search", GEOJSON),
        ("http://www.opengis.net/def/rel/ogc/1.0/queryables", "/stac/queryables", "application/schema+json"),
        ("service-desc", "/api/openapi.json", "application/vnd.oai.openapi+json;version=3.0"),
    ]
    out = [{"rel": r, "href": base + h, "type": t} for r, h, t in links]
    out.append({"rel": "search", "href": base + "/stac/search", "type": GEOJSON, "method": "POST"})
    return _json(
        {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "datalabs",
            "title": "Datalabs assets",
            "description": "Archived files of the data volumes you may use",
            "conformsTo": stac.CONFORMANCE,
            "links": out,
        }
    )


@router.get("/conformance", summary="STAC conformance classes")
def conformance(principal: Principal = Depends(read)) -> JSONResponse:
    return _json({"conformsTo": stac.CONFORMANCE})


@router.get("/queryables", summary="Properties a CQL2 filter may use")
def queryables(principal: Principal = Depends(read)) -> JSONResponse:
    props = {f: {"type": "string", "title": f.replace("_", " ")} for f in FACETS}
    props |= {
        "datetime": {"type": "string", "format": "date-time"},
        "id": {"type": "string"},
        "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"},
    }
    return _json(
        {
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "type": "object",
            "title": "Datalabs assets",
            "properties": props,
        },
        "application/schema+json",
    )


def _collections(request: Request, db: Session, principal: Principal) -> list[dict]:
    assets, allowed = request.app.state.assets, assets_service.visible_collections(db, principal)
    counts = assets.search(Query(limit=0), allowed).facets.get("collection", [])
    out = []
    for name, total in counts:
        only = frozenset({name})
        newest = assets.search(Query(limit=1, with_facets=False, collections=only), allowed).items
        oldest = assets.search(
            Query(limit=1, sort="-date", with_facets=False, collections=only), allowed
        ).items
        out.append(
            stac.collection(
                name,
                total,
                oldest[0].date if oldest else None,
                newest[0].date if newest else None,
                _base(request),
            )
        )
    return out


@router.get("/collections", summary="Collections (one per data volume) you may see")
def collections(request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    base = _base(request)
    return _json(
        {
            "collections": _collections(request, db, principal),
            "links": [
                {"rel": "self", "href": base + "/stac/collections"},
                {"rel": "root", "href": base + "/stac"},
            ],
        }
    )


@router.get("/collections/{collection_id}", summary="One collection")
def get_collection(
    collection_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
) -> JSONResponse:
    for c in _collections(request, db, principal):
        if c["id"] == collection_id:
            return _json(c)
    raise NotFound(f"no collection '{collection_id}' available to you", code="collection_not_found")


@router.get("/collections/{collection_id}/items", summary="Items of a collection")
def collection_items(
    collection_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
) -> JSONResponse:
    body = _from_query_string(request) | {"collections": [collection_id]}
    return _search(request, db, principal, body, "GET")


@router.get("/collections/{collection_id}/items/{item_id:path}", summary="One item")
def get_item(
    collection_id: str,
    item_id: str,
    request: Request,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
) -> JSONResponse:
    allowed = assets_service.visible_collections(db, principal)
    record = request.app.state.assets.get(item_id, allowed)
    if record.collection != collection_id:
        raise NotFound(f"no item '{item_id}' in collection '{collection_id}'", code="asset_not_found")
    return _json(stac.item(record, download_href(record), _base(request)), GEOJSON)


@router.get("/search", summary="Item search (GET)")
def search_get(request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    return _search(request, db, principal, _from_query_string(request), "GET")


@router.post("/search", summary="Item search (POST, JSON body)")
def search_post(
    request: Request,
    body: dict[str, Any],
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
) -> JSONResponse:
    return _search(request, db, principal, body, "POST")


def _from_query_string(request: Request) -> dict[str, Any]:
    qp = request.query_params
    body: dict[str, Any] = {
        k: qp[k] for k in ("bbox", "datetime", "filter", "filter-lang", "limit", "token") if k in qp
    }
    for key in ("ids", "collections", "sortby", "fields"):
        if key in qp:
            body[key] = [v for v in qp[key].split(",") if v]
    return body


def _sort(sortby) -> str:
    if not sortby:
        return "date"
    first = sortby[0]
    field, direction = (
        (first["field"], first.get("direction", "asc"))
        if isinstance(first, dict)
        else (first.lstrip("+-"), "desc" if first.startswith("-") else "asc")
    )
    field = field.removeprefix("properties.")
    if field in ("datetime", "start_datetime"):
        return "date" if direction == "desc" else "-date"
    if field in ("id", "filename", "name"):
        return "name" if direction == "asc" else "-name"
    raise Invalid(f"sortby: cannot sort by '{field}'; use datetime or id", code="bad_sort")


def _query(body: dict[str, Any]) -> tuple[Query, int]:
    try:
        limit, offset = (
            int(body.get("limit", 10)),
            int(str(body.get("token") or "next:0").removeprefix("next:")),
        )
    except ValueError:
        raise Invalid("limit and token must be integers", code="bad_limit") from None
    limit, offset = params.window(min(limit, params.MAX_LIMIT), offset)
    start, end = params.interval(body.get("datetime"))
    query = Query(
        start=start,
        end=end,
        bbox=params.bbox(body.get("bbox")),
        limit=limit,
        offset=offset,
        sort=_sort(body.get("sortby")),
        with_facets=False,
    )
    if body.get("ids"):
        query.ids = list(body["ids"])
    if body.get("collections"):
        query.collections = frozenset(body["collections"])
    if body.get("filter"):
        stac.apply_filter(stac.parse_filter(body["filter"], body.get("filter-lang")), query)
    return query, offset


def _search(request: Request, db: Session, principal: Principal, body: dict, method: str) -> JSONResponse:
    query, offset = _query(body)
    allowed = assets_service.visible_collections(db, principal)
    page = request.app.state.assets.search(query, allowed)
    base = _base(request)
    features = [_fields(stac.item(r, download_href(r), base), body.get("fields")) for r in page.items]
    links = [{"rel": "root", "href": base + "/stac"}]
    if offset + query.limit < page.total:
        links.append(_page_link(request, body, method, f"next:{offset + query.limit}", "next"))
    if offset > 0:
        links.append(_page_link(request, body, method, f"next:{max(0, offset - query.limit)}", "prev"))
    return _json(
        {
            "type": "FeatureCollection",
            "features": features,
            "links": links,
            "numberMatched": page.total,
            "numberReturned": len(features),
            "context": {"matched": page.total, "returned": len(features), "limit": query.limit},
        },
        GEOJSON,
    )


def _page_link(request: Request, body: dict, method: str, token: str, rel: str) -> dict:
    if method == "POST":
        return {
            "rel": rel,
            "href": str(request.url),
            "method": "POST",
            "body": {**body, "token": token},
            "type": GEOJSON,
        }
    query = dict(request.query_params) | {"token": token}
    return {"rel": rel, "href": f"{str(request.url).split('?')[0]}?{urlencode(query)}", "type": GEOJSON}


def _fields(feature: dict, fields) -> dict:
    """The fields extension: `include`/`exclude` of dotted paths (or '+a,-b' in GET)."""
    if not fields:
        return feature
    if isinstance(fields, list):
        fields = {
            "include": [f.lstrip("+") for f in fields if not f.startswith("-")],
            "exclude": [f[1:] for f in fields if f.startswith("-")],
        }
    keep = set(fields.get("include") or [])
    if keep:
        keep |= {"id", "type", "geometry", "bbox", "links", "assets", "stac_version", "collection"}
        props = {k.removeprefix("properties.") for k in keep if k.startswith("properties.")}
        feature = {k: v for k, v in feature.items() if k in keep or k == "properties"}
        feature["properties"] = {
            k: v for k, v in feature["properties"].items() if k in props or k == "datetime"
        }
    for path in fields.get("exclude") or []:
        head, _, rest = path.partition(".")
        if rest and isinstance(feature.get(head), dict):
            feature[head].pop(rest, None)
        elif not rest:
            feature.pop(head, None)
    return feature
