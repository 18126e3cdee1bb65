"""User administration (admins only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts import service
from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict, UserRead
from datalabs.deps import admin, forget_after_changes, get_db

router = APIRouter(
    prefix="/api/v1/users",
    tags=["users"],
    responses={401: {}, 403: {}},
    dependencies=[Depends(forget_after_changes)],
)
Role = Literal["admin", "moderator", "user"]


class UserCreate(Strict):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1000)
    role: Role = "user"
    email: str = Field("", max_length=254)
    full_name: str = Field("", max_length=200)


class UserUpdate(Strict):
    password: str | None = Field(None, min_length=1, max_length=1000)
    role: Role | None = None
    email: str | None = Field(None, max_length=254)
    full_name: str | None = Field(None, max_length=200)
    active: bool | None = None


class UserPage(BaseModel):
    total: int
    items: list[UserRead]


@router.get("", response_model=UserPage)
def list_users(
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000_000),
    _: Principal = Depends(admin),
    db: Session = Depends(get_db),
):
    users, total = service.list_users(db, limit=limit, offset=offset)
    return UserPage(total=total, items=[UserRead.of(u) for u in users])


@router.post("", status_code=201, response_model=UserRead, responses={409: {}})
def create_user(body: UserCreate, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    user = service.create_user(
        db, body.name, body.password, role=body.role, email=body.email, full_name=body.full_name
    )
    db.commit()
    return UserRead.of(user, [])


@router.get("/{name}", response_model=UserRead, responses={404: {}})
def get_user(name: str, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    user = service.get_user(db, name)
    return UserRead.of(user, service.user_groups(db, user.id))


@router.patch("/{name}", response_model=UserRead, responses={404: {}})
def update_user(name: str, body: UserUpdate, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    user = service.update_user(db, name, **body.model_dump(exclude_unset=True))
    db.commit()
    return UserRead.of(user, service.user_groups(db, user.id))


@router.delete("/{name}", status_code=204, responses={404: {}, 409: {}})
def delete_user(name: str, principal: Principal = Depends(admin), db: Session = Depends(get_db)):
    service.delete_user(db, name, acting=principal.user)
    db.commit()
