"""Groups (teams) and their members (admins only)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from datalabs.accounts import service
from datalabs.accounts.principal import Principal
from datalabs.api.schemas import Strict
from datalabs.db.models import Group
from datalabs.deps import admin, forget_after_changes, get_db

router = APIRouter(
    prefix="/api/v1/groups",
    tags=["groups"],
    responses={401: {}, 403: {}},
    dependencies=[Depends(forget_after_changes)],
)


class GroupCreate(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=2000)


class Member(BaseModel):
    user: str
    role: str


class GroupRead(BaseModel):
    name: str
    description: str
    members: list[Member]

    @classmethod
    def of(cls, g: Group) -> GroupRead:
        members = sorted((Member(user=m.user.name, role=m.role) for m in g.memberships), key=lambda m: m.user)
        return cls(name=g.name, description=g.description, members=members)


class MemberSet(Strict):
    role: Literal["owner", "member", "readonly"] = "member"


@router.get("", response_model=list[GroupRead])
def list_groups(_: Principal = Depends(admin), db: Session = Depends(get_db)):
    return [GroupRead.of(g) for g in service.list_groups(db)]


@router.post("", status_code=201, response_model=GroupRead, responses={409: {}})
def create_group(body: GroupCreate, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    group = service.create_group(db, body.name, body.description)
    db.commit()
    return GroupRead(name=group.name, description=group.description, members=[])


@router.get("/{group}", response_model=GroupRead, responses={404: {}})
def get_group(group: str, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    return GroupRead.of(service.get_group(db, group))


@router.delete("/{group}", status_code=204, responses={404: {}})
def delete_group(group: str, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    service.delete_group(db, group)
    db.commit()


@router.put("/{group}/members/{user}", response_model=Member, responses={404: {}})
def set_member(
    group: str,
    user: str,
    body: MemberSet | None = None,
    _: Principal = Depends(admin),
    db: Session = Depends(get_db),
):
    """Add a member, or change their role (owner, member, read-only)."""
    membership = service.set_member(db, group, user, (body or MemberSet()).role)
    db.commit()
    return Member(user=user, role=membership.role)


@router.delete("/{group}/members/{user}", status_code=204, responses={404: {}})
def remove_member(group: str, user: str, _: Principal = Depends(admin), db: Session = Depends(get_db)):
    service.remove_member(db, group, user)
    db.commit()
