"""Privileged file work on trees a sandbox (or a lab) could have shaped, done without trusting a path.

The platform runs as root. Any tree user code writes to — a tool's output folder, a workspace a lab has
mounted — may hold symbolic links to anything on the host (`/etc/shadow`, the platform's secret key,
another user's files), hard links, FIFOs or devices, and a lab can swap a file for a link between our
check and our use. So everything here works from directory file descriptors: walks never follow links
(`os.fwalk(follow_symlinks=False)`, `O_NOFOLLOW`), and where a link's destination matters it is resolved
by the kernel with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from the folder it must stay in
(kernels since 5.6; without it, links are treated as leaving).

- `confine(top, allowed)`: make a tool's output folder safe to collect as root: links that resolve
  outside it (other than to the run's own inputs) are removed, and so are FIFOs, sockets, devices and
  hard links; what was removed is reported by name.
- `chown_tree(top, uid, gid)`: give a private tree to a sandbox's identity, links themselves only.
- `snapshot(root, parts, stage)`: a private copy-on-nothing view (hard links) of a user's file or folder
  for a run, so a lab changing its workspace while the run starts cannot redirect what root reads.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x01, 0x02, 0x04, 0x08
_SYS_OPENAT2 = 437  # the same number on x86_64 and arm64 (new system calls share numbers since 5.x)
O_PATH = getattr(os, "O_PATH", 0o10000000)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2): an fd of `path` relative to `dir_fd`, resolved under the `resolve` rules. OSError on
    failure (EXDEV: the path would leave `dir_fd`; ENOSYS: this kernel has no openat2)."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    fd = _libc.syscall(
        _SYS_OPENAT2, ctypes.c_int(dir_fd), os.fsencode(path), ctypes.byref(how), ctypes.c_size_t(24)
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def has_openat2() -> bool:
    try:
        os.close(openat2(os.open("/", DIR_FLAGS), ".", O_PATH, RESOLVE_BENEATH))
    except OSError as exc:
        return exc.errno != errno.ENOSYS
    return True


def walk(top_fd: int, folder: str = ".") -> Iterator[tuple[str, list[str], list[str], int]]:
    """(folder path relative to the top, sub-folder names, other names, folder fd) for the tree of
    `top_fd`, top-down. Unlike `os.fwalk` (which stats and opens through a link to a folder before
    checking), nothing here is ever followed: entries are typed by lstat, folders opened with
    O_NOFOLLOW|O_DIRECTORY, so a link swapped in meanwhile is an error for that entry, never a detour
    (to a FIFO that would hang us, or a device that opening would trigger). Links are among the
    "other names". The fds are only valid during the iteration step; as with `os.walk`, removing names
    from the sub-folder list in place keeps the walk out of them."""
    dirs, others = [], []
    try:
        with os.scandir(top_fd) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                (dirs if is_dir else others).append(entry.name)
    except OSError:
        return
    yield folder, dirs, others, top_fd
    for name in dirs:
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=top_fd)
        except OSError:
            continue  # gone, or swapped for something else: not ours to follow
        try:
            yield from walk(fd, os.path.join(folder, name) if folder != "." else name)
        finally:
            os.close(fd)


def resolves_beneath(dir_fd: int, path: str) -> bool:
    """True if `path` (relative to `dir_fd`, links followed) exists and never leaves `dir_fd`."""
    return kind_beneath(dir_fd, path) is not None


def kind_beneath(dir_fd: int, path: str) -> int | None:
    """The st_mode of what `path` (relative to `dir_fd`, links followed) reaches without ever leaving
    `dir_fd`, or None if it leaves, is missing or loops."""
    try:
        fd = openat2(dir_fd, path, O_PATH, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    try:
        return os.fstat(fd).st_mode
    finally:
        os.close(fd)


# ---- confining a tool's output folder ---------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """What an output link may point at besides its own folder: the run's inputs (host paths of files
    and folders it was given, as staged for it)."""

    files: frozenset[tuple[int, int]] = frozenset()  # (st_dev, st_ino) of input files
    dirs: tuple[str, ...] = ()  # input folders (links may point at or below them)

    @classmethod
    def of(cls, paths: Iterable[str]) -> Allowed:
        files, dirs = set(), []
        for path in paths:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                dirs.append(os.path.normpath(path))
            elif stat.S_ISREG(st.st_mode):
                files.add((st.st_dev, st.st_ino))
        return cls(frozenset(files), tuple(dirs))


def confine(
    top: str | Path, allowed: Allowed = Allowed(), report: Callable[[str], None] = lambda _: None
) -> list[str]:
    """Remove from the tree `top` everything root must not act on: links that leave it (except to
    `allowed` inputs), special files, and files with names outside it (hard links; several names of one
    file inside the tree are fine). Returns the removed paths (relative to `top`); `report` is told about
    each in words. Run it after the sandbox's processes are gone."""
    removed: list[str] = []
    names: dict[tuple[int, int], list[tuple[int, str, str]]] = {}  # hard-linked files: their names here
    top_fd = os.open(top, DIR_FLAGS)
    try:
        for folder, _, others, dfd in walk(top_fd):
            for name in others:
                rel = os.path.normpath(os.path.join(folder, name))
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    names.setdefault((st.st_dev, st.st_ino), []).append((st.st_nlink, rel, name))
                    continue
                why = _refusal(top_fd, dfd, rel, name, st, allowed)
                if why:
                    _remove(dfd, name)
                    removed.append(rel)
                    report(f"output '{rel}' removed: {why}")
        for found in names.values():
            if len(found) >= found[0][0]:
                continue  # every name of the file is inside the tree
            for _, rel, _ in found:
                parent = os.open(os.path.dirname(rel) or ".", DIR_FLAGS, dir_fd=top_fd)
                try:
                    _remove(parent, os.path.basename(rel))
                finally:
                    os.close(parent)
                removed.append(rel)
                report(f"output '{rel}' removed: it is a hard link to a file outside the run's folder")
    finally:
        os.close(top_fd)
    return removed


def _refusal(top_fd: int, dfd: int, rel: str, name: str, st: os.stat_result, allowed: Allowed) -> str:
    """Why the entry `name` (at `rel` below the top) may not stay, or '' if it may."""
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    if not stat.S_ISLNK(mode):
        return "it is not a regular file (FIFOs, sockets and devices are not delivered)"
    target = os.readlink(name, dir_fd=dfd)
    inside = kind_beneath(top_fd, rel)
    if inside is not None and not stat.S_ISDIR(inside):
        return ""
    if _to_input(dfd, name, target, allowed):
        return ""
    if inside is not None:  # a folder of the run's own: such links make loops that walkers never leave
        return f"it is a symbolic link to the folder '{target}' (links to folders are not delivered)"
    return f"it is a symbolic link to '{target}', outside the run's folder (links are never followed out)"


def _to_input(dfd: int, name: str, target: str, allowed: Allowed) -> bool:
    """True if the link resolves to one of the run's input files, or at/below one of its input folders."""
    if not os.path.isabs(target):
        return False  # relative links that leave the output folder are never a staged input
    for folder in allowed.dirs:
        if target == folder or target.startswith(folder + "/"):
            rest = os.path.relpath(target, folder)
            try:
                root = os.open(folder, DIR_FLAGS)
            except OSError:
                continue
            try:
                if resolves_beneath(root, rest):
                    return True
            finally:
                os.close(root)
    if not allowed.files:
        return False
    try:
        # O_PATH: no read of the target, just which inode the kernel reaches (as the check then uses).
        fd = os.open(name, O_PATH | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) in allowed.files


def _remove(dfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dfd)
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dfd)
    except FileNotFoundError:
        pass


# ---- ownership ---------------------------------------------------------------------------------------


def chown_tree(top: str | Path, uid: int, gid: int | None = None) -> None:
    """Give `top` and everything below it (links themselves, never their targets) to uid:gid."""
    gid = uid if gid is None else gid
    top_fd = os.open(top, DIR_FLAGS)
    try:
        os.fchown(top_fd, uid, gid)
        for _, dirs, others, dfd in walk(top_fd):
            for name in (*dirs, *others):
                try:
                    os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
    finally:
        os.close(top_fd)


def share_tree(top: str | Path, gid: int) -> None:
    """Give everything below `top` to group `gid`, group-writable, folders setgid (a team workspace);
    links are left alone (their mode means nothing), never followed."""
    top_fd = os.open(top, DIR_FLAGS)
    try:
        for _, dirs, others, dfd in walk(top_fd):
            for name in (*dirs, *others):
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                        continue  # links, FIFOs, sockets: their mode means nothing, never opened
                    os.chown(name, -1, gid, dir_fd=dfd, follow_symlinks=False)
                    extra = 0o2070 if stat.S_ISDIR(st.st_mode) else 0o060
                    # chmod of a name could follow a link swapped in since the stat: only a fd is safe.
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
                    try:
                        os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | extra)
                    finally:
                        os.close(fd)
                except OSError:
                    continue
    finally:
        os.close(top_fd)


# ---- private snapshots of user files ----------------------------------------------------------------


def snapshot_file(src_fd: int, dst_dir_fd: int, name: str) -> None:
    """`name` in `dst_dir_fd` becomes the very file open as `src_fd` (a hard link through /proc, so the
    inode we checked is the one used whatever happens to its old path), or a copy across filesystems."""
    try:
        os.link(f"/proc/self/fd/{src_fd}", name, dst_dir_fd=dst_dir_fd, follow_symlinks=True)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    out = os.open(
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dst_dir_fd
    )
    try:
        size = os.fstat(src_fd).st_size
        offset = 0
        while offset < size:
            n = os.copy_file_range(src_fd, out, min(size - offset, 1 << 30), offset)
            if n == 0:
                break
            offset += n
    finally:
        os.close(out)


def snapshot_tree(src_dir_fd: int, dst_dir_fd: int) -> None:
    """Mirror the folder `src_dir_fd` into the empty folder `dst_dir_fd`: sub-folders made, regular files
    linked (`snapshot_file`), links and special files left out — never followed."""
    with os.scandir(src_dir_fd) as entries:
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(entry.name, 0o755, dir_fd=dst_dir_fd)
                sub_src = os.open(entry.name, DIR_FLAGS, dir_fd=src_dir_fd)
                try:
                    sub_dst = os.open(entry.name, DIR_FLAGS, dir_fd=dst_dir_fd)
                    try:
                        snapshot_tree(sub_src, sub_dst)
                    finally:
                        os.close(sub_dst)
                finally:
                    os.close(sub_src)
            elif stat.S_ISREG(st.st_mode):
                fd = os.open(
                    entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_dir_fd
                )
                try:
                    if stat.S_ISREG(os.fstat(fd).st_mode):  # still a file after the open (no swap)
                        snapshot_file(fd, dst_dir_fd, entry.name)
                finally:
                    os.close(fd)
