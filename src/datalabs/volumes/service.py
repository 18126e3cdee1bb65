"""The data volume registry (admins register host directories; users see those allowed to their groups)
and the mount plan of a lab: each chosen volume read-only at `/media/data/<name>`, plus "custom" volumes,
i.e. folders of the owner's own workspace mounted read-only (`workspace:<path>`)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.db.models import Group, Membership, User, Volume
from datalabs.errors import Conflict, Invalid, NotFound
from datalabs.runtimes.base import Mount
from datalabs.volumes.indexing import Status, VolumeIndexer
from datalabs.workspaces import layout, paths
from datalabs.workspaces.tree import Tree

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{1,63}$")
CUSTOM = "workspace:"  # a chosen volume "workspace:<folder>" is that folder of the owner's workspace
MOUNT_ROOT = "/media/data"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise Invalid(
            f"volume name '{name}' is not valid: 2-64 letters, digits, '_', '.', '-', starting with a letter "
            "(e.g. PlanckPublic)",
            code="invalid_volume_name",
        )
    return name


def _check_host_path(settings: Settings, host_path: str) -> Path:
    path = Path(host_path)
    if not path.is_absolute():
        raise Invalid("the host path must be absolute", code="bad_host_path")
    if not path.is_dir():
        raise Invalid(f"'{host_path}' is not a folder on the server", code="bad_host_path")
    real = path.resolve()
    home = settings.home.resolve()
    # The platform's own state (database, workspaces, labs) must never be exposed as a volume.
    if (real == home or home in real.parents) and (home / "volumes") not in (real, *real.parents):
        raise Invalid("volumes cannot expose the platform's own state directory", code="bad_host_path")
    roots = [r.resolve() for r in settings.volumes.roots]
    if roots and not any(r == real or r in real.parents for r in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise Invalid(f"volumes must lie under one of: {allowed}", code="bad_host_path")
    return real


def create(
    db: Session,
    settings: Settings,
    principal: Principal,
    *,
    name: str,
    host_path: str,
    description: str = "",
    allowed_groups: list[str] | None = None,
    mission: list[str] | None = None,
    domain: str = "",
    tags: list[str] | None = None,
) -> Volume:
    check_name(name)
    real = _check_host_path(settings, host_path)
    groups = sorted(set(allowed_groups or []))
    known = set(db.scalars(select(Group.name).where(Group.name.in_(groups))))
    if missing := [g for g in groups if g not in known]:
        raise Invalid(f"no group named {', '.join(repr(g) for g in missing)}", code="group_not_found")
    if db.scalar(select(Volume.id).where(Volume.name == name)) is not None:
        raise Conflict(f"a volume named '{name}' already exists", code="volume_exists")
    volume = Volume(
        name=name,
        host_path=str(real),
        description=description,
        allowed_groups=groups,
        mission=list(mission or []),
        domain=domain,
        tags=list(tags or []),
        created_by=principal.name,
    )
    db.add(volume)
    db.flush()
    return volume


def _visible(volume: Volume, groups: frozenset[str] | set[str], admin: bool) -> bool:
    return admin or not volume.allowed_groups or bool(set(volume.allowed_groups) & set(groups))


def list_visible(db: Session, principal: Principal) -> list[Volume]:
    volumes = db.scalars(select(Volume).order_by(Volume.name))
    return [v for v in volumes if _visible(v, principal.groups, principal.is_admin)]


def get_visible(db: Session, principal: Principal, name: str) -> Volume:
    volume = db.scalar(select(Volume).where(Volume.name == name))
    if volume is None or not _visible(volume, principal.groups, principal.is_admin):
        raise NotFound(f"no data volume '{name}' available to you", code="volume_not_found")
    return volume


def delete(db: Session, name: str) -> None:
    """Unregister a volume (its files are left alone; running labs keep their mount until they stop)."""
    volume = db.scalar(select(Volume).where(Volume.name == name))
    if volume is None:
        raise NotFound(f"no data volume '{name}'", code="volume_not_found")
    db.delete(volume)
    db.flush()


def index_now(db: Session, principal: Principal, indexer: VolumeIndexer, name: str) -> Status:
    """Queue a harvest of volume `name` into the asset index (administrators)."""
    principal.require_admin()
    return indexer.request(get_visible(db, principal, name), principal.name)


def indexing(db: Session, principal: Principal, indexer: VolumeIndexer, name: str) -> Status:
    """Volume `name`'s last or current harvest (administrators)."""
    principal.require_admin()
    return indexer.status(get_visible(db, principal, name).name)


def tree(volume: Volume) -> Tree:
    return Tree(Path(volume.host_path))


# ---- launching with volumes -----------------------------------------------------------------------


def check_choice(
    db: Session, settings: Settings, principal: Principal, chosen: list[str] | tuple[str, ...]
) -> list[str]:
    """The chosen volumes, checked (each available to the principal, custom folders existing in their
    workspace, no two at the same mount point), in the order given without repeats."""
    names = list(dict.fromkeys(c.strip() for c in chosen if c.strip()))
    _plan(db, settings, principal.user, set(principal.groups), principal.user.role == "admin", names)
    return names


def mount_plan(db: Session, settings: Settings, user: User, chosen: list[str]) -> list[Mount]:
    """The read-only mounts for a lab of `user`, checked again at start (access may have changed)."""
    groups = set(db.scalars(select(Group.name).join(Membership).where(Membership.user_id == user.id)))
    return _plan(db, settings, user, groups, user.role == "admin", chosen)


def _plan(
    db: Session, settings: Settings, user: User, groups: set[str], admin: bool, chosen: list[str]
) -> list[Mount]:
    mounts: dict[str, Mount] = {}
    for choice in chosen:
        beneath = None
        if choice.startswith(CUSTOM):
            source, target = _custom(settings, user, choice[len(CUSTOM) :])
            # The folder lies in the user's workspace, where a lab could swap it for a link before the
            # sandbox binds it: it is opened again, without following links, at that very moment.
            beneath = layout.user_dir(settings, user.name)
        else:
            volume = db.scalar(select(Volume).where(Volume.name == choice))
            if volume is None or not _visible(volume, groups, admin):
                raise Invalid(f"no data volume named '{choice}' is available to you", code="unknown_volume")
            source, target = Path(volume.host_path), volume.name
            if not source.is_dir():
                raise Invalid(
                    f"data volume '{choice}' is offline (its folder is missing)", code="volume_offline"
                )
        if target in mounts:
            raise Invalid(
                f"two chosen volumes would both appear as {MOUNT_ROOT}/{target}", code="volume_clash"
            )
        mounts[target] = Mount(source, f"{MOUNT_ROOT}/{target}", readonly=True, beneath=beneath)
    return list(mounts.values())


def _custom(settings: Settings, user: User, folder: str) -> tuple[Path, str]:
    parts = paths.parts_of(folder)
    if not parts:
        raise Invalid("choose a folder of your workspace, not the whole workspace", code="bad_custom_volume")
    root = layout.user_dir(settings, user.name)
    # Walked without following links: the bind mount must not reach outside the user's workspace.
    try:
        os.close(paths.open_dir(root, parts))
    except NotFound:
        raise Invalid(f"your workspace has no folder '{folder}'", code="unknown_volume") from None
    return root.joinpath(*parts), PurePosixPath(parts[-1]).name
