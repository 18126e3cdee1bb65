"""File operations on a workspace that keep its usage count current: mkdir, move, copy (within a
workspace or to another, within the target's quota) and delete. The API and the pages both call these."""

from __future__ import annotations

from datalabs.errors import Invalid
from datalabs.workspaces.paths import Entry, parts_of
from datalabs.workspaces.service import Space, UsageCache
from datalabs.workspaces.upload import too_large


def operate(
    space: Space,
    target: Space,
    parts: tuple[str, ...],
    op: str,
    to: str | None,
    cache: UsageCache,
    *,
    parents: bool = False,
) -> Entry:
    """`mkdir` `parts` in `space` (with missing `parents`), or `move`/`copy` it to the path `to` in `target`
    (which may be `space`). Blocking: call it from a worker thread."""
    if op == "mkdir":
        return space.tree.mkdir(parts, parents=parents)
    if op not in ("move", "copy"):
        raise Invalid(f"unknown operation '{op}'", code="unknown_op")
    if to is None:
        raise Invalid(f"'{op}' needs a target path 'to'", code="missing_target")
    dest = parts_of(to)
    if op == "move" and target.key == space.key:
        return space.tree.move(parts, target.tree, dest)
    size = space.tree.size_of(parts)
    if size > cache.free(target):
        raise too_large(f"'{parts[-1] if parts else space.name}'", cache.free(target))
    if op == "copy":
        entry = space.tree.copy(parts, target.tree, dest)
    else:  # a move between workspaces: rename when they share a disk, else copy then delete
        try:
            entry = space.tree.move(parts, target.tree, dest)
        except Invalid as exc:
            if exc.code != "cross_device":
                raise
            entry = space.tree.copy(parts, target.tree, dest)
            space.tree.remove(parts)
        cache.add(space, -size)
    cache.add(target, size)
    return entry


def remove(space: Space, parts: tuple[str, ...], cache: UsageCache) -> None:
    """Delete a file, or a folder with everything in it. Blocking: call it from a worker thread."""
    size = space.tree.size_of(parts)
    space.tree.remove(parts)
    cache.add(space, -size)
