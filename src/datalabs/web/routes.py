"""Wires the web UI into the app: vendored static files, the page routers and the HTML error page."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from datalabs.accounts import oidc
from datalabs.labs import origins as lab_origins
from datalabs.web import (
    account_pages,
    admin_groups,
    admin_pages,
    appstore_pages,
    audit_pages,
    auth_pages,
    catalogue_pages,
    explorer_pages,
    lab_launch,
    lab_pages,
    notification_pages,
    oidc_pages,
    pipeline_pages,
    share_pages,
    usage_pages,
    volume_pages,
    workspace_pages,
)
from datalabs.web.render import STATIC_DIR, page_csp, render_error

PAGE_ROUTERS = (
    auth_pages,
    oidc_pages,
    catalogue_pages,
    explorer_pages,
    lab_launch,
    lab_pages,
    share_pages,
    account_pages,
    admin_pages,
    admin_groups,
    workspace_pages,
    volume_pages,
    pipeline_pages,
    appstore_pages,
    notification_pages,
    usage_pages,
    audit_pages,
)


class CachedStatic(StaticFiles):
    """Static files with cache headers: URLs made by `static_url` carry a content hash (`?v=`), so those
    never change and may be cached for a year; bare URLs are revalidated after an hour."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable" if versioned else "public, max-age=3600"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    app.mount("/static", CachedStatic(directory=STATIC_DIR), name="static")
    for module in PAGE_ROUTERS:
        app.include_router(module.router)
    app.state.render_error = render_error
    # Forms may end on a lab's origin (opening a file) or a sign-in provider's (logging out there).
    providers = " ".join(sorted({oidc.origin(p.issuer) for p in app.state.settings.oidc.providers}))
    app.state.page_csp = page_csp(
        " ".join(filter(None, (lab_origins.csp_source(app.state.settings), providers)))
    )
