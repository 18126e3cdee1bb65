"""The asset explorer page: facet panel with counts, results table, a map of stations and footprints,
and a histogram of results over time; htmx swaps the results, the map follows (static/explorer.js)."""

from __future__ import annotations

import hashlib
import json
import math
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.assets import params
from datalabs.assets import service as assets_service
from datalabs.assets.base import FACETS
from datalabs.assets.base import Query as AssetQuery
from datalabs.assets.service import download_href
from datalabs.deps import get_db
from datalabs.errors import Invalid
from datalabs.web import explorer_open
from datalabs.web.render import fragment, page
from datalabs.web.security import HtmlRoute, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
PER_PAGE = 20
COLUMNS = ("network", "constellation", "satellite", "observation_code", "resource_type")
BUCKETS = 40


def _filters(request: Request) -> dict[str, list[str]]:
    return {f: vs[:50] for f in FACETS if (vs := [v for v in request.query_params.getlist(f) if v.strip()])}


def _groups(facets: dict, filters: dict[str, list[str]]) -> list[dict]:
    groups = []
    for facet in FACETS:
        counts = list(facets.get(facet, []))
        chosen = set(filters.get(facet, []))
        counts += [(v, 0) for v in chosen if v not in {c for c, _ in counts}]
        options = [
            {
                "value": v,
                "count": c,
                "checked": v in chosen,
                "id": f"a-{facet}-{hashlib.sha1(v.encode()).hexdigest()[:10]}",
            }
            for v, c in counts
        ]
        groups.append({"name": facet, "label": facet.replace("_", " ").capitalize(), "options": options})
    return groups


def _row(record) -> dict:
    def short(facet: str) -> str:
        values = record.facets.get(facet, ())
        return ", ".join(values[:4]) + (f" +{len(values) - 4}" if len(values) > 4 else "")

    return {
        "id": record.id,
        "name": record.name,
        "path": record.directory,
        "title": record.title,
        "collection": record.collection,
        "date": record.date.strftime("%Y-%m-%d %H:%M"),
        "href": download_href(record),
        **{c: short(c) for c in COLUMNS},
    }


def _bars(histogram) -> list[dict]:
    """Bars on a logarithmic scale: a few files beside a million must still show (at least 6% high)."""
    top = math.log1p(max((c for *_, c in histogram), default=0)) or 1
    width = 100 / max(1, len(histogram))
    return [
        {
            "x": i * width,
            "w": width * 0.9,
            "h": max(6.0, 100 * math.log1p(c) / top) if c else 0.0,
            "count": c,
            "label": f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d}: {c:,}",
        }
        for i, (lo, hi, c) in enumerate(histogram)
    ]


@router.get("/explorer")
def explorer_page(
    request: Request,
    q: str = Query("", max_length=200),
    start: str = Query("", alias="from"),
    end: str = Query("", alias="to"),
    bbox: str = Query(""),
    sort: str = Query("date"),
    page_number: int = Query(1, alias="page", ge=1, le=5000),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    filters = _filters(request)
    error = ""
    try:
        query = AssetQuery(
            text=q,
            facets=filters,
            bbox=params.bbox(bbox),
            sort=params.sort(sort),
            start=params.instant(start) if start else None,
            end=params.instant(end) if end else None,
            limit=PER_PAGE,
            offset=(page_number - 1) * PER_PAGE,
            histogram=BUCKETS,
            locations=True,
        )
    except Invalid as exc:
        error, query = exc.message, AssetQuery(limit=PER_PAGE, histogram=BUCKETS, locations=True)
    result = request.app.state.assets.search(query, assets_service.visible_collections(db, principal))
    pages = max(1, -(-result.total // PER_PAGE))
    keep = [("q", q), ("from", start), ("to", end), ("bbox", bbox), ("sort", sort)]
    keep += [(f, v) for f, vs in filters.items() for v in vs]

    def link(n: int) -> str:
        return "/explorer?" + urlencode([(k, v) for k, v in keep if v] + [("page", n)])

    first = (page_number - 1) * PER_PAGE + 1 if result.items else 0
    ctx = {
        "q": q,
        "start": start,
        "end": end,
        "bbox": bbox,
        "sort": sort,
        "error": error,
        "facet_groups": _groups(result.facets, filters),
        "filters": filters,
        "rows": [_row(r) for r in result.items],
        "total": result.total,
        "took_ms": round(result.took_ms, 1),
        "first": first,
        "last": first + len(result.items) - 1 if result.items else 0,
        "prev_url": link(page_number - 1) if page_number > 1 else "",
        "next_url": link(page_number + 1) if page_number < pages else "",
        "bars": _bars(result.histogram),
        "locations": json.dumps([{"bbox": list(b), "count": c} for b, c in result.locations[:5000]]),
        "settings": request.app.state.settings.assets,
        # "Run a pipeline on new matches": this search, saved as a new-data trigger (web/trigger_pages.py)
        "trigger_url": "/pipelines/-/new-data-trigger?"
        + urlencode([(k, v) for k, v in keep if v and k != "sort"]),
    }
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        response = fragment(request, "_explorer_results.html", **ctx)
        response.headers["Vary"] = "HX-Request"
        return response
    return page(request, "explorer.html", title="Explorer", active="explorer", **ctx)


router.include_router(explorer_open.router)  # "Open in Datalab" (its own module)
