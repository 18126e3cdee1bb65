"""Asset explorer API v1: faceted search, asset details and Open in Datalab (DESIGN §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.assets import opening, params
from datalabs.assets import service as assets_service
from datalabs.assets.base import FACETS, AssetRecord
from datalabs.assets.base import Query as AssetQuery
from datalabs.config import Settings
from datalabs.deps import get_db, get_settings, scope

router = APIRouter(prefix="/api/v1/assets", tags=["assets"], responses={401: {}, 403: {}})
read = scope("assets:read")


class FacetCount(BaseModel):
    value: str
    count: int


class AssetOut(BaseModel):
    id: str
    collection: str
    path: str
    name: str
    size: int
    modified: datetime | None
    start: datetime | None
    end: datetime | None
    facets: dict[str, list[str]]
    bbox: list[float] | None
    media_type: str
    title: str
    properties: dict[str, Any]
    href: str

    @classmethod
    def of(cls, r: AssetRecord) -> AssetOut:
        return cls(
            id=r.id,
            collection=r.collection,
            path=r.path,
            name=r.name,
            size=r.size,
            modified=r.modified,
            start=r.start,
            end=r.end,
            facets={k: list(v) for k, v in r.facets.items()},
            bbox=list(r.bbox) if r.bbox else None,
            media_type=r.media_type,
            title=r.title,
            properties=r.properties,
            href=assets_service.download_href(r),
        )


class SearchOut(BaseModel):
    total: int
    items: list[AssetOut]
    facets: dict[str, list[FacetCount]]
    took_ms: float


def facet_filters(request: Request) -> dict[str, list[str]]:
    """`<facet>=v1,v2` (or the facet repeated) for every facet in the query string."""
    out: dict[str, list[str]] = {}
    for facet in FACETS:
        values = [v for raw in request.query_params.getlist(facet) for v in raw.split(",") if v]
        if values:
            out[facet] = values
    return out


@router.get("/search", response_model=SearchOut, summary="Faceted search over the assets you may see")
def search(
    request: Request,
    q: str = Query("", description="Words matched in file names and directories"),
    bbox: str = Query("", description="west,south,east,north (degrees)"),
    datetime: str = Query("", description="RFC 3339 instant or interval start/end ('..' open)"),
    sort: str = Query("date", description="date (newest first), -date, name, -name"),
    limit: int = Query(20),
    offset: int = Query(0),
    facets: bool = Query(True, description="Include the counts of all facets"),
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
) -> SearchOut:
    limit, offset = params.window(limit, offset)
    start, end = params.interval(datetime)
    query = AssetQuery(
        text=q,
        facets=facet_filters(request),
        start=start,
        end=end,
        bbox=params.bbox(bbox),
        sort=params.sort(sort),
        limit=limit,
        offset=offset,
        with_facets=facets,
    )
    allowed = assets_service.visible_collections(db, principal)
    page = request.app.state.assets.search(query, allowed)
    return SearchOut(
        total=page.total,
        items=[AssetOut.of(r) for r in page.items],
        facets={
            f: [FacetCount(value=str(v), count=c) for v, c in counts] for f, counts in page.facets.items()
        },
        took_ms=round(page.took_ms, 2),
    )


@router.get("/{asset_id:path}", response_model=AssetOut, summary="One asset (id: <collection>:<path>)")
def get_asset(
    asset_id: str, request: Request, principal: Principal = Depends(read), db: Session = Depends(get_db)
) -> AssetOut:
    allowed = assets_service.visible_collections(db, principal)
    return AssetOut.of(request.app.state.assets.get(asset_id, allowed))


class OpenBody(Strict):
    """Either a running lab of yours (`lab_id`) or a datalab to launch (`datalab`, optional `version`)."""

    lab_id: str | None = Field(None, min_length=1, max_length=32, description="A running lab of yours.")
    datalab: str | None = Field(
        None, min_length=1, max_length=64, description="Launch this datalab with the asset's volume."
    )
    version: str | None = Field(None, max_length=64, description="With `datalab`: the version to launch.")

    @model_validator(mode="after")
    def _one_target(self) -> OpenBody:
        if (self.lab_id is None) == (self.datalab is None):
            raise ValueError("give either 'lab_id' (a running lab of yours) or 'datalab' (one to launch)")
        if self.version is not None and self.datalab is None:
            raise ValueError("'version' goes with 'datalab'")
        return self


class OpenOut(BaseModel):
    lab_id: str
    path: str = Field(description="The file's path inside the lab.")
    url: str = Field(description="Opens the file (JupyterLab), or else the lab.")
    lab_url: str
    placement: str = Field(description="'mounted' (the lab's data volume) or 'copied' (into your workspace).")
    launched: bool = Field(
        description="A new lab was launched: it is starting; follow /api/v1/labs/{id}/events."
    )
    how: str = Field(
        description="How the lab opens it: 'file' (url opens it), 'notebook' (url opens a notebook that "
        "loads it; for a launched lab, open it again once the lab runs to make that notebook), 'command' "
        "(a launched desktop app starts with it), 'show' (a running desktop: open it at `path` yourself)."
    )
    notice: str = Field("", description="Why a notebook made for the file did not run its first cell.")


@router.post(
    "/{asset_id:path}/open",
    response_model=OpenOut,
    responses={404: {}, 409: {}, 413: {}, 422: {}, 429: {}},
    summary="Open an asset in a running lab of yours, or in a new one",
)
async def open_asset(
    asset_id: str,
    body: OpenBody,
    request: Request,
    principal: Principal = Depends(read),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> OpenOut:
    """The file is reachable at `path` in the lab: at `/media/data/<volume>/...` when the lab mounts the
    asset's volume (a launched lab does), else as a copy in `my_workspace/from-explorer/`."""
    # Opening may copy into your workspace, and launching starts a lab: the token must allow those too.
    principal.require("files:write")
    if body.datalab:
        principal.require("labs:write")
    opened = await opening.open_file(
        request.app.state,
        db,
        principal,
        asset_id,
        lab_id=body.lab_id,
        datalab=body.datalab,
        version=body.version,
    )
    return OpenOut(
        lab_id=opened.lab_id,
        path=opened.path,
        url=opened.url,
        lab_url=opened.lab_url,
        placement=opened.placement,
        launched=opened.launched,
        how=opened.how,
        notice=opened.notice,
    )
