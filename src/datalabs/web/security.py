"""Who is browsing, login redirects, CSRF checks, and the route class that renders errors as HTML pages.

Pages authenticate with the session cookie only (bearer tokens are for the API). Every form POST must
echo the CSRF token bound to the session cookie (or, before login, to the anonymous cookie), either in
the `csrf_token` form field or in the `X-CSRF-Token` header that htmx sends.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.deps import ANON_COOKIE, SESSION_COOKIE, get_db
from datalabs.errors import DatalabsError, Forbidden, TooManyRequests

HOME = "/catalogue"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_FAILED = (
    "The form could not be accepted because its security token is missing or out of date. "
    "Go back, reload the page and try again."
)


class LoginRequired(Exception):
    """Raised by page dependencies for anonymous visitors; answered with a redirect to the login page."""

    def __init__(self, next_url: str = "") -> None:
        super().__init__(next_url)
        self.next_url = next_url


def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (other hosts, schemes, `//x`, `/\\x`) gives HOME."""
    value = (value or "").strip()
    if (
        not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(c == "\\" or ord(c) < 32 for c in value)
    ):
        return HOME
    return value


def login_url(next_url: str = "") -> str:
    return "/login" + (f"?next={quote(safe_next(next_url), safe='/')}" if next_url else "")


def viewer(request: Request, db: Session = Depends(get_db)) -> Principal | None:
    """The logged-in user (session cookie), or None; kept on request.state for the layout."""
    if getattr(request.state, "web_checked", False):
        return request.state.principal
    cookie = request.cookies.get(SESSION_COOKIE)
    principal = auth.principal_from_session(db, cookie) if cookie else None
    request.state.principal = principal
    request.state.web_checked = True
    return principal


def require_user(request: Request, principal: Principal | None = Depends(viewer)) -> Principal:
    if principal is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else "")
    return principal


def require_admin(principal: Principal = Depends(require_user)) -> Principal:
    principal.require_admin()
    return principal


def csrf_key(request: Request) -> str:
    """The cookie value the CSRF token is bound to: the session when logged in, else the anonymous one."""
    if getattr(request.state, "principal", None) is not None:
        return request.cookies.get(SESSION_COOKIE, "")
    return getattr(request.state, "anon_key", "") or request.cookies.get(ANON_COOKIE, "")


def ensure_anon_key(request: Request) -> str:
    """The anonymous visitor's key, making a new one (set as a cookie by `set_anon_cookie`) if needed."""
    key = request.cookies.get(ANON_COOKIE) or getattr(request.state, "anon_key", "")
    if not key:
        key = secrets.token_urlsafe(24)
        request.state.anon_key = key
    return key


def set_anon_cookie(request: Request, response: Response) -> None:
    if key := getattr(request.state, "anon_key", ""):
        settings = request.app.state.settings
        response.set_cookie(
            ANON_COOKIE,
            key,
            httponly=True,
            samesite="lax",
            secure=settings.auth.cookie_secure,
            path="/",
            max_age=settings.auth.session_ttl,
        )


def csrf_value(request: Request) -> str:
    key = csrf_key(request)
    return auth.csrf_token(request.app.state.settings, key) if key else ""


async def check_csrf(request: Request, key: str | None = None) -> None:
    """Raise Forbidden unless the request carries the CSRF token bound to `key` (default: the visitor's
    cookie, see `csrf_key`)."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    key = csrf_key(request) if key is None else key
    if not auth.check_csrf(request.app.state.settings, key, sent):
        raise Forbidden(CSRF_FAILED, code="csrf")


async def posting_user(request: Request, principal: Principal = Depends(require_user)) -> Principal:
    await check_csrf(request)
    return principal


async def posting_admin(request: Request, principal: Principal = Depends(require_admin)) -> Principal:
    await check_csrf(request)
    return principal


class HtmlRoute(APIRoute):
    """Route class for pages: login redirects and domain errors become pages, whatever the Accept header."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return RedirectResponse(login_url(exc.next_url), status_code=303)
            except DatalabsError as exc:
                headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
                return await request.app.state.render_error(request, exc.status, exc.message, headers)
            except RequestValidationError as exc:
                message = "; ".join(str(e.get("msg", "")) for e in exc.errors()) or "invalid request"
                return await request.app.state.render_error(request, 422, message, None)

        return page_handler
