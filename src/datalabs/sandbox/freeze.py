"""Making a bind mount read-only (and writable again) inside one sandbox's mount namespace: the
platform's quota check where the filesystem has no project quotas (`sandbox/quota.py`).

The remount happens in the sandbox's own namespace (`nsenter -m` into a process of the sandbox), so
only that sandbox's view changes: the platform, uploads and deletions on the host stay writable. The
kernel refuses to make a mount read-only while a file on it is open for writing (EBUSY); such writers
are the programs that keep the workspace growing, so the sandbox's processes are stopped, the writers
killed, the mount made read-only, and the others continued. Only a platform running as root can do
this (it must enter the namespace), and only in sandboxes bubblewrap built as root, whose mount points
(`/media/...`) belong to root and cannot be swapped for links by the lab.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MOUNT = "/bin/mount"
# Per-mount flags a remount must repeat: MS_REMOUNT|MS_BIND replaces them all, and dropping bubblewrap's
# nosuid/nodev would let a lab run set-uid programs from a shared workspace.
KEPT_FLAGS = ("nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime")


class FreezeError(RuntimeError):
    """The mount could not be changed (the sentence says why)."""


@dataclass(frozen=True)
class MountPoint:
    id: int
    options: frozenset[str]  # per-mount options ("ro", "nosuid", ...)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


@dataclass
class Frozen:
    """What making a mount read-only took: the programs killed because they held files open for writing."""

    killed: list[str] = field(default_factory=list)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, breadth first."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def _mnt_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def namespace_pid(pid: int, target: str | None = None) -> int | None:
    """The first process at or below `pid` (a sandbox's launcher) in another mount namespace than ours,
    and (given `target`) one where `target` is mounted: bubblewrap's init inside the sandbox, not a
    helper that isolates itself in a namespace of its own (pasta does). None when the sandbox is gone."""
    ours = _mnt_ns("self")
    for candidate in [pid, *descendants(pid)]:
        ns = _mnt_ns(candidate)
        if ns is not None and ns != ours and (target is None or mount_point(candidate, target)):
            return candidate
    return None


def mount_point(ns_pid: int, target: str) -> MountPoint | None:
    """The top mount at `target` as the sandbox sees it."""
    try:
        lines = Path(f"/proc/{ns_pid}/mountinfo").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 5 and fields[4].replace("\\040", " ") == target:
            found = MountPoint(int(fields[0]), frozenset(fields[5].split(",")))  # the last one is on top
    return found


def _remount(ns_pid: int, target: str, point: MountPoint, readonly: bool) -> str:
    """'' when done, else mount's complaint."""
    kept = [f for f in KEPT_FLAGS if f in point.options]
    options = ",".join(["remount", "bind", "ro" if readonly else "rw", *kept])
    done = subprocess.run(
        ["nsenter", "-t", str(ns_pid), "-m", "--", MOUNT, "--no-canonicalize", "-o", options, target],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return "" if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


def writers(pids: list[int], mount_id: int) -> dict[int, str]:
    """{pid: program name} of the processes holding a file on mount `mount_id` open for writing."""
    found: dict[int, str] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                info = dict(
                    line.split(":", 1) for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                )
            except (OSError, ValueError):
                continue
            if int(info.get("mnt_id", "-1")) == mount_id and int(info.get("flags", "0"), 8) & os.O_ACCMODE:
                found[pid] = _comm(pid)
                break
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def make_readonly(ns_pid: int, target: str, *, rounds: int = 3) -> Frozen:
    """Make `target` read-only in the sandbox of `ns_pid` (no-op when it is already). Programs that hold a
    file on it open for writing are killed (the kernel refuses otherwise); the sandbox's other processes
    are stopped meanwhile so none can open a new one, then continued. FreezeError when it cannot."""
    result = Frozen()
    for _ in range(rounds):
        point = mount_point(ns_pid, target)
        if point is None:
            raise FreezeError(f"{target} is not mounted in the sandbox")
        if point.readonly:
            return result
        complaint = _remount(ns_pid, target, point, readonly=True)
        if not complaint:
            return result
        # Stop everything, then look: a process stopped cannot open another file for writing.
        stopped: list[int] = []
        for _ in range(5):
            fresh = [p for p in descendants(ns_pid) if p not in stopped]
            if not fresh:
                break
            _signal_all(fresh, signal.SIGSTOP)
            stopped += fresh
        try:
            holding = writers(stopped, point.id)
            _signal_all(list(holding), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while holding and time.monotonic() < deadline and writers(list(holding), point.id):
                time.sleep(0.02)
            result.killed += [f"{name} (pid {pid})" for pid, name in holding.items()]
            complaint = _remount(ns_pid, target, point, readonly=True)
        finally:
            _signal_all(stopped, signal.SIGCONT)
        if not complaint:
            return result
    raise FreezeError(f"could not make {target} read-only: {complaint}")


def make_writable(ns_pid: int, target: str) -> None:
    """Undo `make_readonly` (no-op when `target` is writable already)."""
    point = mount_point(ns_pid, target)
    if point is None:
        raise FreezeError(f"{target} is not mounted in the sandbox")
    if point.readonly and (complaint := _remount(ns_pid, target, point, readonly=False)):
        raise FreezeError(f"could not make {target} writable again: {complaint}")
