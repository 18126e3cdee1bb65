"""`Tree`: the file operations of one directory tree (a workspace or a data volume), all through the
no-follow directory fds of `paths`, so nothing ever leaves the root. Blocking calls: run them in a
worker thread from async code."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datalabs.errors import Conflict, Invalid, NotFound
from datalabs.sandbox import fs
from datalabs.workspaces import inflight
from datalabs.workspaces.paths import (
    DIR_FLAGS,
    TEMP_PREFIX,
    Entry,
    Ownership,
    in_dir,
    lstat_in,
    open_dir,
    open_file,
    os_error,
    shown,
)

CHUNK = 1 << 20


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    total: int


class Tree:
    def __init__(self, root: Path, *, owner: Ownership | None = None, unlisted: frozenset[str] = frozenset()):
        self.root = root
        self.owner = owner  # who new files and folders belong to (labs run as it when the platform is root)
        # Names at the root that listings leave out (still reachable, walked and counted): the platform's
        # own folder in a personal workspace, where labs keep their homes (DOT_DATALABS).
        self.unlisted = unlisted
        # Temporaries of uploads and copies in flight are recorded there, for crash recovery. Without one
        # (not a workspace), every name with the temporary prefix is taken for one of ours and hidden.
        self.journal = inflight.for_tree(root)

    def hidden(self, parts: tuple[str, ...], name: str) -> bool:
        """Is `name` in folder `parts` an upload or copy in flight (not listed, not walked)? A name with
        our temporary prefix that no live writer holds is an ordinary file: listed, deletable, counted."""
        if not name.startswith(TEMP_PREFIX):
            return False
        return self.journal is None or self.journal.active(self.root, parts, name)

    def holding(self, parts: tuple[str, ...], name: str):
        """Record the temporary `name` in folder `parts` in the journal while the block runs."""
        if self.journal is None:
            return contextlib.nullcontext()
        return self.journal.hold(self.root, parts, name)

    # ---- reading ------------------------------------------------------------------------------------

    def stat(self, parts: tuple[str, ...]) -> Entry:
        if not parts:
            with in_dir(self.root, ()) as fd:
                return Entry.of((), os.fstat(fd))
        with in_dir(self.root, parts[:-1]) as dfd:
            st = lstat_in(dfd, parts[-1])
        if st is None:
            raise NotFound(f"'{shown(parts)}' does not exist", code="file_not_found")
        return Entry.of(parts, st)

    def listdir(self, parts: tuple[str, ...], offset: int = 0, limit: int = 1000) -> Listing:
        """Folders first, then files, by name. Only the requested page is stat()ed: the sort uses the
        directory entries' types, so a page of a 100,000-file folder costs one scan, not 100,000 stats."""
        with in_dir(self.root, parts) as fd:
            with os.scandir(fd) as it:
                names = [
                    (not e.is_dir(follow_symlinks=False), e.name)
                    for e in it
                    if not self.hidden(parts, e.name) and not (not parts and e.name in self.unlisted)
                ]
            names.sort()
            entries = []
            for _, name in names[offset : offset + limit]:
                st = lstat_in(fd, name)
                if st is not None:
                    entries.append(Entry.of((*parts, name), st))
        return Listing(entries, len(names))

    def open(self, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
        return open_file(self.root, parts)

    def walk(self, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], int, list[str], list[str]]]:
        """(folder parts, folder fd, sub-folder names, other names) for every folder below `parts`,
        never following links (sandbox/fs.py `walk`: unlike os.fwalk it never opens through a link a
        lab swapped in, so a FIFO or device cannot be reached through one)."""
        with in_dir(self.root, parts) as fd:
            for top, dirs, files, dfd in fs.walk(fd):
                here = (*parts, *(p for p in top.split("/") if p not in ("", ".")))
                yield here, dfd, dirs, [f for f in files if not self.hidden(here, f)]

    def usage(self) -> int:
        """Bytes used by the files of the whole tree (apparent sizes, uploads in flight included)."""
        total = 0
        with in_dir(self.root, ()) as fd:
            for _, _, files, dfd in fs.walk(fd):
                for name in files:
                    try:
                        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        total += st.st_size
        return total

    def size_of(self, parts: tuple[str, ...]) -> int:
        entry = self.stat(parts)
        if entry.type != "dir":
            return entry.size
        total = 0
        for _, dfd, _, files in self.walk(parts):
            for name in files:
                st = lstat_in(dfd, name)
                if st is not None and stat.S_ISREG(st.st_mode):
                    total += st.st_size
        return total

    def search(self, parts: tuple[str, ...], query: str, limit: int = 200) -> list[Entry]:
        """Files and folders below `parts` whose name contains `query` (case-insensitive)."""
        needle = query.casefold()
        found: list[Entry] = []
        for folder, dfd, dirs, files in self.walk(parts):
            for name in sorted(dirs) + sorted(files):
                if needle in name.casefold() and (st := lstat_in(dfd, name)) is not None:
                    found.append(Entry.of((*folder, name), st))
                    if len(found) >= limit:
                        return found
        return found

    def zip(self, parts: tuple[str, ...]) -> Iterator[bytes]:
        """The folder as a zip archive, produced while it is sent (constant memory; links and special
        files are left out). The standard library's zipfile writes to an unseekable sink with data
        descriptors; no third-party zip streamer (two incompatible ones share the import name)."""
        self.stat(parts)  # NotFound before the response starts
        sink = _Sink()
        base = len(parts)
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for folder, dfd, dirs, files in self.walk(parts):
                rel = "/".join(folder[base:])
                if rel and not dirs and not files:
                    archive.writestr(zipfile.ZipInfo(rel + "/"), b"")
                for name in sorted(files):
                    st = lstat_in(dfd, name)
                    if st is None or not stat.S_ISREG(st.st_mode):
                        continue
                    info = zipfile.ZipInfo(f"{rel}/{name}" if rel else name, _zip_time(st.st_mtime))
                    info.external_attr = (st.st_mode & 0xFFFF) << 16
                    with archive.open(info, "w", force_zip64=st.st_size > zipfile.ZIP64_LIMIT) as member:
                        for chunk in self._chunks((*folder, name)):
                            member.write(chunk)
                            yield sink.take()
                    yield sink.take()
        yield sink.take()

    def _chunks(self, parts: tuple[str, ...]) -> Iterator[bytes]:
        fd, _ = self.open(parts)
        try:
            while chunk := os.read(fd, CHUNK):
                yield chunk
        finally:
            os.close(fd)

    # ---- changing -----------------------------------------------------------------------------------

    def mkdir(self, parts: tuple[str, ...], *, parents: bool = False) -> Entry:
        if not parts:
            raise Conflict("the workspace folder already exists", code="exists")
        with in_dir(self.root, parts[:-1], create=parents, owner=self.owner) as dfd:
            try:
                os.mkdir(parts[-1], 0o755, dir_fd=dfd)
                self._own(dfd, parts[-1])
            except OSError as exc:
                raise os_error(exc, parts, dfd) from None
        return self.stat(parts)

    def remove(self, parts: tuple[str, ...]) -> None:
        if not parts:
            raise Invalid("the workspace itself cannot be deleted", code="is_root")
        with in_dir(self.root, parts[:-1]) as dfd:
            st = lstat_in(dfd, parts[-1])
            if st is None:
                raise NotFound(f"'{shown(parts)}' does not exist", code="file_not_found")
            try:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(parts[-1], dir_fd=dfd)  # fd-based: immune to symlink swaps
                else:
                    os.unlink(parts[-1], dir_fd=dfd)
            except OSError as exc:
                raise os_error(exc, parts, dfd) from None

    def move(self, src: tuple[str, ...], dest: Tree, dst: tuple[str, ...]) -> Entry:
        self._check_target(src, dest, dst)
        with (
            in_dir(self.root, src[:-1]) as sfd,
            in_dir(dest.root, dst[:-1], create=True, owner=dest.owner) as dfd,
        ):
            if lstat_in(sfd, src[-1]) is None:
                raise NotFound(f"'{shown(src)}' does not exist", code="file_not_found")
            if lstat_in(dfd, dst[-1]) is not None:
                raise Conflict(f"'{shown(dst)}' already exists", code="exists")
            try:
                os.rename(src[-1], dst[-1], src_dir_fd=sfd, dst_dir_fd=dfd)
            except OSError as exc:
                raise os_error(exc, src, sfd) from None
        return dest.stat(dst)

    def copy(self, src: tuple[str, ...], dest: Tree, dst: tuple[str, ...]) -> Entry:
        """Copy a file or folder; built under a temporary name and renamed into place, so the target
        name only ever holds a complete copy. Links and special files are skipped."""
        self._check_target(src, dest, dst)
        entry = self.stat(src)
        with in_dir(dest.root, dst[:-1], create=True, owner=dest.owner) as dfd:
            if lstat_in(dfd, dst[-1]) is not None:
                raise Conflict(f"'{shown(dst)}' already exists", code="exists")
            tmp = temp_name()
            with dest.holding(dst[:-1], tmp):  # a crash mid-copy: start-up recovery removes it
                try:
                    if entry.type == "dir":
                        self._copy_dir(src, dfd, tmp, dest.owner)
                    elif entry.type == "file":
                        self._copy_file(src, dfd, tmp, dest.owner)
                    else:
                        raise Invalid(f"'{shown(src)}' is not a file or folder", code="special_file")
                    os.rename(tmp, dst[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
                except OSError as exc:
                    _discard(dfd, tmp)
                    raise os_error(exc, dst, dfd) from None
                except BaseException:
                    _discard(dfd, tmp)
                    raise
        return dest.stat(dst)

    def _copy_file(self, src: tuple[str, ...], dfd: int, name: str, owner: Ownership | None) -> None:
        fd, st = self.open(src)
        try:
            out = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
            )
            try:
                left = st.st_size
                while left > 0:
                    n = os.copy_file_range(fd, out, min(left, 1 << 30))
                    if n == 0:
                        break
                    left -= n
                if owner is not None:
                    owner.apply(out, is_dir=False)
            finally:
                os.close(out)
        finally:
            os.close(fd)

    def _copy_dir(self, src: tuple[str, ...], dfd: int, name: str, owner: Ownership | None) -> None:
        os.mkdir(name, 0o755, dir_fd=dfd)
        sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
        try:
            if owner is not None:
                owner.apply(sub, is_dir=True)
            for entry in self.listdir(src, 0, 10**9).entries:
                if entry.type == "dir":
                    self._copy_dir((*src, entry.name), sub, entry.name, owner)
                elif entry.type == "file":
                    self._copy_file((*src, entry.name), sub, entry.name, owner)
        finally:
            os.close(sub)

    def _check_target(self, src: tuple[str, ...], dest: Tree, dst: tuple[str, ...]) -> None:
        if not src or not dst:
            raise Invalid("the workspace folder itself cannot be moved or copied over", code="is_root")
        if dest.root == self.root and dst[: len(src)] == src:
            raise Invalid(f"cannot put '{shown(src)}' inside itself", code="into_itself")

    def _own(self, dfd: int, name: str) -> None:
        if self.owner is not None:
            self.owner.apply_at(dfd, name, is_dir=True)


class _Sink:
    """A write-only file for zipfile that hands out what was written since the last take()."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    return time.localtime(max(mtime, 315532800))[:6]  # zip cannot say anything before 1980


def temp_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}"


def _discard(dfd: int, name: str) -> None:
    st = lstat_in(dfd, name)
    if st is None:
        return
    try:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)
    except OSError:
        pass


__all__ = ["Listing", "Tree", "open_dir", "temp_name"]
