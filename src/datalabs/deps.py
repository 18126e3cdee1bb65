"""Request dependencies shared by the API and the pages: DB session, settings, the authenticated principal,
scope and role checks, the session cookie, and what kind of request this is. Neutral ground: `api/` and
`web/` both import it and neither imports the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.engine import THREADS, transaction
from datalabs.errors import Forbidden, Unauthorized
from datalabs.origins import same_origin

SESSION_COOKIE = "datalabs_session"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANON_COOKIE = "datalabs_anon"


# The dependencies that only read what the request already holds are `async def`: FastAPI runs a plain
# `def` dependency in a worker thread, and those hops were most of an authenticated request's cost.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def _session_slot() -> AsyncIterator[None]:
    yield


# At most THREADS requests hold a session at once; the others wait for a slot in the event loop, holding
# nothing. Without it, a request's session keeps its pool connection across its next thread hop (FastAPI
# validates a sync route's response in a worker thread, before the session closes): under a thousand
# clients, every connection was held by requests queued for a thread while every thread waited for a
# connection, until the pool's 30 s timeout answered 500 (bench replicas; tests/test_deps_slots.py).
# The limit is a sub-dependency so that one semaphore (per event loop) covers every `Depends(get_db)`.
_SESSION_SLOT = Depends(_session_slot, max_concurrency=THREADS)


def get_db(request: Request, _slot: None = _SESSION_SLOT) -> Iterator[Session]:
    """A session per request; routes that change data commit explicitly, anything else is rolled back."""
    with request.app.state.sessions() as session:
        yield session


async def optional_principal(request: Request) -> Principal | None:
    """The caller, from `Authorization: Bearer` or the session cookie, through the shared, briefly caching
    authenticator (see `auth_changed`); None when anonymous."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'", code="bad_authorization")
    principal = await request.app.state.authenticator(request.scope)
    if header and principal is None:
        raise Unauthorized("token is invalid, expired or revoked", code="invalid_token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal and not header and request.method in _WRITES and request.url.path.startswith("/api/"):
        _check_api_csrf(request, cookie or "")
    request.state.principal = principal
    return principal


def auth_changed(request: Request) -> None:
    """Call after revoking a token, ending a session or changing a user or membership: cached answers of
    this process are dropped at once, other replicas' once they see the generation move (within
    `server.sync_interval` seconds)."""
    request.app.state.authenticator.forget_all()
    with transaction(request.app.state.sessions) as db:
        auth.bump_generation(db)


def forget_after_changes(request: Request) -> Iterator[None]:
    """Router dependency for user and group administration: any change drops cached principals."""
    yield
    if request.method != "GET":
        auth_changed(request)


def _check_api_csrf(request: Request, cookie: str) -> None:
    """A change made with the session cookie must come from the platform's own pages: the browser sends
    the cookie with whatever any page asks, so the cookie alone proves nothing. The `X-CSRF-Token`
    header (the token bound to the session, which only the platform's pages and GET /api/v1/me give out)
    proves the page could read the platform's responses; a JSON content type proves nothing (a
    same-site page such as a lab's may send one). A browser's `Origin`, when sent, must be ours too."""
    settings = request.app.state.settings
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and not same_origin(origin, request.url.scheme, host, settings.server.public_url):
        raise Forbidden("cookie-authenticated changes must come from the platform's own pages", code="csrf")
    if not auth.check_csrf(settings, cookie, request.headers.get("x-csrf-token")):
        raise Forbidden(
            "cookie-authenticated changes need the X-CSRF-Token header (its value: GET /api/v1/me)",
            code="csrf",
        )


async def current_principal(principal: Principal | None = Depends(optional_principal)) -> Principal:
    if principal is None:
        raise Unauthorized("log in or send 'Authorization: Bearer <token>'", code="not_authenticated")
    return principal


def scope(needed: str):
    """Dependency: an authenticated principal whose token grants `needed`."""

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(needed)
        return principal

    return check


async def admin(principal: Principal = Depends(current_principal)) -> Principal:
    principal.require_admin()
    return principal


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def set_session_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=settings.auth.session_ttl,
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
        path="/",
    )


def page_request(request: Request) -> bool:
    """A browser asking for a page (not the API, STAC or monitoring): errors are answered as pages."""
    api = request.url.path.startswith(("/api/", "/stac", "/healthz", "/metrics"))
    return not api and "text/html" in request.headers.get("accept", "")
