"""Workspace quotas enforced where the bytes are written (issue 13, finding 7).

Two mechanisms, chosen at start-up per workspace filesystem (`enforcement`):

- **project quotas** (ext4/XFS mounted with `prjquota`): every workspace is one filesystem project. Its
  root carries the project id with PROJINHERIT, so everything created below inherits it, and the
  kernel refuses a write past the limit with EDQUOT, whoever writes (a lab, a tool run). Usage is read
  from the quota accounting (one `quotactl`), never by walking the tree.
- **the platform's check** (any other filesystem): `labs/quota_check.py` measures the workspaces of
  running labs and remounts a workspace read-only inside a lab's mount namespace while it is past its
  quota (`sandbox/freeze.py`).

Project ids are stable: allocated once per workspace key (`user:<name>`, `team:<name>`) from the
configured range and kept in `<workspaces>/.projects.json`. Workspace folders are named after the user
or team, not their database row, so a user deleted and created again gets the same folder and the same
project: the id follows the folder.

Root ignores project limits (CAP_SYS_RESOURCE), so the platform's own uploads are still checked by the
platform against the same accounting; a process without that capability gets EDQUOT, which
`workspaces.paths.os_error` reports as `quota_exceeded` (413).

A project id can be changed by the owner of a file (FS_IOC_FSSETXATTR) from the initial user
namespace, which would move bytes out of the workspace's project: labs must not be allowed that ioctl
(`LAB_DENIED_IOCTLS`, for the sandbox's seccomp filter).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import stat
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from datalabs.sandbox import fs

log = logging.getLogger(__name__)

FS_IOC_FSGETXATTR = 0x801C581F  # _IOR('X', 31, struct fsxattr)
FS_IOC_FSSETXATTR = 0x401C5820  # _IOW('X', 32, struct fsxattr)
FS_XFLAG_PROJINHERIT = 0x00000200
_FSXATTR = struct.Struct("=IIII I8s")  # xflags, extsize, nextents, projid, cowextsize, pad

PRJQUOTA = 2
Q_GETINFO, Q_GETQUOTA, Q_SETQUOTA = 0x800005, 0x800007, 0x800008
QIF_BLIMITS, QIF_SPACE = 1, 2
_DQBLK = struct.Struct("=QQQQQQQQI4x")  # struct if_dqblk (72 bytes with its tail padding)
_DQINFO = struct.Struct("=QQII")  # struct if_dqinfo
SYS_QUOTACTL_FD = 443  # x86_64 and aarch64 (Linux >= 5.14); older kernels: quotactl on the device

# Ioctls a lab must not make: they change a file's project (and so escape the workspace's quota).
LAB_DENIED_IOCTLS = (FS_IOC_FSSETXATTR,)

PROJECT_FILESYSTEMS = ("ext4", "xfs")
PROJECT_OPTIONS = ("prjquota", "pquota", "prjjquota")

_libc = ctypes.CDLL(None, use_errno=True)


class QuotaError(OSError):
    """A quota operation failed (errno and a sentence)."""


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    options: frozenset[str]  # super options: where ext4 and XFS say 'prjquota'


@dataclass(frozen=True)
class Enforcement:
    """How quotas hold on one workspace filesystem, and how that was established at start-up."""

    mechanism: str  # "project" | "check"
    how: str  # one sentence for the log and the admin pages
    mount: Mount | None = None

    @property
    def project(self) -> bool:
        return self.mechanism == "project"


# ---- filesystem facts ------------------------------------------------------------------------------


def mount_of(path: Path) -> Mount | None:
    """The mount holding `path` (the longest mount point that is a prefix of its real path)."""
    real = os.path.realpath(path)
    best: Mount | None = None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(" "), tail.split(" ")
        if len(fields) < 5 or len(rest) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            best = Mount(point, rest[0], rest[1], frozenset(rest[2].split(",")))
    return best


def get_project(fd: int) -> tuple[int, int]:
    """(project id, xflags) of an open file or folder."""
    buf = bytearray(_FSXATTR.size)
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf, True)
    xflags, _, _, projid, _, _ = _FSXATTR.unpack(buf)
    return projid, xflags


def set_project(fd: int, projid: int, inherit: bool) -> None:
    """Give an open file or folder the project `projid` (folders: with PROJINHERIT when `inherit`)."""
    buf = bytearray(_FSXATTR.size)
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf, True)
    xflags, extsize, nextents, _, cowextsize, pad = _FSXATTR.unpack(buf)
    xflags = (xflags | FS_XFLAG_PROJINHERIT) if inherit else (xflags & ~FS_XFLAG_PROJINHERIT)
    fcntl.ioctl(fd, FS_IOC_FSSETXATTR, _FSXATTR.pack(xflags, extsize, nextents, projid, cowextsize, pad))


def _quotactl(mount: Mount, cmd: int, projid: int, buf) -> None:
    """quotactl on the filesystem of `mount`: by fd where the kernel has quotactl_fd, else by device."""
    fd = os.open(mount.point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ret = _libc.syscall(SYS_QUOTACTL_FD, fd, ctypes.c_uint(cmd), ctypes.c_uint(projid), buf)
        err = ctypes.get_errno() if ret != 0 else 0
    finally:
        os.close(fd)
    if err == errno.ENOSYS:
        signed = ctypes.c_int(cmd - (1 << 32) if cmd >= 1 << 31 else cmd)  # quotactl takes an int
        ret = _libc.quotactl(signed, mount.source.encode(), ctypes.c_uint(projid), buf)
        err = ctypes.get_errno() if ret != 0 else 0
    if err:
        raise QuotaError(err, f"quotactl on {mount.point}: {os.strerror(err)}")


def _qcmd(sub: int) -> int:
    return (sub << 8) | PRJQUOTA  # QCMD(sub, PRJQUOTA)


def usage_of_project(mount: Mount, projid: int) -> int:
    """Bytes the project uses, from the quota accounting."""
    buf = ctypes.create_string_buffer(_DQBLK.size)
    _quotactl(mount, _qcmd(Q_GETQUOTA), projid, buf)
    return _DQBLK.unpack(buf.raw)[2]


def limit_of_project(mount: Mount, projid: int) -> int:
    """The project's hard block limit in bytes (0: none)."""
    buf = ctypes.create_string_buffer(_DQBLK.size)
    _quotactl(mount, _qcmd(Q_GETQUOTA), projid, buf)
    return _DQBLK.unpack(buf.raw)[0] * 1024


def set_limit(mount: Mount, projid: int, limit: int) -> None:
    """Set the project's hard block limit to `limit` bytes (rounded up to whole KiB)."""
    blocks = -(-limit // 1024)
    buf = ctypes.create_string_buffer(_DQBLK.pack(blocks, blocks, 0, 0, 0, 0, 0, 0, QIF_BLIMITS))
    _quotactl(mount, _qcmd(Q_SETQUOTA), projid, buf)


# ---- which mechanism holds -----------------------------------------------------------------------


def detect(workspaces: Path, *, wanted: str = "auto") -> Enforcement:
    """Establish, by the mount options and a trial `quotactl`, whether project quotas are in force on the
    filesystem of `workspaces`; else the platform's check. `wanted`: auto | project | check."""
    mount = mount_of(workspaces)
    if wanted == "check":
        return Enforcement(
            "check", _check_sentence("chosen in settings: workspaces.enforcement = check"), mount
        )
    if mount is None:
        return Enforcement(
            "check", _check_sentence(f"the filesystem of {workspaces} could not be identified")
        )
    if mount.fstype not in PROJECT_FILESYSTEMS:
        why = f"{mount.fstype} at {mount.point} has no project quotas"
    elif not mount.options.intersection(PROJECT_OPTIONS):
        why = f"{mount.fstype} at {mount.point} ({mount.source}) is not mounted with prjquota"
    else:
        try:
            _quotactl(mount, _qcmd(Q_GETINFO), 0, ctypes.create_string_buffer(_DQINFO.size))
            fd = os.open(workspaces, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                get_project(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            why = f"project quotas on {mount.point} did not answer ({os.strerror(exc.errno or 0)})"
        else:
            return Enforcement(
                "project",
                f"Workspace quotas are enforced by the kernel: {mount.fstype} project quotas on "
                f"{mount.source} at {mount.point} (mounted with prjquota; quotactl answered at start-up). "
                "Writes past a quota fail with 'Disk quota exceeded' in labs and tool runs.",
                mount,
            )
    if wanted == "project":
        log.error("workspaces.enforcement = project, but %s: falling back to the platform's check", why)
    return Enforcement("check", _check_sentence(why), mount)


def _check_sentence(why: str) -> str:
    if os.geteuid() == 0:
        return (
            f"Workspace quotas are enforced by the platform's check, not the kernel ({why}): the "
            "workspaces of running labs are measured at every lab check, and one past its quota is made "
            "read-only inside its labs until files are deleted."
        )
    return (
        f"Workspace quotas are NOT enforced inside labs ({why}; and the platform does not run as root, "
        "so it cannot make a lab's workspace read-only): users past their quota are only warned."
    )


_known: dict[str, Enforcement] = {}  # workspaces folder -> what holds there, detected once per process


@lru_cache(maxsize=8)
def _detected(workspaces: str, wanted: str) -> Enforcement:
    result = detect(Path(workspaces), wanted=wanted)
    (log.info if result.project else log.warning)("quotas: %s", result.how)
    _known[workspaces] = result
    return result


def enforcement(settings) -> Enforcement:
    """The mechanism in force for these settings' workspaces (detected once per process)."""
    root = settings.home / "workspaces"
    root.mkdir(parents=True, exist_ok=True)
    return _detected(str(root), settings.workspaces.enforcement)


def enforcement_fact(settings) -> tuple[str, str]:
    """(mechanism, how it was checked) for the admin pages: e.g. ("project quotas", "...")."""
    found = enforcement(settings)
    return ("project quotas" if found.project else "platform check"), found.how


def admin_line(settings) -> tuple[bool, str]:
    """(enforced, sentence) as the admin pages list isolation facts: not enforced only when the platform
    cannot stop writes at all (no project quotas and not root)."""
    found = enforcement(settings)
    return found.project or os.geteuid() == 0, found.how


# ---- project ids and limits of workspaces -------------------------------------------------------------


def project_id(settings, key: str) -> int:
    """The stable project id of workspace `key`, allocated from `workspaces.project_ids` on first use."""
    first, last = settings.workspaces.project_ids
    path = settings.home / "workspaces" / ".projects.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # several platform processes may allocate at once
        text = f.read()
        ids: dict[str, int] = json.loads(text) if text.strip() else {}
        if key in ids:
            return ids[key]
        new = max([first - 1, *ids.values()]) + 1
        if new > last:
            raise QuotaError(errno.ENOSPC, f"no project id left in workspaces.project_ids {first}..{last}")
        ids[key] = new
        f.seek(0)
        f.truncate()
        f.write(json.dumps(ids, indent=0, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
        return new


def adopt(root: Path, projid: int) -> int:
    """Make the folder `root` and everything in it project `projid` (PROJINHERIT on folders, so new files
    inherit it). Cheap when already done (one ioctl); otherwise the tree is walked once, from directory
    fds without following links. Returns the number of entries changed."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        current, xflags = get_project(fd)
        if current == projid and xflags & FS_XFLAG_PROJINHERIT:
            return 0
        set_project(fd, projid, inherit=True)  # first: files made during the walk inherit it
        changed = 1
        for _, dirs, files, dfd in fs.walk(fd):  # never opens through a link (os.fwalk would)
            for name in dirs + files:
                changed += _retag(dfd, name, projid)
        return changed
    finally:
        os.close(fd)


def _retag(dfd: int, name: str, projid: int) -> int:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return 0  # links and special files hold no data blocks worth counting
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        fd = os.open(name, flags | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0), dir_fd=dfd)
    except OSError:
        return 0  # gone meanwhile, or swapped for a link: not ours to follow
    try:
        set_project(fd, projid, inherit=stat.S_ISDIR(st.st_mode))
        return 1
    finally:
        os.close(fd)


def keep(settings, key: str, root: Path, limit: int) -> None:
    """Where project quotas are in force: `root` is workspace `key`'s project, limited to `limit` bytes.
    Idempotent and cheap when nothing changed (one ioctl and one quotactl); a no-op elsewhere."""
    found = enforcement(settings)
    if not found.project or not root.is_dir():
        return
    projid = project_id(settings, key)
    changed = adopt(root, projid)
    if changed > 1:
        log.info("quotas: %s is now project %d (%d entries tagged)", key, projid, changed)
    if limit_of_project(found.mount, projid) != -(-limit // 1024) * 1024:
        set_limit(found.mount, projid, limit)


def measured(root: Path) -> int | None:
    """Bytes used by the workspace at `root` (`<workspaces>/users|teams/<name>`) from the quota
    accounting; None where project quotas are not in force or `root` is not its project yet (the caller
    walks the tree instead)."""
    found = _known.get(str(root.parent.parent))
    if found is None or not found.project:
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        projid, xflags = get_project(fd)
    finally:
        os.close(fd)
    if projid == 0 or not xflags & FS_XFLAG_PROJINHERIT:
        return None  # not adopted yet: only a walk is right
    return usage_of_project(found.mount, projid)
