"""Slurm's view of the platform's jobs: one `squeue` per poll interval for every tracked job of a cluster.

`JobQueue.of(slurm_conf)` is shared by all `SlurmRuntime`s of one cluster (class-level, per config
file): each asks `status(job_id)`, and the queue refreshes all tracked jobs in ONE `squeue -j a,b,c`
at most once per `interval` (batchspawner and Toil run one query per job per cycle; with 200 labs that
is what the controller and the platform pay for).

Truth is only what the controller says. A failed `squeue` (controller down, timeout, munge error)
changes nothing: every job keeps its last known state, so an outage never ends a lab (batchspawner
#171/#315). A job is gone only when the controller answered and did not list it (it ended more than
MinJobAge ago), or answered "Invalid job id" (none of the queried jobs is known).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from typing import ClassVar

from datalabs.runtimes.base import Capacity

log = logging.getLogger(__name__)
PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
# The batch script has ended (COMPLETING: Slurm is still cleaning up its processes).
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "COMPLETING",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
    "TIMEOUT",
    "GONE",  # ours: the controller no longer knows the job
}
# JobID, State, raw wait status, node of the batch script, reason (last: the only field that may be long).
SQUEUE_FORMAT = "JobID:24,State:24,exit_code:12,BatchHost:128,Reason:1000"
COMMAND_TIMEOUT = 20.0


class SlurmUnavailable(RuntimeError):
    """A Slurm command failed (controller unreachable, ...); the message is Slurm's."""


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: str  # Slurm's job state (PENDING, RUNNING, ...) or GONE
    reason: str = ""  # squeue %r: why it waits (Resources, Priority, ...) or ended (NonZeroExitCode, ...)
    wait_status: int | None = None  # raw wait status (exit code << 8 | signal); None if unknown
    host: str = ""  # the node running the batch script

    @property
    def pending(self) -> bool:
        return self.state in PENDING

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def finished(self) -> bool:
        """Ended and cleaned up: no process of the job is left."""
        return self.ended and self.state != "COMPLETING"

    def exit_code(self) -> int:
        """As `RuntimeBackend.poll()` says it: the exit code, -signal, or -1 when Slurm ended it without
        one (cancelled while pending, timed out, node failure) or it is unknown."""
        status = self.wait_status
        if status:
            return -(status & 0x7F) if status & 0x7F else status >> 8
        return 0 if self.state == "COMPLETED" else -1


async def run_slurm(
    slurm_conf: str, *argv: str, timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """A Slurm client command (argv, no shell) for the cluster of `slurm_conf` -> (rc, stdout, stderr).
    `env`: the command's whole environment (SLURM_CONF added), instead of the platform's."""
    base = os.environ if env is None else env
    env = {**base, "SLURM_CONF": slurm_conf} if slurm_conf else (None if env is None else dict(env))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        return 127, "", f"{argv[0]}: {exc.strerror}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return 124, "", f"{argv[0]} did not answer within {timeout:.0f} s"
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def parse_squeue(text: str) -> dict[str, JobStatus]:
    found = {}
    for line in text.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        job_id, state, status, host = parts[:4]
        reason = parts[4].strip() if len(parts) == 5 else ""
        found[job_id] = JobStatus(
            job_id,
            state.rstrip("+"),
            "" if reason == "None" else reason,
            int(status) if status.isdigit() else None,
            "" if host in ("n/a", "(null)") else host,
        )
    return found


class JobQueue:
    # Seconds between two squeue of one cluster: 0.5, and 1 s more per 100 jobs it follows (200 labs:
    # 2.5 s), so that following many costs the platform little (bench/RESULTS.md: 2.7% of a core at 0.5 s).
    base_interval: ClassVar[float] = 0.5
    # A status older than this is not answered from memory: the caller waits for a squeue (the culler
    # asks once a minute, and would otherwise read the answer to its previous pass).
    stale: ClassVar[float] = 5.0
    timeout: ClassVar[float] = 10.0  # a down controller makes squeue retry ~18 s before it fails
    _queues: ClassVar[dict[str, JobQueue]] = {}

    def __init__(self, slurm_conf: str) -> None:
        self.slurm_conf = slurm_conf
        self.tracked: set[str] = set()
        self.known: dict[str, JobStatus] = {}
        self.refreshed_at = float("-inf")  # last squeue that answered
        self.tried_at = float("-inf")  # last squeue started, answered or not
        self.queries = 0  # squeue runs so far (tests and metrics read it)
        self.last_error = ""  # why the last squeue failed; "" once one succeeded again
        self._inflight: asyncio.Task | None = None

    @classmethod
    def of(cls, slurm_conf: str) -> JobQueue:
        if slurm_conf not in cls._queues:
            cls._queues[slurm_conf] = cls(slurm_conf)
        return cls._queues[slurm_conf]

    @property
    def interval(self) -> float:
        return self.base_interval + len(self.tracked) / 100

    def track(self, job_id: str) -> None:
        """Follow the job from the next squeue on (a restarted platform's labs: its first squeue then
        asks for all of them at once, not one squeue per lab)."""
        self.tracked.add(job_id)

    async def status(self, job_id: str, *, fresh: bool = False) -> JobStatus | None:
        """The job's last known status (None: never seen). A job seen before is answered at once and
        refreshed in the background once its status is older than `interval` (a squeue against a down
        controller takes `timeout`: nobody waits for it); a new job, `fresh`, or a last squeue older than
        `stale` waits for a squeue (one squeue, shared by all who wait)."""
        self.tracked.add(job_id)
        if fresh or job_id not in self.known:
            await self.refresh()
        elif time.monotonic() - self.tried_at > self.stale:
            await asyncio.shield(self._start_query())  # or the one in flight
        elif time.monotonic() - self.tried_at >= self.interval:
            self._start_query()
        return self.known.get(job_id)

    def forget(self, job_id: str) -> None:
        self.tracked.discard(job_id)
        self.known.pop(job_id, None)

    async def refresh(self) -> None:
        """One squeue for all tracked jobs that starts after this call (a query already in flight may
        predate what the caller knows, e.g. a job it just cancelled); callers at once share it."""
        await self.settled()
        await asyncio.shield(self._start_query())

    async def settled(self) -> None:
        """Wait for the squeue in flight, if any: its answer is in `known` afterwards."""
        inflight = self._inflight
        if inflight is not None and not inflight.done() and inflight.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(inflight)

    def _start_query(self) -> asyncio.Task:
        inflight = self._inflight
        if inflight is None or inflight.done() or inflight.get_loop() is not asyncio.get_running_loop():
            self.tried_at = time.monotonic()
            self._inflight = inflight = asyncio.get_running_loop().create_task(self._query())
        return inflight

    async def _query(self) -> None:
        ids = sorted(self.tracked, key=int)
        if not ids:
            return
        self.queries += 1
        rc, out, err = await run_slurm(
            self.slurm_conf,
            "squeue", "-h", "-t", "all", "-j", ",".join(ids), "-O", SQUEUE_FORMAT,
            timeout=self.timeout,
        )  # fmt: skip
        # "Invalid job id" is the controller's answer when none of the ids is known any more.
        if rc != 0 and "Invalid job id" not in err:
            self.last_error = err.strip() or f"squeue exited with {rc}"
            return  # the controller did not answer: keep what we knew
        listed = parse_squeue(out) if rc == 0 else {}
        for job_id in ids:
            self.known[job_id] = listed.get(job_id) or JobStatus(job_id, "GONE")
        self.refreshed_at, self.last_error = time.monotonic(), ""


# Node, CPUs allocated/idle/other/total, memory and memory allocated (MB), GRES (last: may be long).
SINFO_FORMAT = "NodeList:100,CPUsState:40,Memory:20,AllocMem:20,Gres:500"
CAPACITY_TTL = 15.0  # seconds a cluster's capacity is reused: launch pages must not run sinfo per view
_capacity: dict[tuple[str, str], tuple[float, Capacity]] = {}


def capacity(slurm_conf: str, partition: str, timeout: float = 3.0) -> Capacity:
    """What the cluster's partition(s) can give now: idle and total CPUs (`sinfo %C`), GPUs (`%G`) and
    the jobs waiting there. Cached for CAPACITY_TTL; a controller that does not answer within `timeout`
    gives a Capacity with only the reason, never an error (a page shows "unknown")."""
    key = (slurm_conf, partition)
    now = time.monotonic()
    if key in _capacity and now - _capacity[key][0] < CAPACITY_TTL:
        return _capacity[key][1]
    where = ["-p", partition] if partition else []
    env = {**os.environ, "SLURM_CONF": slurm_conf} if slurm_conf else None
    try:
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", *where, "-O", SINFO_FORMAT],
            env=env, capture_output=True, text=True, timeout=timeout, check=True,
        ).stdout  # fmt: skip
        pending = subprocess.run(
            ["squeue", "-h", "-t", "PENDING", *where, "-o", "%i"],
            env=env, capture_output=True, text=True, timeout=timeout, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        # Users see the note; Slurm's words name server paths (its config), so they go to the log only.
        log.warning(
            "capacity of %s: %s", slurm_conf or "the default cluster", getattr(exc, "stderr", "") or exc
        )
        found = Capacity(note="the cluster did not say what is free right now")
    else:
        found = _parse_capacity(nodes, len(pending.split()))
    _capacity[key] = (now, found)
    return found


def _parse_capacity(sinfo: str, queued: int) -> Capacity:
    idle = total = gpus = memory = memory_used = 0
    seen: set[str] = set()
    for line in sinfo.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] in seen:  # a node in several partitions is listed once per partition
            continue
        seen.add(parts[0])
        counts = parts[1].split("/")  # allocated/idle/other/total
        if len(counts) == 4 and all(c.isdigit() for c in counts):
            idle, total = idle + int(counts[1]), total + int(counts[3])
        if parts[2].isdigit() and parts[3].isdigit():
            memory, memory_used = memory + int(parts[2]), memory_used + int(parts[3])
        for gres in (parts[4] if len(parts) > 4 else "").split(","):
            fields = gres.split("(")[0].split(":")
            if fields[0] == "gpu" and fields[-1].isdigit():
                gpus += int(fields[-1])
    return Capacity(
        cpus_idle=idle,
        cpus_total=total,
        memory_free=(memory - memory_used) * 2**20,
        memory_total=memory * 2**20,
        gpus_total=gpus,
        queued=queued,
    )
