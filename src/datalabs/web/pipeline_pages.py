"""Pipeline pages (being built): catalogue, launch form, runs, editor."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from datalabs.accounts.principal import Principal
from datalabs.web.render import page
from datalabs.web.security import HtmlRoute, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


@router.get("/pipelines", name="pipelines_placeholder")
def pipelines_placeholder(request: Request, _: Principal = Depends(require_user)):
    return page(
        request,
        "placeholder.html",
        title="Pipelines",
        active="pipelines",
        area="Pipelines",
        purpose="Run versioned CWL pipelines on your data, on demand or on a schedule, and follow each run.",
    )
