"""A journal of temporaries in flight (issue 13, finding 8): upload and copy temporaries in workspaces,
build and import staging folders, pipeline attempt folders.

Whoever makes a temporary first records it here (`hold`): one small file under
`<home>/inflight/`, kept locked (flock) by the writer for as long as the temporary may exist. A
process that dies, even by `kill -9`, drops its locks, so a temporary whose entry can be locked is
abandoned: `recover` (at start-up) and `Journal.active` (when a folder is listed) remove it. An entry
still locked belongs to an upload in flight in some process on this host and is never touched.
Recovery reads the journal only: no walk of the workspaces.

Entries are named after a hash of the temporary's place, so "is this name in flight?" is one stat.
An entry is written under a private name, locked, then renamed into place, so an entry under its final
name is always locked by its writer until that writer ends or dies. Removal of a temporary starts at
its recorded root and walks the folders without following links: a lab may have reshaped the tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from datalabs.workspaces.paths import DIR_FLAGS, lstat_in

log = logging.getLogger(__name__)
ENTRY, PARTIAL = ".json", ".new"


def _key(root: Path, parts: tuple[str, ...], name: str) -> str:
    return hashlib.sha256("\0".join((str(root), *parts, name)).encode()).hexdigest()[:40]


class Journal:
    def __init__(self, home: Path):
        self.dir = home / "inflight"

    @contextlib.contextmanager
    def hold(self, root: Path, parts: tuple[str, ...], name: str, *, remove: bool = False) -> Iterator[None]:
        """Record the temporary `name` in folder `parts` under `root` for the duration of the block (make
        it inside the block). With `remove`, the temporary is deleted when the block ends, if still there."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = _key(root, parts, name)
        partial = self.dir / f"{key}.{secrets.token_hex(4)}{PARTIAL}"
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        final = self.dir / f"{key}{ENTRY}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps({"root": str(root), "parts": list(parts), "name": name}).encode())
            os.rename(partial, final)
            try:
                yield
            finally:
                if remove:
                    _remove(root, parts, name)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(final).st_ino == os.fstat(fd).st_ino:  # still ours
                        os.unlink(final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)  # only there if the rename never happened
            os.close(fd)

    def hold_path(self, path: Path, *, remove: bool = True):
        """`hold` for a temporary at an absolute path in one of the platform's own folders."""
        return self.hold(path.parent, (), path.name, remove=remove)

    def active(self, root: Path, parts: tuple[str, ...], name: str) -> bool:
        """Is `name` a temporary that a live writer holds? A dead writer's temporary is removed here and
        then, and False is returned; so is False for a name the journal does not know (a user's file)."""
        entry = self.dir / f"{_key(root, parts, name)}{ENTRY}"
        if not entry.exists():
            return False
        return not self._reclaim(entry)

    def recover(self) -> list[str]:
        """Remove every temporary whose writer is gone; returns their places (for the log)."""
        if not self.dir.is_dir():
            return []
        removed = []
        for entry in sorted(self.dir.iterdir()):
            if entry.name.endswith(ENTRY):
                if self._reclaim(entry):
                    removed.append(entry.name)
            elif entry.name.endswith(PARTIAL):
                self._reclaim(entry, partial=True)  # its writer died before making anything
        return removed

    def _reclaim(self, entry: Path, *, partial: bool = False) -> bool:
        """Take `entry`'s lock; when free, remove its temporary and the entry. True if it was abandoned."""
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # in flight in a live process
            if os.fstat(fd).st_nlink == 0:
                return False  # its writer finished meanwhile
            if not partial:
                try:
                    data = json.loads(os.read(fd, 1 << 16))
                    _remove(Path(data["root"]), tuple(data["parts"]), data["name"])
                except (ValueError, KeyError, TypeError):
                    log.warning("inflight: unreadable journal entry %s dropped", entry.name)
            with contextlib.suppress(FileNotFoundError):
                if os.stat(entry).st_ino == os.fstat(fd).st_ino:
                    os.unlink(entry)
            return True
        finally:
            os.close(fd)


def _remove(root: Path, parts: tuple[str, ...], name: str) -> None:
    """Delete `root/parts/name` (file or folder) without following any link on the way."""
    if not name or "/" in name or name in (".", ".."):
        return
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError:
        return
    try:
        for part in parts:
            nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
        st = lstat_in(fd, name)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=fd)  # fd-based: immune to links planted inside
        else:
            os.unlink(name, dir_fd=fd)
    except OSError as exc:
        log.warning("inflight: could not remove a temporary in %s: %s", root, exc.strerror)
    finally:
        os.close(fd)


def journal(settings) -> Journal:
    return Journal(settings.home)


def for_tree(root: Path) -> Journal | None:
    """The journal of the platform home that holds the workspace `root` (DESIGN §8:
    `<home>/workspaces/users|teams/<name>`); None for any other tree (a data volume, a test's folder)."""
    if root.parent.name in ("users", "teams") and root.parent.parent.name == "workspaces":
        return Journal(root.parent.parent.parent)
    return None
