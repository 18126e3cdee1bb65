"""The catalogue ("Find a datalab"): search with facets, and one page per datalab and version."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.routing import NoMatchFound

from datalabs.accounts.principal import Principal
from datalabs.catalogue.entries import Entry, thumbnail_url
from datalabs.catalogue.search import FACETS, Catalogue
from datalabs.deps import get_db
from datalabs.web import datalab_view
from datalabs.web.render import fragment, page
from datalabs.web.security import HtmlRoute, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
PER_PAGE = 24
FACET_LABELS = {
    "kind": "Type",
    "mission": "Mission",
    "instrument": "Instrument",
    "keyword": "Keyword",
    "domain": "Domain",
}
# The labs area names its launch page route this; until it exists no launch button is shown at all.
LAUNCH_ROUTE = "launch_datalab_page"


def launch_path(request: Request, name: str, available: bool) -> str:
    """Where the Launch button of an available datalab leads, or "" when it cannot be launched here."""
    if not available:
        return ""
    try:
        return str(request.app.url_path_for(LAUNCH_ROUTE, name=name))
    except NoMatchFound:
        return ""


def card(request: Request, entry: Entry) -> dict:
    m = entry.meta
    return {
        "name": entry.name,
        "title": m.title,
        "abstract": m.abstract,
        "kind": entry.kind,
        "version": m.version,
        "mission": m.mission,
        "instrument": m.instrument,
        "keywords": m.keywords,
        "domain": m.domain,
        "thumbnail": thumbnail_url(entry.name, entry.raw),
        "available": entry.available,
        "unavailable_reason": entry.unavailable_reason,
        "launch": launch_path(request, entry.name, entry.available),
    }


def _clean(values: list[str]) -> list[str]:
    # Checkbox values are exact facet values (a domain may contain a comma), so they are not split.
    return [v.strip() for v in values if v.strip()][:50]


def _slug(value: str) -> str:
    return hashlib.sha1(value.lower().encode()).hexdigest()[:10]


def _facet_groups(facets: dict[str, list[tuple[str, int]]], filters: dict[str, list[str]]) -> list[dict]:
    groups = []
    for facet in FACETS:
        counts = list(facets.get(facet, []))
        chosen = {v.lower() for v in filters.get(facet, [])}
        seen = {v.lower() for v, _ in counts}
        # A chosen value stays visible (with 0) so it can be unticked even when nothing matches it now.
        counts += [(v, 0) for v in filters.get(facet, []) if v.lower() not in seen]
        options = [
            # Ids stay the same across htmx swaps, so a ticked checkbox keeps the keyboard focus.
            {
                "value": v,
                "label": v.capitalize() if facet == "kind" else v,
                "count": c,
                "checked": v.lower() in chosen,
                "id": f"f-{facet}-{_slug(v)}",
            }
            for v, c in counts
        ]
        groups.append({"name": facet, "label": FACET_LABELS[facet], "options": options})
    return groups


def _query_string(q: str, filters: dict[str, list[str]], **extra) -> str:
    pairs = [("q", q)] if q else []
    pairs += [(facet, v) for facet, values in filters.items() for v in values]
    pairs += [(k, str(v)) for k, v in extra.items() if v]
    return urlencode(pairs)


@router.get("/catalogue")
def catalogue_page(
    request: Request,
    q: str = Query("", max_length=200),
    kind: list[str] = Query([]),
    mission: list[str] = Query([]),
    instrument: list[str] = Query([]),
    keyword: list[str] = Query([]),
    domain: list[str] = Query([]),
    page_number: int = Query(1, alias="page", ge=1, le=10_000),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    raw = {"kind": kind, "mission": mission, "instrument": instrument, "keyword": keyword, "domain": domain}
    filters = {facet: _clean(values) for facet, values in raw.items() if _clean(values)}
    cat: Catalogue = request.app.state.catalogue
    offset = (page_number - 1) * PER_PAGE
    result = cat.search(db, principal, q=q.strip(), filters=filters, limit=PER_PAGE, offset=offset)
    pages = max(1, -(-result.total // PER_PAGE))
    ctx = {
        "q": q,
        "filters": filters,
        "facet_groups": _facet_groups(result.facets, filters),
        "cards": [card(request, e) for e in result.items],
        "total": result.total,
        "page_number": page_number,
        "pages": pages,
        "prev_url": f"/catalogue?{_query_string(q, filters, page=page_number - 1)}"
        if page_number > 1
        else "",
        "next_url": f"/catalogue?{_query_string(q, filters, page=page_number + 1)}"
        if page_number < pages
        else "",
    }
    headers = {"Vary": "HX-Request"}
    # htmx swaps only the results; a history restore (back button, cache miss) needs the whole page.
    if request.headers.get("hx-request") and not request.headers.get("hx-history-restore-request"):
        response = fragment(request, "_catalogue_results.html", **ctx)
        response.headers.update(headers)
        return response
    return page(request, "catalogue.html", title="Catalogue", active="catalogue", headers=headers, **ctx)


@router.get("/catalogue/{name}")
def datalab_page(
    request: Request,
    name: str,
    version: str = Query("", max_length=64),
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
):
    cat: Catalogue = request.app.state.catalogue
    entry = cat.get(db, principal, name)
    shown = version or entry.versions[0]
    raw = cat.version(db, principal, name, shown) if version else entry.raw
    view = datalab_view.describe(entry, raw, shown, request.app.state.catalogue.gpu_sources)
    view["launch"] = launch_path(request, name, view["available"])
    return page(request, "datalab.html", title=view["title"], active="catalogue", lab=view)
