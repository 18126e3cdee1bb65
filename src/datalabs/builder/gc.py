"""Garbage collection of built environments (`<home>/envs/<key>`).

Environments are content-addressed and shared between versions (and apps), so deleting an app keeps
them. An environment is collected when all of these hold:
- no app version records its key (its apps or versions were deleted, or it was replaced by a rebuild),
  nor any catalogue datalab's build (catalogue/builds.py);
- it is older than a grace period (a build records its key only when it ends);
- no build of that key is running (the builder holds `.<key>.lock` while building; we try it too);
- no process has it mounted: a lab of a deleted app may still run on it (labs bind it read-only at its
  own path), and removing files under a running kernel would break it. /proc/*/mountinfo says.
Removal renames the directory out of the way first, so a half-removed environment is never taken for
a complete one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.builder.service import envs_dir
from datalabs.catalogue import builds as catalogue_builds
from datalabs.config import Settings
from datalabs.db.models import AppVersion

GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class Collected:
    key: str
    size: int  # bytes freed (or that would be, in a dry run)


def mounted(paths: set[str]) -> set[str]:
    """Those of `paths` that some process on the host has as a mount point (a running lab's bind)."""
    found: set[str] = set()
    for info in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            lines = info.read_text().splitlines()
        except OSError:  # the process ended meanwhile
            continue
        for line in lines:
            fields = line.split(" ", 5)
            if len(fields) > 4 and fields[4] in paths:
                found.add(fields[4])
    return found


def size_of(top: Path) -> int:
    total = 0
    for root, _, files in os.walk(top):
        for name in files:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def collect(
    db: Session, settings: Settings, *, grace: float = GRACE_SECONDS, dry_run: bool = False
) -> list[Collected]:
    """Remove the environments nothing needs any more (see the module's rules); what was removed."""
    root = envs_dir(settings)
    if not root.is_dir():
        return []
    for leftover in root.glob(".gc-*"):  # removals a crash interrupted
        if not dry_run:
            shutil.rmtree(leftover, ignore_errors=True)
    referenced = set(db.scalars(select(AppVersion.env_key).where(AppVersion.env_key != "")))
    referenced |= catalogue_builds.keys_in_use(settings)  # built-in and site datalabs' environments
    cutoff = time.time() - grace
    candidates = [
        d
        for d in sorted(root.iterdir())
        if d.is_dir()
        and not d.is_symlink()
        and not d.name.startswith(".")
        and d.name not in referenced
        and d.stat().st_mtime < cutoff
    ]
    in_use = mounted({str(d) for d in candidates})
    collected = []
    for env in candidates:
        if str(env) in in_use:
            continue
        lock_path = root / f".{env.name}.lock"
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # being built right now
                continue
            size = size_of(env)
            if not dry_run:
                aside = root / f".gc-{env.name}-{uuid.uuid4().hex[:8]}"
                env.rename(aside)
                shutil.rmtree(aside, ignore_errors=True)
            # The lock file stays: a builder may have it open already, and must keep locking that one.
        collected.append(Collected(env.name, size))
    return collected


def remove_leftovers(settings: Settings) -> list[str]:
    """At start-up: what builds a crashed process left in `<home>/envs` (safe with several processes).

    - `.gc-*`: removals a crash interrupted (renamed aside, so never taken for an environment);
    - `<key>` without `.complete`: a build killed half-way, when nobody holds its `.<key>.lock`;
    - `.run-*`: a build step's private folder, when no build runs on this host at all (every build holds
      its key's lock while its steps run, and the folders were listed before the locks were tried).
    Import and staging folders of apps are in the journal of temporaries (workspaces/inflight.py).
    Returns the names removed."""
    root = envs_dir(settings)
    if not root.is_dir():
        return []
    entries = sorted(root.iterdir())
    removed = [_aside(root, e) for e in entries if e.name.startswith(".gc-") and e.is_dir()]
    locks = [e for e in entries if e.name.startswith(".") and e.name.endswith(".lock")]
    with contextlib.ExitStack() as held:
        busy = False
        for lock_path in locks:
            lock = held.enter_context(open(lock_path, "a"))  # noqa: SIM115 (closed by the stack)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = True  # that key is being built: its environment and step folders are in use
                if (env := root / lock_path.name[1:-5]) in entries:
                    entries.remove(env)
        for entry in entries:
            if entry.is_symlink() or not entry.is_dir():
                continue
            half_built = not entry.name.startswith(".") and not (entry / ".complete").exists()
            if half_built or (entry.name.startswith(".run-") and not busy):
                removed.append(_aside(root, entry))
    return [name for name in removed if name]


def _aside(root: Path, entry: Path) -> str:
    aside = entry if entry.name.startswith(".gc-") else root / f".gc-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        if aside != entry:
            entry.rename(aside)
    except OSError:
        return ""
    shutil.rmtree(aside, ignore_errors=True)
    return entry.name
