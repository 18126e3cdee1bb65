"""API request and response models shared by several routers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from datalabs.db.models import ApiToken, User


class UserRead(BaseModel):
    name: str
    email: str
    full_name: str
    role: str
    active: bool
    groups: list[str]
    created_at: datetime
    last_login: datetime | None

    @classmethod
    def of(cls, user: User, groups: list[str] | None = None) -> UserRead:
        if groups is None:
            groups = sorted(m.group.name for m in user.memberships)
        return cls(
            name=user.name,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            active=user.active,
            groups=groups,
            created_at=user.created_at,
            last_login=user.last_login,
        )


class TokenRead(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used: datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenRead:
        return cls(
            id=t.id,
            name=t.name,
            scopes=t.scopes,
            created_at=t.created_at,
            expires_at=t.expires_at,
            last_used=t.last_used,
        )


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel):
    total: int
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)
