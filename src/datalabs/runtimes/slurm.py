"""`SlurmRuntime`: a lab is a Slurm batch job that runs the same sandboxed lab `LocalRuntime` runs.

Configuration. A backend instance drives one lab on one cluster (`ClusterSettings`, backend "slurm").
The lab manager creates backends as `backend_class()()`, so `SlurmRuntime.for_cluster(cluster)` returns
a subclass bound to that cluster; `SlurmRuntime()` alone uses the cluster set there or, with none, a
default cluster reached through Slurm's own default config (SLURM_CONF in the environment). The
cluster's `options.slurm_conf` becomes SLURM_CONF for `sbatch`, `squeue` and `scancel`.

Start. `start(spec)` writes two files beside the lab's log (the platform's folder, 0700): the spec as
JSON (`slurm-spec.json`, 0600: it holds the lab's secret) and the job script rendered from
`JOB_SCRIPT` (`slurm-job.sh`), whose only variable parts are `#SBATCH` lines of validated values
(slurm_script.py says which, and why they are checked again there). The interpreter and the spec file
reach the script as its arguments ("$1" "$2", never parsed by a shell) and the paths Slurm needs
(`--output`, `--chdir`) go on sbatch's argv (no shell either); `%` (Slurm's filename patterns) and
control characters in them are refused. sbatch runs with an environment made from nothing but PATH
and LANG (`job_environment`), which the job inherits: the platform's environment (its secrets) never
reaches the job. (Not `--export=NIL` or `NONE`: with those slurmd loads the submitting user's login
environment on the node, `su - root -c env`, which cost 0.5-2 s of every start and put root's profile
into the job.) The lab's command, env and mounts exist only in the JSON spec.

On the node, `python -m datalabs.runtimes.slurm_job SPEC` (slurm_job.py) starts the lab with
LocalRuntime, so the bubblewrap sandbox, cgroup, network namespace and uid are the local ones, and
Slurm's allocation (`--cpus-per-task`, `--mem`, `--gres=gpu[:type]:N`) sits around it.

Endpoint, as the cluster's `options.endpoint` says. "socket" (the default): the lab's unix socket in
`spec.runtime_dir`, which the platform reaches when the node shares that directory with it (the
single-node cluster of the tests, or a runtime dir on a shared filesystem). "port", for nodes without a
shared directory: the job forwards a port the kernel picks on its node to the lab's socket and reports
that port, and nothing else, to the platform's callback with a token made for this start (in the spec
file only); the host is squeue's BatchHost, resolved by the platform, never the job's word; the lab is
ready once it answers there as itself, and `Endpoint.host_port` is the address that answered
(slurm_port.py, slurm_forward.py; the callback route: api/lab_callbacks.py).

States. `squeue` through `slurm_queue.JobQueue`: one query per poll interval for all jobs of the
cluster. PENDING/CONFIGURING: starting, progress "waiting for resources: <reason>"; RUNNING: running;
terminal states (and COMPLETING): ended with the job's exit code. A failed squeue (controller down)
changes nothing: the lab keeps its last known state. `spec.start_timeout` counts from when the job
runs, not from submission: time in the queue is the cluster's, and the user sees why it waits. The
node enforces it (LocalRuntime there) and prints its reason; the platform gives up `NODE_SLACK` later.

Stop. Pending: `scancel`. Running: `scancel --batch --signal=TERM` (or INT when `now`), which the job's
entry turns into LocalRuntime's stop (graceful or at once, releasing cgroup and network namespace),
then after a grace period `scancel --full --signal=KILL`. Idempotent; waits until Slurm says the job
has finished.

Restart. `get_state()` holds the job id, the cluster (name and config file), the endpoint (socket,
secret headers, uid), the log and whether the lab was ready; `load_state()` re-attaches to pending and
running jobs, and `wait_started()` follows a job that was still starting (the manager must call it for
labs restored in state "starting"; today it fails them, see labs/manager.py `restore`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import httpx

from datalabs.clusters.settings import ClusterSettings, port_bounds
from datalabs.runtimes import desktop, slurm_port, slurm_queue
from datalabs.runtimes.base import (
    Capacity,
    Endpoint,
    LabSpec,
    Limits,
    ProgressEvent,
    RuntimeBackend,
    StartError,
)
from datalabs.runtimes.events import EventLog, tail_lines
from datalabs.runtimes.local import SOCKET_NAME, LocalRuntime
from datalabs.runtimes.slurm_job import READY_LINE, REASON_PREFIX, spec_to_json
from datalabs.runtimes.slurm_queue import JobQueue, JobStatus, SlurmUnavailable, run_slurm
from datalabs.runtimes.slurm_script import (
    JOB_COMMENT,
    JOB_NAME,
    plain_path,
    render_script,
)
from datalabs.sandbox.bwrap import NOBODY

# The node enforces `spec.start_timeout` itself (LocalRuntime there) and says why it failed; the platform
# gives up this much later, covering the job's Python start on the node, so the node's reason wins.
NODE_SLACK = 5.0
STOP_GRACE = 15.0  # seconds the lab gets to stop after SIGTERM (LocalRuntime's own grace is 10 s)
STOP_NOW_GRACE = 5.0
SPEC_FILE, SCRIPT_FILE = "slurm-spec.json", "slurm-job.sh"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def job_environment() -> dict[str, str]:
    """sbatch's whole environment, and so its job's (--export=ALL): PATH (where the platform finds
    sbatch) and LANG; nothing else of the platform's (the module doc says why not --export=NIL)."""
    return {"PATH": os.environ.get("PATH") or STANDARD_PATH, "LANG": "C.UTF-8"}


class SlurmRuntime(RuntimeBackend):
    kinds: ClassVar[tuple[str, ...]] = ("web", "desktop")
    configured: ClassVar[ClusterSettings | None] = None  # set by for_cluster()
    platform: ClassVar[str] = ""  # the platform's tag in its jobs' comments (for_cluster)

    def __init__(self, cluster: ClusterSettings | None = None) -> None:
        self.cluster = cluster or self.configured or ClusterSettings(name="slurm", backend="slurm")
        self._job: str | None = None
        self._ended: int | None = None
        self._ready = False
        self._endpoint: Endpoint | None = None
        self._log_path: Path | None = None
        self._ready_path, self._start_timeout = "/", 120.0
        self._kind = "web"
        self._end_state = ""  # Slurm's state once the job ended by itself (TIMEOUT, ...)
        self._log_offset = 0  # where this start's output begins in the lab's log (kept across restarts)
        self._events = EventLog()
        # Endpoint "port" (slurm_port.py): this start's token digest, the port its job reported, and where
        # the platform could not reach it (for the reason of a start that times out).
        self._lab_id, self._callback, self._port, self._unreached = "", "", None, ""

    @classmethod
    def for_cluster(cls, cluster: ClusterSettings, platform: str = "") -> type[SlurmRuntime]:
        """A SlurmRuntime class bound to `cluster`, for callers that create backends as `cls()`; its jobs
        carry `platform` (see `platform_tag`) so that a restarted platform finds the ones it forgot."""
        if cluster.backend != "slurm":
            raise ValueError(f"cluster {cluster.name} has backend {cluster.backend!r}, not 'slurm'")
        return type(f"SlurmRuntime[{cluster.name}]", (cls,), {"configured": cluster, "platform": platform})

    @classmethod
    async def cancel_forgotten(cls, known: Collection[str]) -> list[str]:
        return await cancel_forgotten(cls.configured, cls.platform, known)

    @classmethod
    def capacity(cls) -> Capacity:
        cluster = cls.configured or ClusterSettings(name="slurm", backend="slurm")
        return slurm_queue.capacity(cluster.options.slurm_conf, cluster.options.partition)

    @property
    def job_id(self) -> str | None:
        return self._job

    @property
    def _queue(self) -> JobQueue:
        return JobQueue.of(self.cluster.options.slurm_conf)

    async def _slurm(self, *argv: str, env: dict[str, str] | None = None) -> str:
        rc, out, err = await run_slurm(self.cluster.options.slurm_conf, *argv, env=env)
        if rc != 0:
            raise SlurmUnavailable(f"{argv[0]} on cluster {self.cluster.name} failed: {err.strip() or rc}")
        return out

    # ---- start --------------------------------------------------------------------------------------

    async def start(self, spec: LabSpec) -> Endpoint:
        if spec.kind not in self.kinds:
            self._fail(f"{spec.kind} labs cannot run on a Slurm cluster yet")
        self._log_path, self._kind = spec.log_path, spec.kind
        self._ready_path, self._start_timeout = spec.ready_path, spec.start_timeout
        script = render_script(spec, self.cluster, self.platform)
        self._lab_id = spec.lab_id
        if self.cluster.options.endpoint == "port":
            spec = self._with_callback(spec)
        folder = spec.log_path.parent
        argv = [f"--output={plain_path(spec.log_path, 'log')}", f"--chdir={plain_path(folder, 'lab')}"]
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        spec.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (spec.runtime_dir / SOCKET_NAME).unlink(missing_ok=True)
        spec_file, script_file = folder / SPEC_FILE, folder / SCRIPT_FILE
        for path, text in ((spec_file, spec_to_json(spec)), (script_file, script)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        uid = (spec.policy.identity or NOBODY).uid if os.geteuid() == 0 else None
        if spec.kind == "desktop":
            socket = str(spec.runtime_dir / desktop.VNC_SOCKET)
            secret = desktop.vnc_password(spec)
            self._endpoint = Endpoint(socket=socket, protocol="vnc", secret=secret, uid=uid)
        else:
            socket = str(spec.runtime_dir / SOCKET_NAME)
            self._endpoint = Endpoint(socket=socket, headers=dict(spec.secret_headers), uid=uid)
        if self._callback:  # no socket to check: the lab's host_port once its job reported the port
            self._endpoint = replace(self._endpoint, socket=None, uid=None)
        self._log_offset = spec.log_path.stat().st_size if spec.log_path.is_file() else 0
        try:
            out = await self._slurm(
                "sbatch", "--parsable", "--open-mode=append", "--export=ALL", *argv,
                str(script_file), sys.executable, str(spec_file), env=job_environment(),
            )  # fmt: skip
        except SlurmUnavailable as exc:
            self._fail(f"could not submit the lab to cluster {self.cluster.name}: {exc}")
        job = out.strip().split(";")[0]
        if not job.isdigit():
            self._fail(f"sbatch answered no job id: {out.strip()[:200]!r}")
        self._job = job
        if self._callback:
            slurm_port.CALLBACKS.bind_job(self._lab_id, self._callback, job)
        self._events.add(10, f"Submitted to {self.cluster.title} as Slurm job {job}")
        return await self.wait_started()

    async def wait_started(self) -> Endpoint:
        """Follow the submitted (or re-attached) job until its lab answers; StartError if it cannot."""
        assert self._job is not None and self._endpoint is not None
        deadline, reason = None, None
        transport = httpx.AsyncHTTPTransport(uds=self._endpoint.socket)
        async with httpx.AsyncClient(transport=transport, base_url="http://lab", timeout=5) as client:
            while True:
                status = await self._queue.status(self._job)
                if status is not None and status.ended:
                    self._ended = status.exit_code()
                    self._fail(self._ended_while_starting(status))
                if status is not None and status.pending and status.reason != reason:
                    reason = status.reason
                    self._events.add(15, f"waiting for resources: {reason or 'queued'}")
                if status is not None and not status.pending and deadline is None:
                    deadline = time.monotonic() + self._start_timeout + NODE_SLACK
                    self._say_running(status)
                # A lab on a shared socket is asked as soon as its socket exists (start() removed any old
                # one), without waiting for a squeue to say RUNNING.
                early = not self._callback and os.path.exists(self._endpoint.socket or "")
                if (deadline is not None or early) and await self._answers(client, status):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    await self.stop(now=True)
                    why = self.last_log_line()
                    if self._unreached:
                        why = f"its job serves it at {self._unreached}, where the platform cannot reach it"
                    self._fail(f"the lab did not answer within {self._start_timeout:.0f} s: {why}")
                await asyncio.sleep(0.05)  # the queue itself is asked at most once per its interval
        if deadline is None:  # it answered before a squeue said RUNNING: still say where it runs
            self._say_running(await self._queue.status(self._job, fresh=True))
        self._ready = True
        if self._callback:
            slurm_port.CALLBACKS.discard(self._lab_id, self._callback)  # the token is spent
        self._events.add(100, "Ready", ready=True)
        return self._endpoint

    def _say_running(self, status: JobStatus | None) -> None:
        host = status.host if status is not None and status.host else "a node"
        self._events.add(30, f"Running on {host} (Slurm job {self._job})")

    async def _answers(self, client: httpx.AsyncClient, status: JobStatus | None) -> bool:
        if self._callback:
            return await self._reached_port(status)
        if not os.path.exists(self._endpoint.socket):
            return False
        if self._endpoint.protocol == "vnc":  # the node probed Xvnc and the app's window (LocalRuntime)
            return self._node_said_ready()
        try:
            response = await client.get(self._ready_path, headers=self._endpoint.headers)
        except httpx.TransportError:
            return False
        # 401/403: the lab refused its own secret; keep waiting (the timeout says so), as LocalRuntime.
        return response.status_code < 500 and response.status_code not in (401, 403)

    def _with_callback(self, spec: LabSpec) -> LabSpec:
        """Endpoint "port": the spec with where and how its job reports its port (slurm_port.py)."""
        url = self.cluster.options.callback_url or spec.platform_url
        if not url:
            self._fail(
                f"cluster {self.cluster.name} serves labs on ports, but the platform's address for its nodes "
                "is unknown: set the cluster's callback_url"
            )
        token, self._callback = slurm_port.new_token()
        slurm_port.CALLBACKS.expect(spec.lab_id, self._callback, ports=self._port_bounds)
        ports = self.cluster.options.port_range
        return replace(spec, platform_url=url, callback_token=token, port_range=ports)

    @property
    def _port_bounds(self) -> tuple[int, int] | None:
        return port_bounds(self.cluster.options.port_range)

    async def _reached_port(self, status: JobStatus | None) -> bool:
        """Endpoint "port": the job reported its port and the lab answers there, on the node Slurm names
        (never an address the job gave)."""
        if self._port is None:
            self._port = slurm_port.CALLBACKS.port(self._lab_id, self._callback, self._job)
            if self._port is None:
                return False
            self._events.add(50, f"The lab's job serves it on port {self._port}")
        if status is None or not status.host:
            return False
        host_port = await slurm_port.reach(status.host, self._port, self._endpoint, self._ready_path)
        if host_port is None:
            self._unreached = f"{status.host}:{self._port}"
            return False
        self._endpoint = replace(self._endpoint, host_port=host_port)
        return True

    def _node_said_ready(self) -> bool:
        if self._log_path is None:
            return False
        try:
            with self._log_path.open("rb") as f:
                f.seek(self._log_offset)
                output = f.read(4 * 2**20)  # a start's output; the marker comes right after it
        except OSError:
            return False
        return f"{READY_LINE}\n".encode() in output

    def _ended_while_starting(self, status: JobStatus) -> str:
        where = f"Slurm job {self._job} {status.state}" + (f", {status.reason}" if status.reason else "")
        line = self.last_log_line()
        if line.startswith(REASON_PREFIX):  # the node's own words (slurm_job.py)
            return f"{line.removeprefix(REASON_PREFIX)} ({where})"
        if status.state == "CANCELLED":
            return f"the job was cancelled before the lab was ready ({where})"
        return f"the lab exited with code {status.exit_code()} while starting ({where}): {line}"

    def _fail(self, reason: str):
        if self._callback:
            slurm_port.CALLBACKS.discard(self._lab_id, self._callback)
        self._events.add(100, reason, failed=True)
        raise StartError(reason)

    # ---- watch and stop -----------------------------------------------------------------------------

    async def poll(self) -> int | None:
        if self._ended is not None:
            return self._ended
        if self._job is None:
            return 0
        status = await self._queue.status(self._job)
        # Not while COMPLETING: Slurm is still ending it, and only the final state (TIMEOUT, ...) says why.
        if status is not None and status.finished:
            self._ended, self._end_state = status.exit_code(), status.state
        return self._ended

    def end_reason(self) -> str:
        """Why the lab ended by itself, in Slurm's terms a user understands ("" if it just exited)."""
        limit = self.cluster.options.time_limit
        limit = f" ({limit} minutes)" if limit.isdigit() else f" ({limit})" if limit else ""  # sbatch --time
        return {
            "TIMEOUT": f"it reached its time limit on {self.cluster.title}{limit}",
            "DEADLINE": "it reached its deadline on the cluster",
            "PREEMPTED": "the cluster preempted it for a job of higher priority",
            "NODE_FAIL": "its node on the cluster failed",
            "BOOT_FAIL": "its node on the cluster failed to boot",
            "OUT_OF_MEMORY": "it used more memory than its limit",
            "CANCELLED": "it was cancelled on the cluster, outside the platform",
        }.get(self._end_state, "")

    async def stop(self, now: bool = False) -> None:
        if self._job is None:
            return
        status = await self._queue.status(self._job, fresh=True)
        if status is None or not status.finished:
            if status is None or status.pending:
                await self._cancel()
            elif not status.ended:
                await self._cancel("--batch", f"--signal={'INT' if now else 'TERM'}")
            status = await self._until_finished(STOP_NOW_GRACE if now else STOP_GRACE)
            if not status.finished:
                await self._cancel("--full", "--signal=KILL")
                status = await self._until_finished(STOP_GRACE)
        if self._ended is None:
            self._ended = status.exit_code()
        self._queue.forget(self._job)

    async def _cancel(self, *options: str) -> None:
        rc, _, err = await run_slurm(self.cluster.options.slurm_conf, "scancel", *options, self._job)
        if rc != 0 and "already completing or completed" not in err and "Invalid job id" not in err:
            raise SlurmUnavailable(f"scancel of Slurm job {self._job} failed: {err.strip() or rc}")

    async def _until_finished(self, seconds: float) -> JobStatus:
        deadline = time.monotonic() + seconds
        while True:
            status = await self._queue.status(self._job, fresh=True)
            if status is None:
                raise SlurmUnavailable(f"Slurm job {self._job} is unknown: {self._queue.last_error}")
            if status.finished or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.1)

    # ---- state --------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        e = self._endpoint
        return {
            "job_id": self._job,
            "cluster": self.cluster.name,
            "slurm_conf": self.cluster.options.slurm_conf,
            "socket": e.socket if e else None,
            "host_port": e.host_port if e else None,
            "lab_id": self._lab_id,
            "callback": self._callback,  # the digest of this start's token (endpoint "port"), never the token
            "port": self._port,
            "headers": e.headers if e else {},
            "uid": e.uid if e else None,
            "protocol": e.protocol if e else "http",
            "secret": e.secret if e else "",  # a desktop's VNC password (LocalRuntime keeps it too)
            "kind": self._kind,
            "log_offset": self._log_offset,
            "log": str(self._log_path or ""),
            "ready": self._ready,
            "ready_path": self._ready_path,
            "start_timeout": self._start_timeout,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("slurm_conf") and not self.cluster.options.slurm_conf:
            # Created without a cluster (a restarted platform's default): the job's own cluster.
            options = self.cluster.options.model_copy(update={"slurm_conf": state["slurm_conf"]})
            self.cluster = self.cluster.model_copy(
                update={"name": state.get("cluster") or "slurm", "options": options}
            )
        self._job = state.get("job_id")
        if self._job:
            self._queue.track(self._job)
        self._lab_id, self._callback = state.get("lab_id") or "", state.get("callback") or ""
        self._port = state.get("port")
        if state.get("socket") or self._callback:
            self._endpoint = Endpoint(
                socket=state.get("socket"),
                host_port=state.get("host_port"),
                headers=state.get("headers") or {},
                uid=state.get("uid"),
                protocol=state.get("protocol") or "http",
                secret=state.get("secret") or "",
            )
        self._kind = state.get("kind") or "web"
        self._log_offset = int(state.get("log_offset") or 0)
        self._log_path = Path(state["log"]) if state.get("log") else None
        self._ready = bool(state.get("ready"))
        self._ready_path = state.get("ready_path") or "/"
        self._start_timeout = float(state.get("start_timeout") or 120)
        if self._callback and not self._ready:  # still starting: its job may report its port to us now
            slurm_port.CALLBACKS.expect(
                self._lab_id, self._callback, self._job, self._port, self._port_bounds
            )
        message = f"Re-attached to Slurm job {self._job}"
        self._events.add(100 if self._ready else 10, message, ready=self._ready)

    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    def progress(self) -> AsyncIterator[ProgressEvent]:
        return self._events.follow()

    def logs(self, tail: int = 200) -> str:
        return tail_lines(self._log_path, tail)

    def limits(self) -> Limits:
        local = LocalRuntime().limits()  # the node runs the lab as this host would (see the docstring)
        return Limits(
            sandboxed=local.sandboxed,
            cpu_enforced=local.cpu_enforced,
            memory_enforced=local.memory_enforced,
            notes=f"On the Slurm node, as on this host: {local.notes}; Slurm allocates CPUs, memory and GPUs",
        )


async def cancel_forgotten(cluster: ClusterSettings, platform: str, known: Collection[str]) -> list[str]:
    """Cancel the jobs of `platform` on `cluster` that are not labs in `known`; their ids. SlurmUnavailable
    (nothing cancelled) if Slurm cannot say which jobs run."""
    rc, out, err = await run_slurm(
        cluster.options.slurm_conf,
        "squeue", "--me", "-h", "-t", "PENDING,CONFIGURING,RUNNING,SUSPENDED,REQUEUED",
        "-O", "JobID:24,Name:200,Comment:200",
    )  # fmt: skip
    if rc != 0:
        raise SlurmUnavailable(f"squeue on cluster {cluster.name} failed: {err.strip() or rc}")
    forgotten = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit() or parts[2] != f"{JOB_COMMENT}{platform}":
            continue
        if parts[1].removeprefix(JOB_NAME) not in known:
            forgotten.append(parts[0])
    if forgotten:
        rc, _, err = await run_slurm(cluster.options.slurm_conf, "scancel", *forgotten)
        if rc != 0 and "already completing or completed" not in err and "Invalid job id" not in err:
            raise SlurmUnavailable(f"scancel on cluster {cluster.name} failed: {err.strip() or rc}")
    return forgotten
