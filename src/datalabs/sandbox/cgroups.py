"""CPU and memory limits through cgroups, v2 (unified) or v1 (per-controller hierarchies).

A lab's processes join its cgroup before `bwrap` is exec'd (see `LocalRuntime`), so everything in the
sandbox is counted. Without a writable cgroup hierarchy nothing is enforced and `available()` says why.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "datalabs"
PERIOD_US = 100_000


def version() -> int | None:
    if (ROOT / "cgroup.controllers").exists():
        return 2
    if (ROOT / "memory" / "memory.limit_in_bytes").exists():
        return 1
    return None


def available() -> tuple[bool, str]:
    v = version()
    if v is None:
        return False, "no cgroup hierarchy is mounted at /sys/fs/cgroup"
    probe = ROOT / ("" if v == 2 else "memory") / PARENT
    try:
        probe.mkdir(exist_ok=True)
    except OSError as exc:
        return False, f"cgroup v{v} is not writable here ({exc.strerror})"
    return True, f"cgroup v{v}"


@dataclass(frozen=True)
class LabCgroup:
    """The cgroup directories of one lab (one per controller on v1, one on v2)."""

    dirs: tuple[str, ...]
    version: int

    @classmethod
    def create(cls, lab_id: str, cpu: float, memory_bytes: int) -> LabCgroup:
        v = version()
        if v == 2:
            parent = ROOT / PARENT
            parent.mkdir(exist_ok=True)
            _write(ROOT / "cgroup.subtree_control", "+cpu +memory", ignore_errors=True)
            _write(parent / "cgroup.subtree_control", "+cpu +memory", ignore_errors=True)
            lab = parent / lab_id
            lab.mkdir(exist_ok=True)
            _write(lab / "memory.max", str(memory_bytes))
            _write(lab / "memory.swap.max", "0", ignore_errors=True)
            _write(lab / "cpu.max", f"{int(cpu * PERIOD_US)} {PERIOD_US}")
            return cls((str(lab),), 2)
        memory = ROOT / "memory" / PARENT / lab_id
        cpu_dir = ROOT / "cpu" / PARENT / lab_id
        for d in (memory, cpu_dir):
            d.mkdir(parents=True, exist_ok=True)
        _write(memory / "memory.limit_in_bytes", str(memory_bytes))
        _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes), ignore_errors=True)
        _write(cpu_dir / "cpu.cfs_period_us", str(PERIOD_US))
        _write(cpu_dir / "cpu.cfs_quota_us", str(int(cpu * PERIOD_US)))
        return cls((str(memory), str(cpu_dir)), 1)

    @property
    def procs_files(self) -> list[str]:
        return [str(Path(d) / "cgroup.procs") for d in self.dirs]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs_files[0]).read_text().split()]
        except OSError:
            return []

    def oom_killed(self) -> bool:
        """True if the kernel killed a process of the lab for exceeding its memory limit."""
        memory = Path(self.dirs[0])
        try:
            if self.version == 2:
                events = dict(line.split() for line in (memory / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0
            control = dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines())
            return int(control.get("oom_kill", 0)) > 0
        except (OSError, ValueError):
            return False

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for d in self.dirs:
            # A cgroup still holding dying processes cannot be removed yet; the next cleanup will.
            with contextlib.suppress(OSError):
                os.rmdir(d)


def _write(path: Path, value: str, ignore_errors: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError:
        if not ignore_errors:
            raise
