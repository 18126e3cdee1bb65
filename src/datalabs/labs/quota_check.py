"""Workspace quotas of running labs (issue 13, finding 7), checked where the lab manager culls.

With project quotas in force (`sandbox/quota.py`) the kernel stops writes itself; the check only keeps
each workspace's project and limit in step with the settings and the team quotas admins set.

Without them, the platform's check: every workspace a running lab can write is measured (a walk), and
- past 90 % of its quota, the users whose labs write it are warned once (an in-app notice);
- past its quota, it is made read-only inside those labs (their mount namespaces only: uploads and
  deletions through the platform still work) and the users are told; programs that held files open
  for writing there are killed, since the kernel cannot make it read-only under them;
- back under its quota (files deleted through the platform), it is made writable again.
Which mounts the check made read-only is kept in `<home>/labs/quota-check.json`, so a restarted
platform makes them writable again, and never a mount that was read-only from the start (a read-only
team member's).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.config import Settings
from datalabs.db.engine import transaction
from datalabs.db.models import Group, Lab, Membership, TeamWorkspace, User
from datalabs.notifications import service as notifications
from datalabs.sandbox import freeze, quota
from datalabs.workspaces.tree import Tree

log = logging.getLogger(__name__)
WARN_AT, UNWARN_AT = 0.9, 0.8
PERSONAL_TARGET = "/media/home/my_workspace"  # where the lab manager binds workspaces (labs/manager.py)
TEAM_TARGET = "/media/home/team_workspaces/{team}"


@dataclass
class Watched:
    """One workspace that running labs can write."""

    key: str  # user:<name> | team:<name>
    title: str  # as users read it
    root: Path
    quota: int
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (lab id, target in the lab)
    users: dict[int, str] = field(default_factory=dict)  # user id -> name, of those labs' owners


def personal_quota(settings: Settings, user: str) -> int:
    # As workspaces.service.personal and _team compute it.
    return int(settings.workspaces.quotas.get(f"user:{user}", settings.workspaces.user_quota))


def team_quota(settings: Settings, team: str, override: int | None) -> int:
    return int(override or settings.workspaces.quotas.get(f"team:{team}", settings.workspaces.team_quota))


def writable_spaces_of(settings: Settings, db: Session, user: User) -> list[tuple[Watched, str]]:
    """The workspaces a lab of `user` mounts writable, each with where the lab sees it."""
    home = settings.home / "workspaces"
    personal = Watched(
        f"user:{user.name}", "your workspace", home / "users" / user.name, personal_quota(settings, user.name)
    )
    rows = db.execute(
        select(Group.name, TeamWorkspace.quota)
        .join(Membership, Membership.group_id == Group.id)
        .join(TeamWorkspace, TeamWorkspace.group_id == Group.id)
        .where(Membership.user_id == user.id, Membership.role != "readonly")
    ).all()
    teams = [
        (
            Watched(
                f"team:{t}", f"the workspace of team '{t}'", home / "teams" / t, team_quota(settings, t, q)
            ),
            TEAM_TARGET.format(team=t),
        )
        for t, q in rows
    ]
    return [(personal, PERSONAL_TARGET), *teams]


def writable_spaces(settings: Settings, db: Session, lab_ids: list[str]) -> dict[str, Watched]:
    """The workspaces the given labs mount writable, by key, with the labs and their owners."""
    spaces: dict[str, Watched] = {}
    for lab in db.scalars(select(Lab).where(Lab.id.in_(lab_ids))):
        for fresh, target in writable_spaces_of(settings, db, lab.owner):
            space = spaces.setdefault(fresh.key, fresh)
            space.mounts.append((lab.id, target))
            space.users[lab.owner.id] = lab.owner.name
    return spaces


async def check(manager) -> None:
    """One round over the labs `manager` runs (called by its culler)."""
    pids = {}
    for lab_id, backend in list(manager.backends.items()):
        state = backend.get_state() if hasattr(backend, "get_state") else {}
        if isinstance(state, dict) and state.get("pid"):
            pids[lab_id] = int(state["pid"])
    await to_thread.run_sync(_check, manager.settings, manager.sessions, pids, manager.events)


def _check(settings: Settings, sessions, pids: dict[str, int], events: dict) -> None:
    found = quota.enforcement(settings)
    with sessions() as db:
        spaces = writable_spaces(settings, db, list(pids)) if pids else {}
    if found.project:
        for space in spaces.values():
            quota.keep(settings, space.key, space.root, space.quota)
        return
    Checker(settings, sessions, pids, events).run(spaces)


class Checker:
    """The platform's check (no project quotas): see the module docstring."""

    def __init__(self, settings: Settings, sessions, pids: dict[str, int], events: dict):
        self.settings, self.sessions, self.pids, self.events = settings, sessions, pids, events
        self.path = settings.home / "labs" / "quota-check.json"
        self.state = self._load()
        self.notices: list[tuple[int, str]] = []

    def _load(self) -> dict:
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            state = {}
        return {"over": [], "warned": [], "frozen": {}, **state}

    def _save(self) -> None:
        if self.state == self._load():
            return  # nothing changed: no write at every check
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def run(self, spaces: dict[str, Watched]) -> None:
        for space in spaces.values():
            try:
                used = Tree(space.root).usage()
            except Exception:  # a missing or unreadable folder must not stop the others' check
                log.exception("quota check: cannot measure %s", space.key)
                continue
            if used > space.quota:
                self._over(space, used)
            else:
                self._under(space, used)
        # Labs that ended: nothing left to undo in them.
        self.state["frozen"] = {k: v for k, v in self.state["frozen"].items() if k in self.pids}
        self._save()
        if self.notices:
            with transaction(self.sessions) as db:
                for user_id, text in self.notices:
                    if db.get(User, user_id) is not None:
                        notifications.add(db, user_id, text, "/workspace")

    def _tell(self, space: Watched, text: str) -> None:
        self.notices += [(user_id, text) for user_id in space.users]

    def _event(self, lab_id: str, text: str) -> None:
        if (log_ := self.events.get(lab_id)) is not None:
            log_.add(100, text)

    def _over(self, space: Watched, used: int) -> None:
        frozen, failed = [], []
        for lab_id, target in space.mounts:
            ns = freeze.namespace_pid(self.pids[lab_id], target)
            if ns is None:
                continue
            try:
                done = freeze.make_readonly(ns, target)
            except freeze.FreezeError as exc:
                log.error("quota check: lab %s: %s", lab_id, exc)
                failed.append(lab_id)
                continue
            mine = self.state["frozen"].setdefault(lab_id, [])
            if target not in mine:
                mine.append(target)
                frozen.append(lab_id)
                self._event(lab_id, f"{target} is read-only: {space.title} is past its quota")
            if done.killed:
                what = ", ".join(done.killed)
                self._event(lab_id, f"Stopped programs writing to {target} past the quota: {what}")
                self._tell(
                    space,
                    f"Datalabs stopped programs in lab {lab_id} that kept writing to "
                    f"{space.title} past its quota: {what}.",
                )
        if failed:
            self._tell(
                space,
                f"{space.title.capitalize()} is past its quota, and the platform could not "
                f"make it read-only in lab(s) {', '.join(failed)}: please delete files.",
            )
        if space.key not in self.state["over"]:
            self.state["over"].append(space.key)
            log.warning("quota check: %s past its quota (%d of %d bytes)", space.key, used, space.quota)
            self._tell(
                space,
                f"{space.title.capitalize()} uses {_size(used)} of its {_size(space.quota)} quota. It is "
                "read-only in your running labs until you delete files (in Workspaces, or with the API): "
                "then it becomes writable again within a minute.",
            )

    def _under(self, space: Watched, used: int) -> None:
        for lab_id, target in space.mounts:
            mine = self.state["frozen"].get(lab_id, [])
            if target not in mine:
                continue  # never made read-only by us: left as the lab was started
            ns = freeze.namespace_pid(self.pids[lab_id], target)
            try:
                if ns is not None:
                    freeze.make_writable(ns, target)
            except freeze.FreezeError as exc:
                log.error("quota check: lab %s: %s", lab_id, exc)
                continue
            mine.remove(target)
            self._event(lab_id, f"{target} is writable again")
        if space.key in self.state["over"]:
            self.state["over"].remove(space.key)
            self._tell(
                space,
                f"{space.title.capitalize()} is within its quota again ({_size(used)} of "
                f"{_size(space.quota)}): it is writable in your labs.",
            )
        warned = space.key in self.state["warned"]
        if used >= WARN_AT * space.quota and not warned:
            self.state["warned"].append(space.key)
            self._tell(
                space,
                f"{space.title.capitalize()} is nearly full: {_size(used)} of its "
                f"{_size(space.quota)} quota. Past it, it becomes read-only in your labs.",
            )
        elif used < UNWARN_AT * space.quota and warned:
            self.state["warned"].remove(space.key)


def prepare(settings: Settings, db: Session, user: User) -> None:
    """Before a lab of `user` starts: where project quotas are in force, the workspaces it will write are
    their projects with their limits (a brand-new workspace included)."""
    if quota.enforcement(settings).project:
        for space, _ in writable_spaces_of(settings, db, user):
            quota.keep(settings, space.key, space.root, space.quota)


def sync_all(settings: Settings, sessions) -> int:
    """At start-up, where project quotas are in force: every workspace on disk is its project with its
    limit (a workspace made before quotas were enabled is tagged once). Returns how many were checked."""
    if not quota.enforcement(settings).project:
        return 0
    home = settings.home / "workspaces"
    with sessions() as db:
        teams = dict(db.execute(select(Group.name, TeamWorkspace.quota).join(TeamWorkspace)).all())
    done = 0
    for kind in ("users", "teams"):
        folder = home / kind
        for root in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not root.is_dir() or root.is_symlink():
                continue
            name = root.name
            limit = (
                personal_quota(settings, name)
                if kind == "users"
                else team_quota(settings, name, teams.get(name))
            )
            quota.keep(settings, f"{'user' if kind == 'users' else 'team'}:{name}", root, limit)
            done += 1
    return done


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"
