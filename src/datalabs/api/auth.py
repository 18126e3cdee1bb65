"""Login, logout and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts import auth
from datalabs.accounts.principal import Principal
from datalabs.accounts.service import user_groups
from datalabs.api.schemas import Strict, UserRead
from datalabs.config import Settings
from datalabs.deps import (
    SESSION_COOKIE,
    auth_changed,
    client_address,
    current_principal,
    get_db,
    get_settings,
    set_session_cookie,
)

router = APIRouter(prefix="/api/v1", tags=["auth"])


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class Me(UserRead):
    via: str
    scopes: list[str]
    csrf_token: str = ""


class LoginResult(BaseModel):
    user: UserRead
    csrf_token: str


@router.post("/login", response_model=LoginResult, responses={401: {}, 429: {}})
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    db: Session = Depends(get_db),
    settings: Settings = Depends(get_settings),
):
    """Check the password and start a browser session (HttpOnly, SameSite=Lax cookie)."""
    request.state.audit_who = body.username  # the audit record names the user tried, failed or not
    user = auth.authenticate(db, settings, body.username, body.password, client_address(request))
    value = auth.start_session(db, settings, user)
    db.commit()
    set_session_cookie(response, settings, value)
    return LoginResult(
        user=UserRead.of(user, user_groups(db, user.id)), csrf_token=auth.csrf_token(settings, value)
    )


@router.post("/logout", status_code=204, responses={401: {}})
def logout(
    request: Request,
    response: Response,
    principal: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
):
    """End the browser session (a no-op for token requests: revoke the token instead)."""
    if cookie := request.cookies.get(SESSION_COOKIE):
        auth.end_session(db, cookie)
        db.commit()
        auth_changed(request)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=Me, responses={401: {}})
async def me(
    request: Request,
    principal: Principal = Depends(current_principal),
    settings: Settings = Depends(get_settings),
):
    csrf = auth.csrf_token(settings, request.cookies[SESSION_COOKIE]) if principal.via == "session" else ""
    return Me(
        **UserRead.of(principal.user, sorted(principal.groups)).model_dump(),
        via=principal.via,
        scopes=sorted(principal.scopes),
        csrf_token=csrf,
    )
