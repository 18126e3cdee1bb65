"""Users, groups and memberships."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from datalabs.accounts.passwords import MIN_LENGTH, hash_password
from datalabs.db.models import Group, Membership, User
from datalabs.errors import Conflict, Invalid, NotFound
from datalabs.sandbox import identity
from datalabs.sandbox.identity import Identity

if TYPE_CHECKING:
    from datalabs.config import Settings

ROLES = ("admin", "moderator", "user")
MEMBER_ROLES = ("owner", "member", "readonly")
# Names become directory names (workspaces) and URL segments, so they are kept plain.
NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise Invalid(
            f"{kind} name '{name}' is not valid: use 2-32 characters (lowercase letters, digits, "
            "'_', '.', '-'), starting with a letter",
            code=f"invalid_{kind}_name",
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"password too short: at least {MIN_LENGTH} characters", code="weak_password")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise Invalid(f"role '{role}' is not one of {', '.join(ROLES)}", code="invalid_role")


def _check_email(email: str) -> None:
    if email and not EMAIL_RE.fullmatch(email):
        raise Invalid(f"'{email}' is not an e-mail address", code="invalid_email")


def create_user(
    db: Session, name: str, password: str, *, role: str = "user", email: str = "", full_name: str = ""
) -> User:
    check_name("user", name)
    _check_password(password)
    _check_role(role)
    _check_email(email)
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"user '{name}' already exists", code="user_exists")
    user = User(name=name, password_hash=hash_password(password), role=role, email=email, full_name=full_name)
    db.add(user)
    db.flush()
    return user


def update_user(
    db: Session,
    name: str,
    *,
    password: str | None = None,
    role: str | None = None,
    email: str | None = None,
    full_name: str | None = None,
    active: bool | None = None,
) -> User:
    user = get_user(db, name)
    if password is not None:
        _check_password(password)
        user.password_hash = hash_password(password)
    if role is not None:
        _check_role(role)
        user.role = role
    if email is not None:
        _check_email(email)
        user.email = email
    if full_name is not None:
        user.full_name = full_name
    if active is not None:
        user.active = active
    db.flush()
    return user


def get_user(db: Session, name: str) -> User:
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user '{name}'", code="user_not_found")
    return user


def list_users(db: Session, *, limit: int = 100, offset: int = 0) -> tuple[list[User], int]:
    total = db.scalar(select(func.count(User.id))) or 0
    users = db.scalars(
        select(User)
        .options(selectinload(User.memberships).selectinload(Membership.group))
        .order_by(User.name)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(users), total


def delete_user(db: Session, name: str, acting: User | None = None) -> None:
    if acting is not None and acting.name == name:
        raise Conflict("you cannot delete your own account", code="self_delete")
    db.delete(get_user(db, name))
    db.flush()


def user_groups(db: Session, user_id: int) -> list[str]:
    return list(
        db.scalars(
            select(Group.name).join(Membership).where(Membership.user_id == user_id).order_by(Group.name)
        )
    )


def create_group(db: Session, name: str, description: str = "") -> Group:
    check_name("group", name)
    if db.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise Conflict(f"group '{name}' already exists", code="group_exists")
    group = Group(name=name, description=description)
    db.add(group)
    db.flush()
    return group


def get_group(db: Session, name: str) -> Group:
    group = db.scalar(
        select(Group)
        .where(Group.name == name)
        .options(selectinload(Group.memberships).selectinload(Membership.user))
    )
    if group is None:
        raise NotFound(f"no group '{name}'", code="group_not_found")
    return group


def list_groups(db: Session) -> list[Group]:
    return list(
        db.scalars(
            select(Group)
            .options(selectinload(Group.memberships).selectinload(Membership.user))
            .order_by(Group.name)
        )
    )


def delete_group(db: Session, name: str) -> None:
    db.delete(get_group(db, name))
    db.flush()


def set_member(db: Session, group_name: str, user_name: str, role: str = "member") -> Membership:
    """Add `user` to `group`, or change their role there (idempotent)."""
    if role not in MEMBER_ROLES:
        raise Invalid(f"member role '{role}' is not one of {', '.join(MEMBER_ROLES)}", code="invalid_role")
    group, user = get_group(db, group_name), get_user(db, user_name)
    membership = db.get(Membership, (group.id, user.id))
    if membership is None:
        membership = Membership(group_id=group.id, user_id=user.id, role=role)
        db.add(membership)
    else:
        membership.role = role
    db.flush()
    return membership


def remove_member(db: Session, group_name: str, user_name: str) -> None:
    group, user = get_group(db, group_name), get_user(db, user_name)
    membership = db.get(Membership, (group.id, user.id))
    if membership is None:
        raise NotFound(f"'{user_name}' is not a member of '{group_name}'", code="member_not_found")
    db.delete(membership)
    db.flush()


def sandbox_identity(db: Session, settings: Settings, user: User) -> Identity | None:
    """The uid and team groups `user`'s labs, tool runs and builds run as (None: the platform is not
    root and sandboxes run as its own user, see sandbox/identity.py)."""
    teams = db.execute(
        select(Group.id, Group.name).join(Membership).where(Membership.user_id == user.id)
    ).all()
    s = settings.sandbox
    return identity.of(s.uid_base, s.team_gid_base, user.id, user.name, [(gid, name) for gid, name in teams])
