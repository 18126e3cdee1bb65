"""Single sign-on pages: /login/oidc/{provider} sends the browser to the provider, /callback signs it in."""

from __future__ import annotations

import json
import re

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from datalabs import audit
from datalabs.accounts import auth, oidc, oidc_users
from datalabs.audit import chain
from datalabs.deps import SESSION_COOKIE, get_db, set_session_cookie
from datalabs.web.auth_pages import _login_form
from datalabs.web.security import HtmlRoute, safe_next

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
FLOW_COOKIE = "datalabs_oidc"
SIGN_IN = "GET /login/oidc/{provider}/callback"  # the audit record's `what`, as the middleware names routes


def registry(request: Request) -> oidc.Registry:
    """The app's provider registry (discovery and keys cached per process), made on first use."""
    return oidc.registry_for(request.app.state)


def callback_url(request: Request, provider: str) -> str:
    public = request.app.state.settings.server.public_url.rstrip("/")
    path = f"/login/oidc/{provider}/callback"
    return public + path if public else str(request.url_for("oidc_callback", provider=provider))


@router.get("/login/oidc/{provider}")
async def oidc_login(
    request: Request, provider: str, next: str = Query("", max_length=2000), db: Session = Depends(get_db)
):
    settings = request.app.state.settings
    try:
        info = await run_in_threadpool(registry(request).info, provider)
        url, cookie = oidc.begin(db, settings, info, callback_url(request, provider), safe_next(next))
    except oidc.OidcError as exc:
        return _login_form(request, safe_next(next) if next else "", error=exc.message, status=exc.status)
    db.commit()
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        FLOW_COOKIE,
        cookie,
        max_age=oidc.FLOW_TTL,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on cross-site subrequests
        secure=settings.auth.cookie_secure,
        path="/login/oidc/",
    )
    return response


@router.get("/login/oidc/{provider}/callback", name="oidc_callback")
async def oidc_callback(
    request: Request,
    provider: str,
    code: str = Query("", max_length=2000),
    state: str = Query("", max_length=200),
    error: str = Query("", max_length=200),
    db: Session = Depends(get_db),
):
    settings = request.app.state.settings
    claims: dict | None = None  # once the provider's ID token is verified: whom a refusal concerns
    try:
        if error:
            # Only the error code, and only if it looks like one: anyone can send a browser here with text.
            code_word = error if re.fullmatch(r"[a-z_]{1,40}", error) else "unknown error"
            raise oidc.OidcError(f"the provider refused the sign-in ({code_word})")
        if not code or not state:
            raise oidc.OidcError("the provider sent no code or state", "oidc_state")
        reg = registry(request)
        info = await run_in_threadpool(reg.info, provider)
        cookie = request.cookies.get(FLOW_COOKIE, "")
        claims, id_token, next_url = await run_in_threadpool(
            oidc.finish, db, settings, info, cookie, state, code, callback_url(request, provider)
        )
        # In a worker thread: a first sign-in racing another one may wait on the database's lock.
        value = await run_in_threadpool(_sign_in, request, db, info, claims, provider)
    except oidc.OidcError as exc:
        db.rollback()
        who = oidc_users.username_from(claims.get(info.config.username_claim)) if claims else None
        await run_in_threadpool(_record_failure, request, provider, exc, who or None)
        response = _login_form(request, "", error=exc.message, status=exc.status)
        response.delete_cookie(FLOW_COOKIE, path="/login/oidc/")
        return response
    response = RedirectResponse(safe_next(next_url), status_code=303)
    set_session_cookie(response, settings, value)
    response.delete_cookie(FLOW_COOKIE, path="/login/oidc/")
    response.set_cookie(  # logging out then also ends the provider's session
        oidc.SSO_COOKIE,
        f"{provider}:{id_token}",
        max_age=settings.auth.session_ttl,
        httponly=True,
        samesite="lax",
        secure=settings.auth.cookie_secure,
        path="/logout",
    )
    return response


def _sign_in(request: Request, db: Session, info, claims: dict, provider: str) -> str:
    """The user signed in (created or linked, teams synced), a fresh session, and the audit record, all in
    one transaction; returns the session cookie's value."""
    user = oidc_users.sign_in(db, info.config, claims)
    if old := request.cookies.get(SESSION_COOKIE):
        auth.end_session(db, old)  # a fresh session id on every login (no session fixation)
    value = auth.start_session(db, request.app.state.settings, user)
    chain.append(db, who=user.name, outcome="303", **_where(request, provider))
    db.commit()
    return value


def _record_failure(request: Request, provider: str, exc: oidc.OidcError, who: str | None) -> None:
    """A refused sign-in, in its own transaction: the provider, why (the error's code), from where, and
    the user when the provider's token said who it was."""
    audit.record_now(
        request.app.state.sessions,
        who=who,
        outcome=str(exc.status),
        detail={"reason": exc.code},
        **_where(request, provider),
    )


def _where(request: Request, provider: str) -> dict:
    return {
        "what": SIGN_IN,
        "target": json.dumps({"provider": provider}),
        "client": request.client.host if request.client else None,
    }
