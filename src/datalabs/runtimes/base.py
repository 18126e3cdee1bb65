"""The `RuntimeBackend` contract (modelled on JupyterHub's Spawner): one instance drives one lab.

The platform creates a backend per lab, calls `start(spec)`, and persists `get_state()` in the DB so
that after a platform restart a fresh instance given `load_state(state)` re-attaches to the running
lab. Every implementation passes the suite in `tests/contracts/test_runtime_contract.py`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from datalabs.sandbox.bwrap import Mount
from datalabs.sandbox.policy import Policy

__all__ = [
    "Capacity",
    "DesktopApp",
    "Endpoint",
    "LabSpec",
    "Limits",
    "Mount",
    "ProgressEvent",
    "RuntimeBackend",
    "StartError",
]


@dataclass(frozen=True)
class DesktopApp:
    """One app of a desktop lab with several (a launcher menu entry; started with the session when
    `autostart`). `command` is run by a shell, so it is an argv joined with shell quoting."""

    name: str
    command: tuple[str, ...]
    autostart: bool = True


@dataclass(frozen=True)
class LabSpec:
    """Everything a backend needs to start one lab; placeholders in `command` are already filled in."""

    lab_id: str
    owner: str
    kind: str  # web | desktop
    command: list[str]
    runtime_dir: Path  # host directory seen as /run/datalab inside; the lab's socket lives here
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    workdir: str = "/media/home/my_workspace"
    cpu: float = 1.0
    memory_bytes: int = 2 * 10**9
    gpu: int = 0  # GPUs asked for (Slurm: --gres=gpu[:type]:N; locally: runtimes/gpus.py places them)
    secret: str = ""  # the lab's own secret (e.g. Jupyter token); never leaves the platform
    secret_headers: dict[str, str] = field(default_factory=dict)  # what the proxy injects upstream
    ready_path: str = "/"  # HTTP path (under the lab's base URL) that answers once it serves
    start_timeout: float = 120.0
    # Desktop labs with several apps (kind "desktop", empty `command`): a window manager with a launcher
    # menu, the apps, and a SAMP hub started before them when `samp_hub`.
    apps: tuple[DesktopApp, ...] = ()
    samp_hub: bool = False
    # Identity, network, process limits (sandbox/policy.py); the default runs as nobody with no network.
    policy: Policy = field(default_factory=Policy)
    # Labs whose node reports a TCP port (Slurm clusters with endpoint "port"): the platform's address as
    # the node reaches it (the manager's api_url; a cluster's callback_url wins), the job's single-use
    # token for that report, set by the runtime at each start (only ever in the spec file, 0600), and the
    # ports it may bind ("LOW-HIGH", the cluster's port_range; "": any the kernel picks).
    platform_url: str = ""
    callback_token: str = field(default="", repr=False)
    port_range: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where the proxy reaches a started lab, and the secret headers it must inject."""

    socket: str | None = None
    host_port: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    protocol: str = "http"  # "http" (HTTP and WebSocket) or "vnc" (raw RFB: the proxy serves noVNC)
    # The uid that must own the socket and listen on it (the lab's): the proxy refuses any other peer,
    # so a lab cannot point its socket path at another lab's. None: not checked (the platform is not root).
    uid: int | None = None
    secret: str = ""  # a desktop lab's VNC password: the proxy answers Xvnc's challenge with it


@dataclass(frozen=True)
class Capacity:
    """What a cluster can give now, as the launch choice shows it (None: not known)."""

    cpus_idle: int | None = None
    cpus_total: int | None = None
    memory_free: int | None = None  # bytes not allocated to jobs
    memory_total: int | None = None
    gpus_total: int = 0
    queued: int = 0  # jobs waiting for resources there
    note: str = ""  # why it is not known

    @property
    def summary(self) -> str:
        if self.note or self.cpus_total is None:
            return self.note or "starts right away"
        parts = [f"{self.cpus_idle} of {self.cpus_total} CPUs free"]
        if self.memory_total:
            parts.append(f"{_gb(self.memory_free)} of {_gb(self.memory_total)} GB memory free")
        if self.gpus_total:
            parts.append(f"{self.gpus_total} GPU{'' if self.gpus_total == 1 else 's'}")
        queued = f"{self.queued} job{'' if self.queued == 1 else 's'} queued"
        parts.append(queued if self.queued else "no queue")
        return " · ".join(parts)


def _gb(size: int | None) -> str:
    return f"{(size or 0) / 10**9:.0f}" if (size or 0) >= 10**10 else f"{(size or 0) / 10**9:.1f}"


@dataclass(frozen=True)
class Limits:
    """What isolation and limits the backend actually enforces for a lab (shown to users and admins)."""

    sandboxed: bool
    cpu_enforced: bool
    memory_enforced: bool
    notes: str = ""


@dataclass(frozen=True)
class ProgressEvent:
    progress: int  # 0-100
    message: str
    ready: bool = False
    failed: bool = False


class StartError(Exception):
    """The lab could not start; the message says why in words a user understands."""


class RuntimeBackend(abc.ABC):
    kinds: ClassVar[tuple[str, ...]] = ()  # lab kinds this backend can start

    @classmethod
    def for_cluster(cls, cluster: Any, platform: str = "") -> type[RuntimeBackend]:
        """This backend bound to a configured cluster (`ClusterSettings`), for callers that create backends
        as `cls()`; `platform` tags what it leaves on a shared cluster. The host's own backend has no
        cluster to bind."""
        return cls

    @classmethod
    def capacity(cls) -> Capacity:
        """What the bound cluster can give now (a launch dialog's "free now / queued"); the host's own
        backend starts labs at once."""
        return Capacity()

    @classmethod
    async def cancel_forgotten(cls, known: Collection[str]) -> list[str]:
        """After a platform restart: end what this backend's cluster runs for the platform that is not a lab
        in `known` (the ones re-attached); what was ended. RuntimeError if it cannot tell."""
        return []

    @abc.abstractmethod
    async def start(self, spec: LabSpec) -> Endpoint:
        """Start the lab and return once it answers HTTP on its endpoint (or raise StartError with the
        reason within seconds of a crash, a missing command, or after `spec.start_timeout`)."""

    @abc.abstractmethod
    async def poll(self) -> int | None:
        """None while the lab runs; its exit code (or -signal) once it has ended."""

    @abc.abstractmethod
    async def stop(self, now: bool = False) -> None:
        """Stop the lab (gracefully unless `now`) and release its resources; idempotent."""

    @abc.abstractmethod
    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state that lets `load_state` re-attach after a platform restart."""

    @abc.abstractmethod
    def load_state(self, state: dict[str, Any]) -> None:
        """Re-attach to a lab described by `get_state()` of an earlier instance."""

    @abc.abstractmethod
    def endpoint(self) -> Endpoint | None:
        """The endpoint of a started (or re-attached) lab, None before start."""

    @abc.abstractmethod
    def progress(self) -> AsyncIterator[ProgressEvent]:
        """Events describing the start, ending with one `ready` or `failed` event."""

    @abc.abstractmethod
    def logs(self, tail: int = 200) -> str:
        """The last `tail` lines of the lab's output."""

    @abc.abstractmethod
    def limits(self) -> Limits:
        """What this backend enforces on this host."""

    def last_log_line(self) -> str:
        """The last line the lab wrote (what a failed start's reason quotes), or "no output"."""
        lines = [line for line in self.logs(20).splitlines() if line.strip()]
        return lines[-1][:300] if lines else "no output"

    def end_reason(self) -> str:
        """Once `poll()` says the lab ended: why, if not by its own exit (a walltime, a preemption), in
        words a user understands; "" otherwise."""
        return ""
