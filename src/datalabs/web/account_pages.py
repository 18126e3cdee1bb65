"""The user's API tokens: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.accounts.scopes import SCOPES
from datalabs.deps import auth_changed, get_db
from datalabs.errors import DatalabsError, Invalid
from datalabs.web import forms
from datalabs.web.render import page, redirect
from datalabs.web.security import HtmlRoute, posting_user, require_user

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
EXPIRY_CHOICES = (("", "Never"), ("86400", "1 day"), ("2592000", "30 days"), ("31536000", "1 year"))
# Secrets must not linger in caches or the back/forward history of a shared machine.
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/account")
def account_home() -> RedirectResponse:
    return RedirectResponse("/account/tokens", status_code=303)


def _tokens_page(
    request: Request,
    db: Session,
    principal: Principal,
    *,
    status: int = 200,
    created: dict | None = None,
    error: str = "",
    form: dict | None = None,
):
    max_ttl = request.app.state.settings.auth.token_max_ttl
    return page(
        request,
        "tokens.html",
        title="API tokens",
        active="account",
        status=status,
        headers=NO_STORE,
        tokens=auth.list_tokens(db, principal.user),
        scopes=SCOPES,
        expiry_choices=[(v, label) for v, label in EXPIRY_CHOICES if not v or int(v) <= max_ttl],
        created=created,
        error=error,
        form=form or {"name": "", "scopes": ["all"], "expires_in": "2592000"},
    )


@router.get("/account/tokens")
def tokens_page(
    request: Request, principal: Principal = Depends(require_user), db: Session = Depends(get_db)
):
    return _tokens_page(request, db, principal)


@router.post("/account/tokens")
def create_token(
    request: Request,
    name: str = Form("", max_length=200),
    scopes: list[str] = Form([]),
    expires_in: str = Form("", max_length=20),
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    form = {"name": name, "scopes": scopes, "expires_in": expires_in}

    def action():
        if not scopes:
            raise Invalid("choose at least one scope", code="invalid_scope")
        if expires_in and not expires_in.isdigit():
            raise Invalid("choose an expiry from the list", code="invalid_expiry")
        ttl = int(expires_in) if expires_in else None
        return auth.create_token(db, request.app.state.settings, principal.user, name, scopes, ttl)

    def shown_once(made):
        # Shown in this response only (not after a redirect): the secret is never stored anywhere.
        token, secret = made
        created = {"id": token.id, "name": token.name, "secret": secret}
        return _tokens_page(request, db, principal, status=201, created=created)

    def again(exc: DatalabsError):
        return _tokens_page(request, db, principal, status=exc.status, error=exc.message, form=form)

    return forms.submit(request, db, action, refused=again, then=shown_once)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(
    request: Request,
    token_id: str,
    principal: Principal = Depends(posting_user),
    db: Session = Depends(get_db),
):
    tokens = {t.id: t.name for t in auth.list_tokens(db, principal.user)}
    if token_id not in tokens:  # only one's own tokens here, even for admins
        return redirect(
            request, "/account/tokens", "That token does not exist or is already revoked.", "error"
        )
    auth.revoke_token(db, principal, token_id)
    db.commit()
    auth_changed(request)  # the API's cached answer for this token must go now, not in a few seconds
    return redirect(request, "/account/tokens", f"Token '{tokens[token_id]}' revoked.")
