"""Where workspaces live on disk (DESIGN §8), created on first use and owned by the lab uid."""

from __future__ import annotations

import os
from pathlib import Path

from datalabs.config import Settings
from datalabs.runtimes.local import lab_uid


def user_dir(settings: Settings, user: str) -> Path:
    return _ensure(settings.home / "workspaces" / "users" / user)


def team_dir(settings: Settings, team: str) -> Path:
    return _ensure(settings.home / "workspaces" / "teams" / team)


def _ensure(path: Path) -> Path:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Labs run as an unprivileged uid when the platform is root: their files must be theirs to write.
        # (Parent directories need no access: bubblewrap binds the folder itself into the lab.)
        if (uid := lab_uid()) is not None:
            os.chown(path, uid, uid)
    return path
