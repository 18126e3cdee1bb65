"""The datalab catalogue: search, details, versions, thumbnails; problems, reload and environment
builds (catalogue/build_service.py) for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.catalogue import build_service, entries, service
from datalabs.catalogue.entries import Entry
from datalabs.catalogue.search import Catalogue, SearchResult
from datalabs.config import Settings
from datalabs.deps import admin, get_db, get_settings, scope
from datalabs.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["datalabs"], responses={401: {}, 403: {}})
read = scope("catalogue:read")


class FacetCount(BaseModel):
    value: str
    count: int


class DatalabCard(BaseModel):
    name: str
    title: str
    abstract: str
    kind: str
    version: str
    versions: list[str]
    mission: list[str]
    instrument: list[str]
    keywords: list[str]
    domain: str
    thumbnail_url: str
    available: bool
    unavailable_reason: str
    allowed_groups: list[str]

    @classmethod
    def of(cls, e: Entry) -> DatalabCard:
        m = e.meta
        return cls(
            name=e.name,
            title=m.title,
            abstract=m.abstract,
            kind=e.kind,
            version=m.version,
            versions=e.versions,
            mission=m.mission,
            instrument=m.instrument,
            keywords=m.keywords,
            domain=m.domain,
            thumbnail_url=entries.thumbnail_url(e.name, e.raw),
            available=e.available,
            unavailable_reason=e.unavailable_reason,
            allowed_groups=e.groups,
        )


class DatalabDetail(DatalabCard):
    meta: dict[str, Any]


class DatalabSearch(BaseModel):
    total: int
    items: list[DatalabCard]
    facets: dict[str, list[FacetCount]]


class Problem(BaseModel):
    path: str
    key: str
    reason: str


async def catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


def _values(raw: list[str]) -> list[str]:
    return [v.strip() for item in raw for v in item.split(",") if v.strip()]


@router.get("/datalabs", response_model=DatalabSearch)
async def search_datalabs(
    request: Request,
    q: str = Query(
        "", max_length=200, description="Words that must all appear (title, abstract, keywords...)"
    ),
    kind: list[str] = Query([], description="web, desktop; repeat or comma-separate for any of several"),
    mission: list[str] = Query([]),
    instrument: list[str] = Query([]),
    keyword: list[str] = Query([]),
    domain: list[str] = Query([]),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000_000),
    principal: Principal = Depends(read),
    cat: Catalogue = Depends(catalogue),
):
    """Async, and without a DB session of its own: a search this audience made before in the current
    snapshot is answered from memory (`Catalogue.remembered`) with no worker thread; any other runs the
    search in one. The body is built from JSON remembered per entry and per search (`search_body`)."""
    filters = {
        "kind": _values(kind),
        "mission": _values(mission),
        "instrument": _values(instrument),
        "keyword": _values(keyword),
        "domain": _values(domain),
    }
    args = {"q": q, "filters": filters, "limit": limit, "offset": offset}
    result = cat.remembered(principal, **args)
    if result is None:
        result = await run_in_threadpool(_search, request, cat, principal, args)
    return Response(search_body(result), media_type="application/json")


def _search(request: Request, cat: Catalogue, principal: Principal, args: dict) -> SearchResult:
    with request.app.state.sessions() as db:
        return cat.search(db, principal, **args)


_facets_json = TypeAdapter(dict[str, list[FacetCount]])


def search_body(result: SearchResult) -> bytes:
    """`DatalabSearch` as JSON, byte for byte what the response model gives, from JSON remembered with
    the snapshot: each entry's card (`Entry.memo`) and the search's facets (`SearchResult.memo`)."""
    facets = result.memo.get("facets_json")
    if facets is None:
        counts = {f: [FacetCount(value=v, count=c) for v, c in values] for f, values in result.facets.items()}
        facets = result.memo["facets_json"] = _facets_json.dump_json(counts)
    cards = b",".join(_card_json(e) for e in result.items)
    return b'{"total":%d,"items":[%b],"facets":%b}' % (result.total, cards, facets)


def _card_json(entry: Entry) -> bytes:
    card = entry.memo.get("card_json")
    if card is None:
        card = entry.memo["card_json"] = DatalabCard.of(entry).model_dump_json().encode()
    return card


@router.get("/datalabs/{name}", response_model=DatalabDetail, responses={404: {}})
def get_datalab(
    name: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    cat: Catalogue = Depends(catalogue),
):
    entry = cat.get(db, principal, name)
    return DatalabDetail(**DatalabCard.of(entry).model_dump(), meta=entries.public_meta(entry.raw))


@router.get("/datalabs/{name}/versions", response_model=list[dict[str, Any]], responses={404: {}})
def list_versions(
    name: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    cat: Catalogue = Depends(catalogue),
):
    """Every version, newest first, with its full metadata."""
    entry = cat.get(db, principal, name)
    return [entries.public_meta(cat.version(db, principal, name, v)) for v in entry.versions]


@router.get("/datalabs/{name}/versions/{version}", response_model=dict[str, Any], responses={404: {}})
def get_version(
    name: str,
    version: str,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    cat: Catalogue = Depends(catalogue),
):
    return entries.public_meta(cat.version(db, principal, name, version))


@router.get("/datalabs/{name}/thumbnail", response_class=FileResponse, responses={404: {}})
def thumbnail(
    name: str,
    version: str | None = Query(None, max_length=64),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    cat: Catalogue = Depends(catalogue),
):
    entry = cat.get(db, principal, name)
    raw = cat.version(db, principal, name, version) if version else entry.raw
    if not raw.get("_thumbnail_path"):
        raise NotFound(f"datalab '{name}' has no thumbnail file", code="no_thumbnail")
    return FileResponse(raw["_thumbnail_path"], headers={"Cache-Control": "private, max-age=3600"})


@router.get("/catalogue/problems", response_model=list[Problem])
def catalogue_problems(_: Principal = Depends(admin), db: Session = Depends(get_db)):
    """Definition files rejected at the last load, with file, key and reason."""
    return [Problem(path=p.path, key=p.key, reason=p.reason) for p in service.problems(db)]


@router.post("/catalogue/reload", response_model=list[Problem])
def reload_catalogue(
    _: Principal = Depends(admin), db: Session = Depends(get_db), settings: Settings = Depends(get_settings)
):
    """Re-read the definition directories now; returns the problems found."""
    problems = service.reload(db, settings)
    db.commit()
    return [Problem(path=p.path, key=p.key, reason=p.reason) for p in problems]


class BuildState(BaseModel):
    """A catalogue datalab version's environment build: its state and, when asked for one, its log."""

    name: str
    version: str
    state: str  # never | queued | building | built | failed | interrupted
    active: bool
    error: str
    cached: bool
    requested_by: str
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    log: list[str] = []

    @classmethod
    def of(cls, view: build_service.BuildView) -> BuildState:
        return cls(**{k: v for k, v in view.as_dict().items() if k in cls.model_fields})


@router.get("/catalogue/builds", response_model=list[BuildState])
def catalogue_builds(
    principal: Principal = Depends(admin),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """The newest version of every catalogue datalab whose environment the platform builds."""
    return [BuildState.of(v) for v in build_service.pending(db, settings, principal)]


@router.post(
    "/datalabs/{name}/build",
    response_model=BuildState,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {}, 409: {}},
)
def start_build(
    name: str,
    request: Request,
    version: str | None = Query(None, max_length=64, description="Default: the newest version."),
    principal: Principal = Depends(admin),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Build the datalab's environment in the background (409 while one build of it runs, or when it
    runs on the platform's environment); follow it with GET."""
    sessions = request.app.state.sessions
    return BuildState.of(build_service.start(db, settings, sessions, principal, name, version))


@router.get("/datalabs/{name}/build", response_model=BuildState, responses={404: {}, 409: {}})
def get_build(
    name: str,
    version: str | None = Query(None, max_length=64, description="Default: the newest version."),
    principal: Principal = Depends(admin),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """The last or current build of the datalab's environment, with its log (the last lines)."""
    return BuildState.of(build_service.view(db, settings, principal, name, version))
