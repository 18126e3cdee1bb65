"""API tokens of the current user."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.accounts.scopes import SCOPES
from datalabs.api.schemas import Strict, TokenRead
from datalabs.config import Settings
from datalabs.deps import auth_changed, current_principal, get_db, get_settings

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=lambda: ["all"], description=f"Any of: {', '.join(SCOPES)}")
    expires_in: int | None = Field(None, description="Seconds until it expires; none = never.")


class TokenCreated(TokenRead):
    token: str = Field(description="The secret; shown only now.")


def _full(principal: Principal = Depends(current_principal)) -> Principal:
    auth.require_full_access(principal)
    return principal


@router.post("", status_code=201, response_model=TokenCreated, responses={401: {}, 403: {}})
def create_token(
    body: TokenCreate,
    principal: Principal = Depends(_full),
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    token, secret = auth.create_token(db, settings, principal.user, body.name, body.scopes, body.expires_in)
    db.commit()
    return TokenCreated(**TokenRead.of(token).model_dump(), token=secret)


@router.get("", response_model=list[TokenRead], responses={401: {}, 403: {}})
def list_tokens(principal: Principal = Depends(_full), db: Session = Depends(get_db)):
    return [TokenRead.of(t) for t in auth.list_tokens(db, principal.user)]


@router.delete("/{token_id}", status_code=204, responses={401: {}, 403: {}, 404: {}})
def revoke_token(
    token_id: str, request: Request, principal: Principal = Depends(_full), db: Session = Depends(get_db)
):
    auth.revoke_token(db, principal, token_id)
    db.commit()
    auth_changed(request)
