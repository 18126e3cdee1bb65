"""Usage pages: the user's month (by cluster and datalab, a chart of CPU-hours per day, their quotas) and
the administrators' (by user, group and cluster, with a CSV export of every lab session and run)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.deps import get_db, get_settings
from datalabs.usage import report
from datalabs.web.render import page
from datalabs.web.security import HtmlRoute, require_admin, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
MONTH = Query("", max_length=20, description="YYYY-MM; default: this month")


@router.get("/usage", name="usage_page")
def usage_page(
    request: Request,
    month: str = MONTH,
    principal: Principal = Depends(require_user),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    view = report.usage_page(db, settings, principal, month)
    return page(
        request,
        "usage.html",
        title="My usage",
        active="usage",
        headers={"Cache-Control": "no-store"},
        view=view,
        period=view.report.period,
        nearby=report.nearby_months(view.report.period),
    )


@router.get("/admin/usage", name="admin_usage_page")
def admin_usage_page(
    request: Request,
    month: str = MONTH,
    principal: Principal = Depends(require_admin),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    found = report.admin_page(db, settings, principal, month)
    return page(
        request,
        "admin_usage.html",
        title="Usage",
        active="admin",
        section="usage",
        headers={"Cache-Control": "no-store"},
        report=found,
        period=found.period,
        nearby=report.nearby_months(found.period),
    )


@router.get("/admin/usage.csv", name="admin_usage_csv")
def admin_usage_csv(
    month: str = MONTH,
    principal: Principal = Depends(require_admin),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
) -> Response:
    text, filename = report.admin_csv(db, settings, principal, month)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
