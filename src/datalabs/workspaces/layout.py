"""Where workspaces live on disk (DESIGN §8), created on first use and owned by whom labs run as.

A personal workspace belongs to its user's sandbox uid, mode 0700. A team workspace belongs to root and
the team's gid, mode 2770 (setgid: everything made inside gets the team's group), so every member's labs
write it through their team group and nobody else's can. A workspace made by an older version (owned by
the one shared `nobody` uid) is handed over to its new owner the first time it is used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from datalabs.config import Settings
from datalabs.sandbox import fs

Owner = tuple[int, int]  # (uid, gid)

# The platform's folder in a personal workspace: labs keep their homes in it (dot-folders, settings,
# caches; one home per datalab, `lab_home`), counted in the owner's quota, left out of listings.
DOT_DATALABS = ".datalabs"
LAB_MOUNT = "/media/home/my_workspace"  # where labs see the personal workspace (labs/manager.py)


def lab_home(datalab: str) -> str:
    """The home folder, as a lab sees it, of the owner's labs of `datalab`: made by the lab itself, as
    its user, at its start (sandbox/launcher.py), never by the platform in a folder the user controls."""
    return f"{LAB_MOUNT}/{DOT_DATALABS}/homes/{datalab}"


def user_dir(settings: Settings, user: str, owner: Owner | None = None) -> Path:
    """The personal workspace of `user`, owned by `owner` (their sandbox identity) when given."""
    return _ensure(settings.home / "workspaces" / "users" / user, owner, shared=False)


def team_dir(settings: Settings, team: str, gid: int | None = None) -> Path:
    """The team workspace of `team`, group-owned by the team's `gid` when given."""
    return _ensure(
        settings.home / "workspaces" / "teams" / team, (0, gid) if gid is not None else None, shared=True
    )


def _ensure(path: Path, owner: Owner | None, shared: bool) -> Path:
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o711)  # folders inside are reached by name; the list of users is not readable
        path.mkdir(exist_ok=True, mode=0o700)
    if owner is not None:
        st = os.stat(path, follow_symlinks=False)
        want_mode = 0o2770 if shared else 0o700
        if (st.st_uid, st.st_gid) != owner or stat.S_IMODE(st.st_mode) != want_mode:
            adopt(path, owner, shared)
    return path


def adopt(path: Path, owner: Owner, shared: bool) -> None:
    """Give the tree to `owner` (links themselves, never their targets): a personal one entirely; a team
    one keeps each file's author but gets the team's group, group-writable."""
    uid, gid = owner
    if shared:
        fs.share_tree(path, gid)
        os.chown(path, 0, gid, follow_symlinks=False)
        os.chmod(path, 0o2770)
    else:
        fs.chown_tree(path, uid, gid)
        os.chmod(path, 0o700)
