"""/admin/audit: the audit log for administrators, filtered, newest first, with a CSV export link."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.audit.query import Filters, matching
from datalabs.deps import get_db
from datalabs.web.render import page
from datalabs.web.security import HtmlRoute, require_admin

router = APIRouter(route_class=HtmlRoute, include_in_schema=False, prefix="/admin")
PAGE = 50  # records per page


def _when(text: str) -> datetime | None:
    """An ISO 8601 date or time (UTC if naive); ValueError names the bad text."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.get("/audit")
def audit_page(
    request: Request,
    who: str = Query("", max_length=128),
    what: str = Query("", max_length=200),
    outcome: str = Query("", max_length=32),
    from_: str = Query("", alias="from", max_length=40),
    to: str = Query("", max_length=40),
    cursor: int | None = Query(None, ge=1),
    _: Principal = Depends(require_admin),
    db: Session = Depends(get_db),
):
    """Who did what, when, from where, with what outcome (administrators)."""
    form = {"who": who, "what": what, "outcome": outcome, "from": from_, "to": to}
    error, records, more = "", [], False
    try:
        f = Filters(who or None, what or None, outcome or None, _when(from_), _when(to))
    except ValueError:
        error = "From and To take a date or time such as 2026-12-04 or 2026-12-04T07:30 (UTC)."
    else:
        records = list(db.execute(matching(f, before=cursor).limit(PAGE + 1)).scalars())
        more, records = len(records) > PAGE, records[:PAGE]
    query = {k: v for k, v in form.items() if v}
    return page(
        request,
        "admin_audit.html",
        title="Audit log",
        active="admin",
        section="audit",
        form=form,
        error=error,
        records=records,
        next_url=f"/admin/audit?{urlencode({**query, 'cursor': records[-1].id})}" if more else "",
        csv_url=f"/api/v1/audit.csv?{urlencode(query)}",
        status=422 if error else 200,
    )
