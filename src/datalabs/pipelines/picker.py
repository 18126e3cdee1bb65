"""What the launch form's file picker browses: the user's workspaces and the data volumes they may read,
addressed with the same references run inputs use (`me/data/x.txt`, `team:astro/obs`, `volume:V/2024`).
Listings go through the workspace trees' no-follow walks, so the picker shows exactly what a run could
read, nothing more."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from datalabs.accounts.principal import Principal
from datalabs.config import Settings
from datalabs.volumes import service as volumes
from datalabs.workspaces import service as workspaces
from datalabs.workspaces.paths import parts_of
from datalabs.workspaces.tree import Tree

LIMIT = 300  # entries shown per folder; the field still takes any path typed by hand


@dataclass(frozen=True)
class Item:
    name: str
    ref: str
    folder: bool


@dataclass(frozen=True)
class Folder:
    ref: str  # "" for the list of spaces
    crumbs: list[tuple[str, str]]  # (name, ref) from the space down
    items: list[Item]
    more: int  # entries not shown beyond LIMIT


def roots(db: Session, settings: Settings, principal: Principal) -> Folder:
    spaces = [
        Item("My workspace" if s.kind == "personal" else f"Team {s.name}", s.id, True)
        for s in workspaces.list_spaces(db, settings, principal)
    ]
    vols = [
        Item(f"Data volume {v.name}", f"volume:{v.name}", True) for v in volumes.list_visible(db, principal)
    ]
    return Folder("", [], spaces + vols, 0)


def _tree(db: Session, settings: Settings, principal: Principal, space: str) -> Tree:
    if space.startswith("volume:"):
        return volumes.tree(volumes.get_visible(db, principal, space[7:]))
    return workspaces.resolve(db, settings, principal, space).tree


def folder(db: Session, settings: Settings, principal: Principal, ref: str) -> Folder:
    """The folder `ref` (a space, or a folder inside one); NotFound for what the user may not read."""
    ref = ref.strip().strip("/")
    if not ref:
        return roots(db, settings, principal)
    space, _, rest = ref.partition("/")
    parts = parts_of(rest)
    tree = _tree(db, settings, principal, space)
    listing = tree.listdir(parts, 0, LIMIT)
    prefix = "/".join((space, *parts))
    items = [
        Item(e.name, f"{prefix}/{e.name}", e.type == "dir")
        for e in listing.entries
        if e.type in ("file", "dir")
    ]
    crumbs = [(space, space)] + [(p, "/".join((space, *parts[: i + 1]))) for i, p in enumerate(parts)]
    return Folder(prefix, crumbs, items, max(0, listing.total - LIMIT))
