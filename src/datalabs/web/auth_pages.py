"""Login and logout pages; `/` leads to the catalogue."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from datalabs.accounts import auth, oidc
from datalabs.accounts.principal import Principal
from datalabs.deps import (
    ANON_COOKIE,
    SESSION_COOKIE,
    auth_changed,
    client_address,
    get_db,
    set_session_cookie,
)
from datalabs.errors import Forbidden, TooManyRequests, Unauthorized
from datalabs.web.render import page, redirect
from datalabs.web.security import (
    HOME,
    HtmlRoute,
    check_csrf,
    ensure_anon_key,
    posting_user,
    safe_next,
    viewer,
)

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


def _login_form(
    request: Request, next_url: str, username: str = "", error: str = "", status: int = 200, headers=None
):
    key = ensure_anon_key(request)
    sso = request.app.state.settings.oidc
    return page(
        request,
        "login.html",
        title="Log in",
        status=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        next_url=next_url,
        username=username,
        error=error,
        login_csrf=auth.csrf_token(request.app.state.settings, key),
        providers=sso.providers,
        local_login=sso.local_login,
        sso_next=quote(next_url, safe="/") if next_url else "",
    )


@router.get("/login")
def login_page(
    request: Request,
    next: str = Query("", max_length=2000),
    principal: Principal | None = Depends(viewer),
):
    if principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, safe_next(next) if next else "")


@router.post("/login")
async def login(
    request: Request,
    username: str = Form("", max_length=200),
    password: str = Form("", max_length=1000),
    next: str = Form("", max_length=2000),
    principal: Principal | None = Depends(viewer),
    db: Session = Depends(get_db),
):
    # The login form is always bound to the anonymous cookie, even if another tab has logged in since.
    await check_csrf(request, request.cookies.get(ANON_COOKIE, ""))
    settings = request.app.state.settings
    target = safe_next(next)
    request.state.audit_who = username.strip()  # the audit record names the user tried, failed or not
    try:
        user = auth.authenticate(db, settings, username.strip(), password, client_address(request))
    except TooManyRequests as exc:
        headers = {"Retry-After": str(exc.retry_after)}
        return _login_form(request, target, username, exc.message, status=429, headers=headers)
    except Unauthorized:
        return _login_form(request, target, username, auth.BAD_LOGIN, status=401)
    except Forbidden as exc:
        return _login_form(request, target, username, exc.message, status=403)
    if old := request.cookies.get(SESSION_COOKIE):
        auth.end_session(db, old)  # a fresh session id on every login (no session fixation)
    value = auth.start_session(db, settings, user)
    db.commit()
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, settings, value)
    return response


@router.post("/logout")
def logout(
    request: Request,
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    auth.end_session(db, request.cookies[SESSION_COOKIE])
    db.commit()
    auth_changed(request)
    target = "/login"
    if sso := request.cookies.get(oidc.SSO_COOKIE):  # signed in at a provider: end its session too
        public = request.app.state.settings.server.public_url.rstrip("/")
        after = public + "/login" if public else str(request.url_for("login_page"))
        target = oidc.end_session_url(oidc.registry_for(request.app.state), sso, after) or target
    response = redirect(request, target, "You have been logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(oidc.SSO_COOKIE, path="/logout")
    return response


@router.get("/logout")
def logout_page(request: Request, principal: Principal | None = Depends(viewer)):
    """Typed or bookmarked: logging out changes state, so it asks for the (CSRF-protected) button."""
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return page(request, "logout.html", title="Log out")
