"""The audit log for administrators: GET /api/v1/audit (filtered, paginated) and /api/v1/audit.csv."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.audit.export import csv_lines
from datalabs.audit.query import MAX_LIMIT, Filters, matching
from datalabs.deps import admin, get_db

router = APIRouter(prefix="/api/v1", tags=["audit"], responses={401: {}, 403: {}, 422: {}})


class AuditRead(BaseModel):
    id: int
    at: datetime
    who: str | None
    what: str
    target: str | None
    client: str | None
    outcome: str
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None  # pass as ?cursor= for the next (older) page; null on the last


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def filters(
    who: str | None = Query(None, max_length=128, description="User name (or the name a login tried)."),
    what: str | None = Query(None, max_length=200, description="Action, e.g. 'POST /api/v1/labs'."),
    outcome: str | None = Query(None, max_length=32, description="HTTP status or 'ok'/'refused'."),
    from_: datetime | None = Query(None, alias="from", description="Earliest time (ISO 8601; UTC if naive)."),
    to: datetime | None = Query(None, description="Latest time (ISO 8601; UTC if naive)."),
) -> Filters:
    return Filters(who=who, what=what, outcome=outcome, start=_utc(from_), end=_utc(to))


@router.get("/audit", response_model=AuditPage)
def list_audit(
    f: Filters = Depends(filters),
    limit: int = Query(100, ge=1, description=f"Records per page (at most {MAX_LIMIT})."),
    cursor: int | None = Query(None, ge=1, description="next_cursor of the previous page."),
    _: Principal = Depends(admin),
    db: Session = Depends(get_db),
) -> dict:
    """Audit records, newest first (administrators)."""
    limit = min(limit, MAX_LIMIT)
    rows = list(db.execute(matching(f, before=cursor).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": str(rows[-1].id) if more else None}


@router.get("/audit.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
def export_audit(request: Request, f: Filters = Depends(filters), _: Principal = Depends(admin)):
    """Every matching record, oldest first, as formula-safe CSV (streamed; administrators)."""
    sessions = request.app.state.sessions

    def lines():
        with sessions() as db:
            query = matching(f, newest_first=False).execution_options(yield_per=500)
            yield from csv_lines(db.execute(query).scalars())

    headers = {"Content-Disposition": 'attachment; filename="audit.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)
