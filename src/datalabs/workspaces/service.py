"""Workspaces: who may read and write which space, team workspace creation, quotas and usage.

A space is addressed as `me` (the caller's personal workspace) or `team:<name>`. Team workspaces exist
once an admin or one of the team's owners creates them; owners and members write, read-only members
read, admins manage all, and everyone else is told it does not exist (404, as for labs)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts import service as accounts
from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Group, Membership, TeamWorkspace, User
from datalabs.errors import Conflict, Forbidden, Invalid, NotFound
from datalabs.sandbox import identity
from datalabs.sandbox import quota as project_quotas
from datalabs.workspaces import layout
from datalabs.workspaces.paths import Ownership
from datalabs.workspaces.tree import Tree

WRITERS = ("owner", "member", "admin", "self")


@dataclass(frozen=True)
class Space:
    id: str  # "me" or "team:<name>" (as the caller addresses it)
    kind: str  # personal | team
    name: str  # the user's or the team's name
    role: str  # self | owner | member | readonly | admin
    quota: int  # bytes
    tree: Tree

    @property
    def writable(self) -> bool:
        return self.role in WRITERS

    @property
    def key(self) -> str:
        """The space's identity whoever asks ("user:ada", "team:astro"): the usage cache's key."""
        return f"user:{self.name}" if self.kind == "personal" else f"team:{self.name}"


def personal(settings: Settings, user: User) -> Space:
    """`user`'s personal workspace; what the platform writes there belongs to their sandbox uid."""
    quota = settings.workspaces.quotas.get(f"user:{user.name}", settings.workspaces.user_quota)
    owner = None
    if identity.privileged():
        uid = identity.user_uid(settings.sandbox.uid_base, user.id)
        owner = Ownership(uid, uid)
    root = layout.user_dir(settings, user.name, (owner.uid, owner.gid) if owner else None)
    tree = Tree(root, owner=owner, unlisted=frozenset({layout.DOT_DATALABS}))
    return Space("me", "personal", user.name, "self", int(quota), tree)


def _team(settings: Settings, team: TeamWorkspace, role: str, acting: User) -> Space:
    """A team's workspace as `acting` uses it: what the platform writes there is the acting user's, in
    the team's group, group-writable."""
    name = team.group.name
    quota = team.quota or settings.workspaces.quotas.get(f"team:{name}", settings.workspaces.team_quota)
    owner = None
    if identity.privileged():
        gid = identity.team_gid(settings.sandbox.team_gid_base, team.group_id)
        owner = Ownership(identity.user_uid(settings.sandbox.uid_base, acting.id), gid, shared=True)
    root = layout.team_dir(settings, name, owner.gid if owner else None)
    return Space(f"team:{name}", "team", name, role, int(quota), Tree(root, owner=owner))


def resolve(db: Session, settings: Settings, principal: Principal, ws: str, *, write: bool = False) -> Space:
    """The space `ws` as the principal may use it; Forbidden for a write to a read-only space."""
    if ws == "me":
        space = personal(settings, principal.user)
    elif ws.startswith("team:"):
        space = _team_for(db, settings, principal, ws[5:])
    else:
        raise NotFound(f"no workspace '{ws}': use 'me' or 'team:<name>'", code="workspace_not_found")
    if write and not space.writable:
        raise Forbidden(
            f"you are a read-only member of team '{space.name}': you may read its workspace, not change it",
            code="read_only",
        )
    return space


def _team_for(db: Session, settings: Settings, principal: Principal, name: str) -> Space:
    row = db.scalar(select(TeamWorkspace).join(Group).where(Group.name == name))
    role = _role(db, principal, name) if row is not None else None
    if row is None or role is None:
        raise NotFound(f"no team workspace '{name}' you can see", code="workspace_not_found")
    return _team(settings, row, role, principal.user)


def _role(db: Session, principal: Principal, team: str) -> str | None:
    role = db.scalar(
        select(Membership.role).join(Group).where(Group.name == team, Membership.user_id == principal.user.id)
    )
    if role is None and principal.is_admin:
        return "admin"
    return role


def list_spaces(
    db: Session, settings: Settings, principal: Principal, *, everyone: bool = False
) -> list[Space]:
    """The caller's personal workspace, then the team workspaces of their teams (all of them for an
    admin asking for `everyone`)."""
    spaces = [personal(settings, principal.user)]
    roles = dict(
        db.execute(
            select(Group.name, Membership.role)
            .join(Membership)
            .where(Membership.user_id == principal.user.id)
        ).all()
    )
    rows = db.scalars(select(TeamWorkspace).join(Group).order_by(Group.name)).all()
    for row in rows:
        role = roles.get(row.group.name) or ("admin" if everyone and principal.is_admin else None)
        if role:
            spaces.append(_team(settings, row, role, principal.user))
    return spaces


def create_team_workspace(
    db: Session, settings: Settings, principal: Principal, team: str, quota: int | None = None
) -> Space:
    """Admins create any team's workspace; a team's owners create their own (with the default quota)."""
    group = db.scalar(select(Group).where(Group.name == team))
    role = _role(db, principal, team) if group is not None else None
    if group is None or (role is None and not principal.is_admin):
        raise NotFound(f"no team '{team}'", code="group_not_found")
    if not principal.is_admin and role != "owner":
        raise Forbidden(
            "only administrators and the team's owners can create its workspace", code="not_owner"
        )
    if quota is not None and not principal.is_admin:
        raise Forbidden("only administrators can set a team's quota", code="not_admin")
    if db.get(TeamWorkspace, group.id) is not None:
        raise Conflict(f"team '{team}' already has a workspace", code="workspace_exists")
    if quota is not None and quota <= 0:
        raise Invalid("a quota must be a positive number of bytes", code="bad_quota")
    row = TeamWorkspace(group_id=group.id, quota=quota, created_by=principal.name)
    db.add(row)
    db.flush()
    row.group = group
    return _team(settings, row, role or "admin", principal.user)


def mountable_teams(db: Session, user: User) -> list[tuple[str, bool]]:
    """(team, read-only) for each team workspace the user belongs to: what a lab of theirs mounts."""
    rows = db.execute(
        select(Group.name, Membership.role)
        .join(Membership, Membership.group_id == Group.id)
        .join(TeamWorkspace, TeamWorkspace.group_id == Group.id)
        .where(Membership.user_id == user.id)
        .order_by(Group.name)
    ).all()
    return [(name, role == "readonly") for name, role in rows]


def team_root(db: Session, settings: Settings, team: str) -> Path:
    """The folder of `team`'s workspace, group-owned by the team's gid (what a member's lab mounts)."""
    group_id = db.scalar(select(Group.id).where(Group.name == team))
    gid = None
    if group_id is not None and identity.privileged():
        gid = identity.team_gid(settings.sandbox.team_gid_base, group_id)
    return layout.team_dir(settings, team, gid)


def check_team_name(team: str) -> str:
    return accounts.check_name("group", team)


# ---- usage ----------------------------------------------------------------------------------------


class UsageCache:
    """Bytes used per space, measured by walking it at most every `ttl` seconds and kept current in
    between by the platform's own changes. Labs write workspaces directly; the next measure sees that."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._known: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, space: Space) -> int:
        with self._lock:
            hit = self._known.get(space.key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        if (counted := project_quotas.measured(space.tree.root)) is not None:
            return counted  # project quotas' accounting: exact and cheap, nothing to cache
        used = space.tree.usage()
        with self._lock:
            self._known[space.key] = (time.monotonic(), used)
        return used

    def add(self, space: Space, delta: int) -> None:
        with self._lock:
            if hit := self._known.get(space.key):
                self._known[space.key] = (hit[0], max(0, hit[1] + delta))

    def forget(self, space: Space) -> None:
        with self._lock:
            self._known.pop(space.key, None)

    def free(self, space: Space) -> int:
        return space.quota - self.get(space)
