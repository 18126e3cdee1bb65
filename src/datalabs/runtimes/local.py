"""`LocalRuntime`: each lab is a process tree in a bubblewrap sandbox on this host (sandbox/), limited by a
cgroup (CPU, memory, processes), in a network namespace of its own, as its owner's uid. A lab asking for
GPUs gets GPUs no other lab holds (gpus.py): their device nodes alone in its /dev, and a cgroup device
rule allowing only those.

Labs outlive the platform process (own session, no parent-death signal) so a platform restart
re-attaches to them from the persisted state; the (pid, start time) pair guards against pid reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from datalabs.runtimes import desktop, gpus
from datalabs.runtimes.base import Endpoint, LabSpec, Limits, Mount, ProgressEvent, RuntimeBackend, StartError
from datalabs.runtimes.events import EventLog, tail_lines
from datalabs.sandbox import cgroups, launch, network
from datalabs.sandbox.bwrap import NOBODY, Box, bwrap_path, sandbox_path

SOCKET_NAME = "lab.sock"
BASE_ENV = {"PATH": sandbox_path(), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def lab_uid() -> int | None:
    """The uid a lab without an identity of its own runs as when the platform is root (nobody), else None."""
    return NOBODY.uid if os.geteuid() == 0 else None


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


class LocalRuntime(RuntimeBackend):
    kinds: ClassVar[tuple[str, ...]] = ("web", "desktop")  # desktop: Xvnc on a unix socket (desktop.py)

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._pid: int | None = None
        self._started: int | None = None
        self._endpoint: Endpoint | None = None
        self._prepared: launch.Prepared | None = None
        self._log_path: Path | None = None
        self._events = EventLog()
        self._gpus: list[gpus.Gpu] = []
        self._gpu_holder = ""  # the lab id its GPUs are held under (gpus.ALLOCATOR)
        self._gpu_root = gpus.DEFAULT_ROOT

    # ---- start --------------------------------------------------------------------------------------

    async def start(self, spec: LabSpec) -> Endpoint:
        try:
            return await self._start(spec)
        except BaseException:
            self._release_gpus()  # a lab that did not start holds no GPU
            raise

    async def _start(self, spec: LabSpec) -> Endpoint:
        bwrap = bwrap_path()
        if bwrap is None:
            self._events.add(100, "bubblewrap is not installed: labs cannot be sandboxed", failed=True)
            raise StartError("bubblewrap (bwrap) is not installed on this host, so labs cannot be sandboxed")
        self._log_path = spec.log_path
        self._events.add(5, "Preparing the sandbox")
        self._prepare_dirs(spec)
        extra: list[str] = []
        app = Path(spec.command[0]).name if spec.command else "an app" if spec.apps else "the lab"
        if spec.kind == "desktop":
            if missing := desktop.spec_missing_tools(spec):
                self._fail(f"not installed on this host: {', '.join(missing)}")
            desktop.prepare_runtime_dir(spec.runtime_dir, spec)
            spec, extra = desktop.session_spec(spec), desktop.sandbox_binds(spec.runtime_dir)
        gpu = self._place_gpus(spec)
        box = Box(
            command=spec.command,
            identity=spec.policy.identity,
            mounts=[*spec.mounts, Mount(spec.runtime_dir, "/run/datalab", readonly=False), *gpu.libraries],
            workdir=spec.workdir,
            env={"HOME": spec.workdir, "USER": self._user(spec), **spec.env, **gpu.env},
            hostname=desktop.sandbox_hostname(spec),
            launcher=True,
            extra=extra,
            device_nodes=gpu.binds(),
        )
        policy = replace(spec.policy, devices=gpu.device_rules()) if gpu.gpus else spec.policy
        try:
            self._prepared = launch.prepare(
                spec.lab_id,
                box,
                policy,
                spec.log_path.parent,
                cpu=spec.cpu,
                memory_bytes=spec.memory_bytes,
            )
        except (network.NetworkError, OSError, ValueError) as exc:
            self._fail(f"could not prepare the sandbox: {exc}")
        if gpu.gpus and self._prepared.cgroup is None:  # said, not pretended (DESIGN §5)
            why = cgroups.available()[1]
            self._events.add(15, f"Only its GPUs are in its /dev, but NO cgroup device rule backs it: {why}")
        self._events.add(20, f"Starting {app}")
        with spec.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self._prepared.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=self._prepared.fds,
                    env={**BASE_ENV, **spec.env},
                )
            except OSError as exc:
                self._prepared.release()
                self._fail(f"could not start the sandbox: {exc}")
            finally:
                self._prepared.close_fds()
        self._pid, self._started = self._proc.pid, _start_time(self._proc.pid)
        uid = (spec.policy.identity or NOBODY).uid if os.geteuid() == 0 else None
        if spec.kind == "desktop":
            socket = str(spec.runtime_dir / desktop.VNC_SOCKET)
            self._endpoint = Endpoint(
                socket=socket, protocol="vnc", secret=desktop.vnc_password(spec), uid=uid
            )
            await self._wait_desktop(spec, app)
        else:
            socket = str(spec.runtime_dir / SOCKET_NAME)
            self._endpoint = Endpoint(socket=socket, headers=dict(spec.secret_headers), uid=uid)
            await self._wait_ready(spec, socket)
        self._events.add(100, "Ready", ready=True)
        return self._endpoint

    def _place_gpus(self, spec: LabSpec) -> gpus.GpuPlan:
        """The GPUs the lab asks for, held for it until it stops; refused with the reason if too few
        are free. In a Slurm job, the job's own (Slurm placed them)."""
        if spec.gpu <= 0:
            return gpus.GpuPlan()
        self._gpu_root = Path(spec.policy.gpu_root)
        placed = gpus.slurm_job_gpus(self._gpu_root)
        if placed is None:
            try:
                placed = gpus.ALLOCATOR.claim(spec.lab_id, spec.gpu, self._gpu_root)
            except gpus.NotEnoughGpus as exc:
                self._fail(str(exc))
            self._gpu_holder = spec.lab_id
        self._gpus = placed
        names = ", ".join(g.uuid or f"GPU {g.index}" for g in placed)
        self._events.add(10, f"Given {names}" if placed else "No GPU of the Slurm job is on this node")
        return gpus.plan_for(placed, self._gpu_root)

    def _release_gpus(self) -> None:
        if self._gpu_holder:
            gpus.ALLOCATOR.release(self._gpu_holder)
            self._gpu_holder = ""

    def _prepare_dirs(self, spec: LabSpec) -> None:
        spec.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(spec.log_path.parent, 0o700)  # the sandbox's generated files live here: root's only
        stale = spec.runtime_dir / SOCKET_NAME
        stale.unlink(missing_ok=True)
        if os.geteuid() == 0:
            identity = spec.policy.identity or NOBODY
            os.chown(spec.runtime_dir, identity.uid, identity.gid)

    @staticmethod
    def _user(spec: LabSpec) -> str:
        return spec.policy.identity.name if spec.policy.identity else spec.owner

    async def _wait_ready(self, spec: LabSpec, socket: str) -> None:
        # Imported here, once the lab's process runs: a Slurm job (slurm_job.py) imports httpx (0.1-0.2 s
        # with its command-line extras installed) while the lab boots, not before it starts it.
        import httpx

        deadline = time.monotonic() + spec.start_timeout
        announced = False
        transport = httpx.AsyncHTTPTransport(uds=socket)
        async with httpx.AsyncClient(transport=transport, base_url="http://lab", timeout=5) as client:
            while True:
                code = await self.poll()
                if code is not None:
                    await self.stop(now=True)
                    self._fail(f"the lab exited with code {code} while starting: {self.last_log_line()}")
                if os.path.exists(socket):
                    if not announced:
                        self._events.add(60, "The lab is listening; waiting for it to answer")
                        announced = True
                    try:
                        response = await client.get(spec.ready_path, headers=spec.secret_headers)
                        # 401/403 mean the lab refused its own secret: keep waiting, the timeout says so.
                        if response.status_code < 500 and response.status_code not in (401, 403):
                            return
                    except httpx.TransportError:
                        pass
                if time.monotonic() > deadline:
                    await self.stop(now=True)
                    self._fail(
                        f"the lab did not answer within {spec.start_timeout:.0f} s: {self.last_log_line()}"
                    )
                # Noticed within 20 ms: no back-off (spawners that poll with doubling delays lose time).
                await asyncio.sleep(0.02)

    async def _wait_desktop(self, spec: LabSpec, app: str) -> None:
        """Wait until Xvnc answers RFB on its socket and the app shows a window."""
        deadline = time.monotonic() + spec.start_timeout
        announced = False
        while True:
            code = await self.poll()
            if code is not None:
                await self.stop(now=True)
                self._fail(f"the lab exited with code {code} while starting: {self.last_log_line()}")
            state = await desktop.probe(spec.runtime_dir, desktop_up=announced)
            if state == "window":
                return
            if state == "desktop" and not announced:
                self._events.add(60, f"The desktop is up; waiting for {app}'s window")
                announced = True
            if time.monotonic() > deadline:
                await self.stop(now=True)
                why = self.last_log_line()
                self._fail(f"{app} showed no window within {spec.start_timeout:.0f} s: {why}")
            await asyncio.sleep(0.05)

    def _fail(self, reason: str):
        self._events.add(100, reason, failed=True)
        raise StartError(reason)

    # ---- watch and stop -----------------------------------------------------------------------------

    async def poll(self) -> int | None:
        if self._proc is not None:
            return self._proc.poll()
        if self._pid is None:
            return 0
        if _start_time(self._pid) != self._started:
            return -1  # not our child (re-attached): the exit code is unknown
        return None

    async def stop(self, now: bool = False) -> None:
        deadline = time.monotonic() + (0 if now else 10)
        if self._pid is not None and await self.poll() is None:
            self._signal(signal.SIGKILL if now else signal.SIGTERM)
            while await self.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if await self.poll() is None:
                self._signal(signal.SIGKILL)
        cgroup = self._prepared.cgroup if self._prepared is not None else None
        if cgroup is not None:
            # bwrap's outer process dies at SIGTERM at once while the sandbox's processes are still
            # winding down (a desktop session waits for its apps): they get the rest of the grace period.
            while cgroup.pids() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            cgroup.kill_all()
            for _ in range(50):
                if not cgroup.pids():
                    break
                await asyncio.sleep(0.02)
        if self._prepared is not None:
            self._prepared.release()
        self._release_gpus()  # only once its processes are gone: they could still use them
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)

    def _signal(self, sig: int) -> None:
        # The lab leads its own process group; its sandbox's pid namespace dies with its init.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, sig)

    def oom_killed(self) -> bool:
        cgroup = self._prepared.cgroup if self._prepared is not None else None
        return cgroup is not None and cgroup.oom_killed()

    # ---- state --------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        e = self._endpoint
        return {
            "pid": self._pid,
            "start_time": self._started,
            "socket": e.socket if e else None,
            "headers": e.headers if e else {},
            "protocol": e.protocol if e else "http",
            "secret": e.secret if e else "",
            "uid": e.uid if e else None,
            "log": str(self._log_path or ""),
            **(self._prepared.state() if self._prepared else {}),
            "gpus": [g.index for g in self._gpus],
            "gpu_holder": self._gpu_holder,
            "gpu_root": str(self._gpu_root),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._pid, self._started = state.get("pid"), state.get("start_time")
        if state.get("socket"):
            self._endpoint = Endpoint(
                socket=state["socket"],
                headers=state.get("headers") or {},
                protocol=state.get("protocol") or "http",
                secret=state.get("secret") or "",
                uid=state.get("uid"),
            )
        self._log_path = Path(state["log"]) if state.get("log") else None
        self._prepared = launch.Prepared.from_state(state)
        if state.get("gpu_holder"):  # hold its GPUs again before any other lab is placed
            self._gpu_holder, self._gpu_root = state["gpu_holder"], Path(state["gpu_root"])
            self._gpus = gpus.ALLOCATOR.reclaim(self._gpu_holder, state.get("gpus") or [], self._gpu_root)
        self._events.add(100, "Re-attached", ready=True)

    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    def progress(self) -> AsyncIterator[ProgressEvent]:
        return self._events.follow()

    def logs(self, tail: int = 200) -> str:
        return tail_lines(self._log_path, tail)

    def limits(self) -> Limits:
        sandboxed = bwrap_path() is not None
        ok, how = cgroups.available()
        return Limits(
            sandboxed=sandboxed,
            cpu_enforced=ok,
            memory_enforced=ok,
            notes=how if ok else f"CPU and memory are NOT limited: {how}",
        )
