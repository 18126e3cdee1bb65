"""CPU, memory and process-count limits through cgroups, v2 (unified) or v1 (per-controller hierarchies),
and which device nodes a sandbox may open (devices.py: v1's devices controller, v2's BPF program).

A sandbox's processes join its cgroup before `bwrap` is exec'd (bwrap.py), so everything in it is
counted. The `pids` controller bounds processes and threads: a fork bomb in one lab stops at its own
limit instead of starving every other lab. Without a writable hierarchy nothing is enforced and
`available()` says why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datalabs.sandbox import devices as device_rules

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


def pids_available() -> tuple[bool, str]:
    """Whether the pids controller can bound a sandbox's processes here, and how that was found."""
    v = version()
    if v == 2:
        controllers = _read(ROOT / "cgroup.controllers")
        return ("pids" in controllers.split(), f"cgroup v2 controllers: {controllers.strip() or 'none'}")
    if v == 1:
        pids = ROOT / "pids"
        if not (pids / "pids.max").exists() and not pids.is_dir():
            return False, "cgroup v1 without a pids hierarchy"
        try:
            (pids / PARENT).mkdir(exist_ok=True)
        except OSError as exc:
            return False, f"cgroup v1 pids hierarchy not writable ({exc.strerror})"
        return True, "cgroup v1 pids hierarchy"
    return False, "no cgroup hierarchy is mounted at /sys/fs/cgroup"


@dataclass(frozen=True)
class LabCgroup:
    """The cgroup directories of one sandbox (one per controller on v1, one on v2)."""

    dirs: tuple[str, ...]
    version: int

    @classmethod
    def create(
        cls,
        name: str,
        cpu: float | None = None,
        memory_bytes: int | None = None,
        pids: int | None = None,
        devices: Sequence[device_rules.DeviceRule] | None = None,
    ) -> LabCgroup:
        """The cgroup `name` with the limits given (None: not limited here). With `devices`, its
        processes may open only those device nodes; a host that cannot enforce that raises OSError."""
        v = version()
        if v == 2:
            parent = ROOT / PARENT
            parent.mkdir(exist_ok=True)
            _write(ROOT / "cgroup.subtree_control", "+cpu +memory +pids", ignore_errors=True)
            _write(parent / "cgroup.subtree_control", "+cpu +memory +pids", ignore_errors=True)
            lab = parent / name
            lab.mkdir(exist_ok=True)
            if memory_bytes is not None:
                _write(lab / "memory.max", str(memory_bytes))
                _write(lab / "memory.swap.max", "0", ignore_errors=True)
            if cpu is not None:
                _write(lab / "cpu.max", f"{int(cpu * PERIOD_US)} {PERIOD_US}")
            if pids is not None:
                _write(lab / "pids.max", str(pids))
            made = cls((str(lab),), 2)
            if devices is not None:
                made._limit_devices(devices)
            return made
        dirs: list[Path] = []
        if memory_bytes is not None or (cpu is None and pids is None):
            memory = ROOT / "memory" / PARENT / name
            memory.mkdir(parents=True, exist_ok=True)
            if memory_bytes is not None:
                _write(memory / "memory.limit_in_bytes", str(memory_bytes))
                _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes), ignore_errors=True)
            dirs.append(memory)
        if cpu is not None:
            cpu_dir = ROOT / "cpu" / PARENT / name
            cpu_dir.mkdir(parents=True, exist_ok=True)
            _write(cpu_dir / "cpu.cfs_period_us", str(PERIOD_US))
            _write(cpu_dir / "cpu.cfs_quota_us", str(int(cpu * PERIOD_US)))
            dirs.append(cpu_dir)
        if pids is not None and (ROOT / "pids").is_dir():
            pids_dir = ROOT / "pids" / PARENT / name
            pids_dir.mkdir(parents=True, exist_ok=True)
            _write(pids_dir / "pids.max", str(pids))
            dirs.append(pids_dir)
        devices_dir = ROOT / "devices" / PARENT / name
        if devices is not None and devices_dir.parent.parent.is_dir():
            devices_dir.mkdir(parents=True, exist_ok=True)
            dirs.append(devices_dir)
        made = cls(tuple(str(d) for d in dirs), 1)
        if devices is not None:
            made._limit_devices(devices, devices_dir if devices_dir in dirs else None)
        return made

    def _limit_devices(self, rules: Sequence[device_rules.DeviceRule], v1_dir: Path | None = None) -> None:
        """Allow the cgroup's processes only the device nodes of `rules`. If the host cannot, the cgroup
        is removed and OSError says why: a sandbox meant to open only some devices must not start able to
        open them all."""
        try:
            if self.version == 2:
                device_rules.attach_v2(Path(self.dirs[0]), rules)
            elif v1_dir is None:
                raise OSError("cgroup v1 without a devices hierarchy")
            else:
                device_rules.write_v1(v1_dir, rules)
        except OSError as exc:
            self.remove()
            raise OSError(exc.errno, f"device access cannot be limited here: {exc.strerror or exc}") from None

    @property
    def procs_files(self) -> list[str]:
        return [str(Path(d) / "cgroup.procs") for d in self.dirs]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs_files[0]).read_text().split()]
        except (OSError, IndexError):
            return []

    def pids_limit(self) -> tuple[int, int] | None:
        """(current, max) tasks of the pids controller, None without one."""
        for d in self.dirs:
            if (Path(d) / "pids.max").exists():
                try:
                    current = int(_read(Path(d) / "pids.current") or 0)
                    limit = _read(Path(d) / "pids.max").strip()
                    return current, int(limit) if limit.isdigit() else -1
                except (OSError, ValueError):
                    return None
        return None

    def oom_killed(self) -> bool:
        """True if the kernel killed a process of the sandbox for exceeding its memory limit."""
        memory = next((Path(d) for d in self.dirs if "/memory/" in d or self.version == 2), None)
        if memory is None:
            return False
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
        """Remove the cgroup's folders. One still holding a killed process that is not yet reaped (its
        zombie counts) cannot go yet: it is retried at the next removal in this process, instead of being
        left behind for good (thousands piled up over a day of builds and tool runs)."""
        with _lingering_lock:
            retry = list(_lingering)
            _lingering.clear()
        for d in (*self.dirs, *retry):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                with _lingering_lock:
                    if len(_lingering) < MAX_LINGERING:
                        _lingering.add(d)


MAX_LINGERING = 10_000
_lingering: set[str] = set()
_lingering_lock = threading.Lock()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str, ignore_errors: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError:
        if not ignore_errors:
            raise
