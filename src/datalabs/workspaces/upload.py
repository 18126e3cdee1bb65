"""Streamed, atomic uploads: the body goes to a hidden temporary file in the target folder and is renamed
over the final name only once complete (and, by default, fsync'ed). A quota overrun, a client that goes
away, or a server killed mid-way leaves the final name exactly as it was. The temporary is recorded in
the journal of temporaries in flight (`inflight`) while it exists: one left by a killed server is
removed at the next start, or as soon as its folder is listed."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from anyio import to_thread

from datalabs.errors import Conflict, TooLarge
from datalabs.workspaces.paths import Entry, Ownership, lstat_in, open_dir, os_error, shown
from datalabs.workspaces.tree import Tree, _discard, temp_name

BATCH = 4 << 20  # bytes gathered before one write in a worker thread (fewer thread hops per GiB)


@dataclass(frozen=True)
class Uploaded:
    entry: Entry
    created: bool  # False when an existing file was replaced
    added: int  # change in the space's usage, bytes


def too_large(what: str, allowed: int) -> TooLarge:
    return TooLarge(
        f"{what} does not fit: this workspace's quota leaves {_size(max(allowed, 0))} free; "
        "delete files or ask an administrator for more space",
        code="quota_exceeded",
    )


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


async def upload(
    tree: Tree,
    parts: tuple[str, ...],
    body: AsyncIterator[bytes],
    *,
    free: int,
    declared: int | None = None,
    fsync: bool = True,
    overwrite: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> Uploaded:
    """Write `body` to `parts`. `free` is the quota left before this upload; the file it replaces counts
    as freed. Raises TooLarge (413) up front from `declared` (Content-Length) or as soon as the stream
    passes the limit."""
    if not parts:
        raise Conflict("give a file name to upload to", code="is_a_folder")
    dfd = await to_thread.run_sync(lambda: open_dir(tree.root, parts[:-1], create=True, owner=tree.owner))
    tmp, fd, journal = "", -1, contextlib.ExitStack()
    try:
        old = lstat_in(dfd, parts[-1])
        if old is not None and stat.S_ISDIR(old.st_mode):
            raise Conflict(f"'{shown(parts)}' is a folder", code="is_a_folder")
        if old is not None and not overwrite:
            raise Conflict(f"'{shown(parts)}' already exists", code="exists")
        replaced = old.st_size if old is not None and stat.S_ISREG(old.st_mode) else 0
        allowed = free + replaced
        if declared is not None and declared > allowed:
            raise too_large(f"'{parts[-1]}' ({_size(declared)})", allowed)
        tmp = temp_name()
        journal.enter_context(tree.holding(parts[:-1], tmp))  # recorded before it exists
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
            )
        except OSError as exc:
            raise os_error(exc, parts, dfd) from None
        written = await _stream(fd, body, allowed, parts, on_progress)
        await to_thread.run_sync(_finish, fd, dfd, tmp, parts, tree.owner, fsync)
        tmp = ""  # renamed into place: nothing to clean up
        st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        return Uploaded(Entry.of(parts, st), created=old is None, added=written - replaced)
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            _discard(dfd, tmp)
        journal.close()
        os.close(dfd)


async def _stream(
    fd: int,
    body: AsyncIterator[bytes],
    allowed: int,
    parts: tuple[str, ...],
    on_progress: Callable[[int], None] | None,
) -> int:
    written, pending, size = 0, [], 0
    async for chunk in body:
        if not chunk:
            continue
        written += len(chunk)
        if written > allowed:
            raise too_large(f"'{parts[-1]}'", allowed)
        pending.append(chunk)
        size += len(chunk)
        if size >= BATCH:
            await to_thread.run_sync(_write_all, fd, pending)
            pending, size = [], 0
            if on_progress:
                on_progress(written)
    if pending:
        await to_thread.run_sync(_write_all, fd, pending)
    return written


def _write_all(fd: int, chunks: list[bytes]) -> None:
    n = os.writev(fd, chunks)
    total = sum(len(c) for c in chunks)
    if n < total:  # a short write (rare on regular files): finish it plainly
        rest = memoryview(b"".join(chunks))[n:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def _finish(
    fd: int, dfd: int, tmp: str, parts: tuple[str, ...], owner: Ownership | None, fsync: bool
) -> None:
    try:
        if owner is not None:
            owner.apply(fd, is_dir=False)
        if fsync:
            os.fsync(fd)
        os.rename(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as exc:
        raise os_error(exc, parts, dfd) from None
