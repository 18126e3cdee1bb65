"""STAC API 1.0 under /stac (DESIGN §6): landing page, conformance, queryables, collections, items and
item search (GET and POST) with bbox, intersects, datetime, ids, collections, CQL2 filter, sortby,
fields and paging. Parsing and views live in `datalabs.assets.stac*`; this module only routes.

Bad parameters are 400s (STAC API), not the 422s of the rest of the API. The OpenAPI description
(service-desc) and the Datalabs extension's JSON Schema are public documents, like /api/openapi.json.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.assets import service as assets_service
from datalabs.assets import stac, stac_search
from datalabs.assets.base import Query
from datalabs.deps import get_db, scope
from datalabs.errors import BadRequest, NotFound

router = APIRouter(prefix="/stac", tags=["stac"], responses={401: {}, 403: {}})
read = scope("assets:read")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _json(data: dict, media_type: str = stac.JSON) -> JSONResponse:
    return JSONResponse(data, media_type=media_type)


def _openapi_type(request: Request) -> str:
    version = request.app.openapi().get("openapi", "3.1.0")
    return f"application/vnd.oai.openapi+json;version={'.'.join(version.split('.')[:2])}"


@router.get("", summary="STAC landing page")
def landing(request: Request, principal: Principal = Depends(read)) -> JSONResponse:
    return _json(stac.landing(_base(request), _openapi_type(request)))


@router.get("/conformance", summary="STAC conformance classes")
def conformance(principal: Principal = Depends(read)) -> JSONResponse:
    return _json({"conformsTo": stac.CONFORMANCE})


@router.get("/queryables", summary="Properties a CQL2 filter may use")
def queryables(request: Request, principal: Principal = Depends(read)) -> JSONResponse:
    url = f"{_base(request)}/stac/queryables"
    return _json(stac.queryables(url, "Datalabs assets"), "application/schema+json")


@router.get("/api", include_in_schema=False)
def service_desc(request: Request) -> JSONResponse:
    return _json(request.app.openapi(), _openapi_type(request))


@router.get(stac.EXTENSION_PATH.removeprefix("/stac"), include_in_schema=False)
def extension_schema(request: Request) -> JSONResponse:
    return _json(stac.extension_schema(_base(request)), "application/schema+json")


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
        first, last = (oldest[0].date if oldest else None), (newest[0].date if newest else None)
        out.append(stac.collection(name, total, first, last, _base(request)))
    return out


def _one_collection(request: Request, db: Session, principal: Principal, collection_id: str) -> dict:
    for c in _collections(request, db, principal):
        if c["id"] == collection_id:
            return c
    raise NotFound(f"no collection '{collection_id}' available to you", code="collection_not_found")


@router.get("/collections", summary="Collections (one per data volume) you may see")
def collections(request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    base = _base(request)
    links = [
        {"rel": "self", "href": f"{base}/stac/collections", "type": stac.JSON},
        {"rel": "root", "href": f"{base}/stac", "type": stac.JSON},
        {"rel": "parent", "href": f"{base}/stac", "type": stac.JSON},
    ]
    return _json({"collections": _collections(request, db, principal), "links": links})


@router.get("/collections/{collection_id}", summary="One collection")
def get_collection(
    collection_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
) -> JSONResponse:
    return _json(_one_collection(request, db, principal, collection_id))


@router.get("/collections/{collection_id}/queryables", summary="Properties a CQL2 filter may use here")
def collection_queryables(
    collection_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
) -> JSONResponse:
    found = _one_collection(request, db, principal, collection_id)
    url = f"{found['links'][0]['href']}/queryables"
    return _json(stac.queryables(url, f"Assets of {collection_id}"), "application/schema+json")


@router.get("/collections/{collection_id}/items", summary="Items of a collection")
def collection_items(
    collection_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
) -> JSONResponse:
    allowed = assets_service.visible_collections(db, principal)
    only = frozenset({collection_id})
    if not request.app.state.assets.search(
        Query(limit=0, with_facets=False, collections=only), allowed
    ).total:
        raise NotFound(f"no collection '{collection_id}' available to you", code="collection_not_found")
    pairs = request.query_params.multi_items()
    body = stac_search.from_query_string(pairs) | {"collections": [collection_id]}
    parent = {"rel": "parent", "href": stac.collection_url(_base(request), collection_id), "type": stac.JSON}
    return _search(request, db, principal, body, stac_search.Here(_url(request), "GET", pairs, body, parent))


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
    return _json(stac.item(record, assets_service.download_href(record), _base(request)), stac.GEOJSON)


@router.get("/search", summary="Item search (GET)")
def search_get(request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)):
    pairs = request.query_params.multi_items()
    body = stac_search.from_query_string(pairs)
    return _search(
        request, db, principal, body, stac_search.Here(_url(request), "GET", pairs, body, _root(request))
    )


async def json_body(request: Request) -> dict[str, Any]:
    """The POST body as a JSON object; anything else is a 400 (STAC), not FastAPI's 422."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise BadRequest("the body must be JSON", code="bad_body") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="bad_body")
    return body


SEARCH_BODY = {"content": {"application/json": {"schema": {"type": "object"}}}}


@router.post("/search", summary="Item search (POST, JSON body)", openapi_extra={"requestBody": SEARCH_BODY})
def search_post(
    request: Request,
    principal: Principal = Depends(read),
    body: dict[str, Any] = Depends(json_body),
    db: Session = Depends(get_db),
) -> JSONResponse:
    return _search(
        request, db, principal, body, stac_search.Here(_url(request), "POST", [], body, _root(request))
    )


def _url(request: Request) -> str:
    return str(request.url).split("?")[0]


def _root(request: Request) -> dict[str, str]:
    return {"rel": "parent", "href": f"{_base(request)}/stac", "type": stac.JSON}


def _search(request: Request, db: Session, principal: Principal, body: dict, here) -> JSONResponse:
    search = stac_search.parse(body, from_query_string=here.method == "GET")
    allowed = assets_service.visible_collections(db, principal)
    found = request.app.state.assets.search(search.query, allowed)
    href = assets_service.download_href
    page = stac_search.page(search, found.items, found.total, _base(request), href, here)
    return _json(page, stac.GEOJSON)
