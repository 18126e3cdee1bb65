"""Who a sandbox runs as (DESIGN §5): one uid per platform user, one gid per team.

With a uid of its own, a user's labs, tool runs and builds cannot signal, ptrace or read the processes
and files of anybody else's, and per-uid limits (RLIMIT_NPROC) bound one user without starving the rest:
one shared `nobody` made every lab the same Unix user. Numbers are derived from database ids in ranges
far above ordinary accounts (settings `sandbox.uid_base` / `sandbox.team_gid_base`), so they are stable
across restarts and replicas without being stored.

A user's primary group is their own (gid = uid); the teams they belong to add one group each, which
opens the team workspace (root:<team gid>, setgid, group-writable) to their sandboxes. Only a platform
running as root can switch uids; otherwise sandboxes run as the platform's own user in an unprivileged
user namespace and `for_user` returns None.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

HOME = "/media/home/my_workspace"


@dataclass(frozen=True)
class Identity:
    """The uid, primary gid and supplementary gids one sandbox runs with, and the names it shows."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    name: str = "datalab"
    team_names: tuple[str, ...] = ()  # in the order of `groups`
    home: str = HOME

    @property
    def owner(self) -> tuple[int, int]:
        """(uid, gid) that files made on this identity's behalf in its own space get."""
        return self.uid, self.gid

    def passwd_entry(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}:{self.name}:{self.home}:/bin/bash\n"

    def group_entries(self) -> str:
        lines = [f"{self.name}:x:{self.gid}:\n"]
        lines += [
            f"{team}:x:{gid}:{self.name}\n" for team, gid in zip(self.team_names, self.groups, strict=False)
        ]
        return "".join(lines)


def privileged() -> bool:
    """True when the platform can give sandboxes uids of their own (it runs as root)."""
    return os.geteuid() == 0


def user_uid(uid_base: int, user_id: int) -> int:
    return uid_base + user_id


def team_gid(team_gid_base: int, group_id: int) -> int:
    return team_gid_base + group_id


def of(
    uid_base: int,
    team_gid_base: int,
    user_id: int,
    name: str,
    teams: Iterable[tuple[int, str]] = (),
) -> Identity | None:
    """The identity of user `user_id` (`name`) belonging to `teams` ((group id, team name) pairs), or
    None when the platform is not root."""
    if not privileged():
        return None
    uid = user_uid(uid_base, user_id)
    teams = sorted(teams)
    return Identity(
        uid=uid,
        gid=uid,
        groups=tuple(team_gid(team_gid_base, gid) for gid, _ in teams),
        name=_unix_name(name),
        team_names=tuple(_unix_name(team) for _, team in teams),
    )


def _unix_name(name: str) -> str:
    # Platform names are already [A-Za-z0-9_.-]; a passwd line must not gain a ':' or a newline from one.
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:32] or "datalab"
