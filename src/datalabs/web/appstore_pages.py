"""App store pages (being built): create wizard, app store, moderator queue, history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from datalabs.accounts.principal import Principal
from datalabs.web.render import page
from datalabs.web.security import HtmlRoute, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


@router.get("/appstore", name="appstore_placeholder")
def appstore_placeholder(request: Request, _: Principal = Depends(require_user)):
    return page(
        request,
        "placeholder.html",
        title="App store",
        active="appstore",
        area="App store",
        purpose="Build your own datalabs from a repository or environment and publish them to the catalogue.",
    )
