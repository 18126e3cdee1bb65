"""Safe paths inside one directory tree (a workspace or a data volume).

A path from a user is split into plain components (no `..`, `.`, absolute form, NUL, control characters,
or over-long names), then walked from an fd of the root one component at a time
with O_NOFOLLOW, so every later operation is an *at() call relative to a directory fd that is provably
inside the root. No symbolic link is ever followed: neither one planted in a workspace (labs write
there) nor one swapped in while we walk. The platform may run as root, which makes this the line
between a user's files and the host's.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from datalabs.errors import Conflict, DatalabsError, Forbidden, Invalid, NotFound, TooLarge

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
# Temporaries of uploads and copies in flight. Hidden only while a live writer holds them (see
# workspaces/inflight.py): any other file of that name, e.g. one a lab made, is an ordinary file.
TEMP_PREFIX = ".datalabs-upload-"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def parts_of(path: str) -> tuple[str, ...]:
    """The components of a user-supplied relative path; Invalid for anything that could leave the root.

    Percent-encoded forms arrive decoded once by the web server (`%2e%2e` is `..`, refused here); what
    is still encoded after that is a literal file name and never decoded again."""
    if "\x00" in path:
        raise Invalid("the path contains a NUL byte", code="bad_path")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid("the path is not valid UTF-8", code="bad_path") from None
    if size > MAX_PATH_BYTES:
        raise Invalid(f"the path is longer than {MAX_PATH_BYTES} bytes", code="path_too_long")
    if path.startswith("/"):
        raise Invalid("absolute paths are not allowed: give a path inside the workspace", code="bad_path")
    parts = tuple(p for p in path.split("/") if p)
    for part in parts:
        check_name(part)
    return parts


def check_name(name: str) -> str:
    if name in (".", ".."):
        raise Invalid("'.' and '..' are not allowed in paths", code="bad_path")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise Invalid(
            f"the name '{name[:40]}...' is longer than {MAX_NAME_BYTES} bytes", code="name_too_long"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or "/" in name:
        raise Invalid("names cannot contain control characters or '/'", code="bad_path")
    return name


def shown(parts: tuple[str, ...]) -> str:
    return "/".join(parts) or "/"


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # relative to the root, '/'-separated
    type: str  # file | dir | link | other
    size: int
    modified: float  # seconds since the epoch

    @classmethod
    def of(cls, parts: tuple[str, ...], st: os.stat_result) -> Entry:
        return cls(
            name=parts[-1] if parts else "",
            path="/".join(parts),
            type=kind(st.st_mode),
            size=st.st_size if stat.S_ISREG(st.st_mode) else 0,
            modified=st.st_mtime,
        )


def kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "link" if stat.S_ISLNK(mode) else "other"


def os_error(exc: OSError, parts: tuple[str, ...], parent_fd: int | None = None) -> DatalabsError:
    """A clear domain error for an OS error on `parts` (a 4xx; never an OS message with host paths)."""
    where = shown(parts)
    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and parent_fd is not None and parts:
        try:
            mode = os.stat(parts[-1], dir_fd=parent_fd, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            return Forbidden(f"'{where}' is a symbolic link; links are never followed", code="symlink")
        if mode and not stat.S_ISDIR(mode):
            return Invalid(f"'{where}' is not a folder", code="not_a_folder")
    if exc.errno == errno.ELOOP:
        return Forbidden(f"'{where}' is a symbolic link; links are never followed", code="symlink")
    if exc.errno == errno.ENOTDIR:
        return Invalid(f"a part of '{where}' is not a folder", code="not_a_folder")
    if exc.errno == errno.ENOENT:
        return NotFound(f"'{where}' does not exist", code="file_not_found")
    if exc.errno == errno.EEXIST:
        return Conflict(f"'{where}' already exists", code="exists")
    if exc.errno == errno.ENOTEMPTY:
        return Conflict(f"'{where}' is not empty", code="not_empty")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Forbidden(f"'{where}' cannot be changed here", code="read_only")
    if exc.errno == errno.ENAMETOOLONG:
        return Invalid(f"'{where[:60]}' is too long a name", code="name_too_long")
    if exc.errno == errno.EDQUOT:  # project quotas (sandbox/quota.py): the kernel said it, not us
        return TooLarge(
            f"'{where}' does not fit: this workspace's quota is used up; delete files or ask an "
            "administrator for more space",
            code="quota_exceeded",
        )
    if exc.errno == errno.ENOSPC:
        return DatalabsError("the disk is full", code="disk_full")
    if exc.errno == errno.EXDEV:
        return Invalid("cannot move between these two places; copy instead", code="cross_device")
    if exc.errno == errno.EISDIR:
        return Conflict(f"'{where}' is a folder", code="is_a_folder")
    return DatalabsError(f"cannot access '{where}' ({errno.errorcode.get(exc.errno, 'error')})", code="io")


@dataclass(frozen=True)
class Ownership:
    """Who what the platform makes in a space belongs to: its user's sandbox uid and group; in a team
    space (`shared`) the team's group with group write, folders setgid (see workspaces/layout.py)."""

    uid: int
    gid: int
    shared: bool = False

    def apply(self, fd: int, is_dir: bool) -> None:
        """Own the open file or folder `fd` (an fd: a name could be swapped for a link meanwhile)."""
        os.fchown(fd, self.uid, self.gid)
        if self.shared:
            extra = 0o2070 if is_dir else 0o060
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | extra)

    def apply_at(self, dir_fd: int, name: str, is_dir: bool) -> None:
        flags = DIR_FLAGS if is_dir else os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
        try:
            self.apply(fd, is_dir)
        finally:
            os.close(fd)


def open_root(root: Path) -> int:
    try:
        return os.open(root, DIR_FLAGS)
    except OSError as exc:
        raise NotFound("this space's folder is missing on the server", code="root_missing") from exc


def open_dir(
    root: Path, parts: tuple[str, ...], *, create: bool = False, owner: Ownership | None = None
) -> int:
    """An fd of the folder `parts` under `root` (the caller closes it). With `create`, missing folders
    are made (owned by `owner` when given, so labs running as that uid can write them)."""
    fd = open_root(root)
    try:
        for i, name in enumerate(parts):
            try:
                nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise NotFound(
                        f"folder '{shown(parts[: i + 1])}' does not exist", code="file_not_found"
                    ) from None
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                    if owner is not None:
                        owner.apply_at(fd, name, is_dir=True)
                except FileExistsError:
                    pass  # made meanwhile by someone else: open it like any other
                except OSError as exc:
                    raise os_error(exc, parts[: i + 1], fd) from None
                try:
                    nfd = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise os_error(exc, parts[: i + 1], fd) from None
            except OSError as exc:
                raise os_error(exc, parts[: i + 1], fd) from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def in_dir(root: Path, parts: tuple[str, ...], **kwargs) -> Iterator[int]:
    fd = open_dir(root, parts, **kwargs)
    try:
        yield fd
    finally:
        os.close(fd)


def lstat_in(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_file(root: Path, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
    """An fd of the regular file `parts` for reading and its stat; the caller closes the fd."""
    if not parts:
        raise Invalid("'/' is a folder", code="is_a_folder")
    with in_dir(root, parts[:-1]) as dfd:
        try:
            # O_NONBLOCK: opening a FIFO planted in a workspace must not hang the request.
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
        except OSError as exc:
            raise os_error(exc, parts, dfd) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise Conflict(f"'{shown(parts)}' is a folder", code="is_a_folder")
        raise Forbidden(f"'{shown(parts)}' is not a regular file", code="special_file")
    os.set_blocking(fd, True)
    return fd, st
