"""Slurm labs (issue 16, Performance): launch to ready on a Slurm cluster beside the same lab on this server,
where the difference goes, and what following 200 jobs costs; each beside batchspawner where it runs.

Everything runs against a private single-node Slurm cluster started for the run and torn down after it
(tests/runtimes/slurm_cluster.py: munged, slurmctld, slurmd on loopback, no accounting database) and a
real `datalabs serve` whose datalabs.toml names two clusters: "local" (this server) and "hpc" (that
cluster, its unix sockets shared with the platform as on the test cluster).

1. Launch to ready: the minimal web datalab (bench/labs/bench-minimal) on "local" and on "hpc", POST
   /api/v1/labs {"cluster": ...} → the lab's event stream says ready → first proxied 200 (as
   bench/lab_start.py measures), interleaved round by round (order alternating) after a warm-up round;
   each lab stopped and deleted before the next start; later again with the controller reconfigured
   with SchedulerParameters=batch_sched_delay=0 (a site's setting for interactive jobs).
2. Where the Slurm start's time goes, from timestamps taken honestly: slurmctld's and slurmd's own log
   lines (millisecond times: submitted, allocated, batch script launched), the lab's log and socket on the
   node (watched every 2 ms by this process: the socket appears, the job prints "datalabs: the lab is
   ready"), and the arrival times of the platform's progress events ("Running on ..." is the platform's
   squeue seeing RUNNING).
3. Polling cost: 200 held jobs (`sbatch --hold`: PENDING, they cost nothing), followed by 200 SlurmRuntime
   backends re-attached with load_state in one asyncio loop, polled as the lab manager does it (the culler:
   every lab in turn each `labs.cull_interval`; and every 0.5 s, as wait_started follows a start), CPU of
   this process and its children (squeue) from getrusage; beside batchspawner's way: one
   `squeue -h -j ID -o '%T %B'` through a shell per job per poll, every Spawner.poll_interval (30 s,
   jitter 0.1) and every startup_poll_interval (0.5 s) while starting.
4. batchspawner for real (PyPI, into bench/.cache's JupyterHub environment): JupyterLab through JupyterHub
   with SlurmSpawner on the same cluster beside JupyterHub's LocalProcessSpawner, and ours on "hpc" beside
   ours on "local", interleaved.

    .venv/bin/python -m bench.slurm [--rounds 9] [--phase-rounds 5] [--hub-rounds 5] [--poll-seconds 60]
                                    [--no-hub]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import httpx
from rich.console import Console
from tests.runtimes.slurm_cluster import SlurmCluster, slurm_cluster, unavailable_reason

from bench import jupyterhub_peer
from bench.common import ROOT, clean_env, datalabs, machine, revision, serve, write_section
from bench.lab_start import wait_for_200
from datalabs.config import LabSettings
from datalabs.runtimes.slurm import SlurmRuntime
from datalabs.runtimes.slurm_job import READY_LINE
from datalabs.runtimes.slurm_queue import JobQueue

SECTION = "slurm"
OUT = ROOT / "bench" / "out" / "slurm"
RUNTIME_ROOT = Path("/run/datalabs")  # labs' sockets when the platform runs as root (labs/api_socket.py)
JOBS = 200
# batchspawner 1.3.0 (jupyterhub/batchspawner, batchspawner.py): SlurmSpawner.batch_query_cmd, run through
# a shell (asyncio.create_subprocess_shell) behind exec_prefix; startup_poll_interval; and JupyterHub's
# Spawner.poll_interval / poll_jitter (6.1), the cadence at which the hub polls every running spawner.
BS_QUERY = "squeue -h -j {job_id} -o '%T %B'"
BS_STARTUP_POLL, HUB_POLL, HUB_JITTER = 0.5, 30.0, 0.1
console = Console()


# ---- 1 and 2: starts through the platform ---------------------------------------------------------


@dataclass
class Start:
    total: float  # POST → first proxied 200, seconds
    posted_wall: float  # wall-clock time of the POST (Slurm's logs are in wall-clock time)
    marks: dict[str, float] = field(default_factory=dict)  # milestone → seconds after the POST
    job: str = ""  # the Slurm job id, on "hpc"


class Watcher(threading.Thread):
    """Notes when a lab's socket appears and when its log says ready (polled every 2 ms)."""

    def __init__(self, log: Path, socket: Path, origin: float) -> None:
        super().__init__(daemon=True)
        self.log, self.socket, self.origin = log, socket, origin
        self.marks: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and len(self.marks) < 2:
            now = time.perf_counter() - self.origin
            if "socket" not in self.marks and self.socket.exists():
                self.marks["socket"] = now
            if "node ready" not in self.marks and self._log_says_ready():
                self.marks["node ready"] = now
            time.sleep(0.002)

    def _log_says_ready(self) -> bool:
        try:
            return READY_LINE.encode() in self.log.read_bytes()[-65536:]
        except OSError:
            return False


class Platform:
    def __init__(self, url: str, token: str, home: Path) -> None:
        self.home = home
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def start(self, datalab: str, cluster: str, ready_path: str = "", watch: bool = False) -> Start:
        started, posted_wall = time.perf_counter(), time.time()
        response = self.client.post("/api/v1/labs", json={"datalab": datalab, "cluster": cluster})
        if response.status_code != 202:
            raise RuntimeError(f"launch on {cluster} failed: {response.status_code} {response.text}")
        marks = {"POST answered": time.perf_counter() - started}
        lab = response.json()
        watcher, job = None, ""
        if watch:
            log, sock = self.home / "labs" / lab["id"] / "lab.log", RUNTIME_ROOT / lab["id"] / "lab.sock"
            watcher = Watcher(log, sock, started)
            watcher.start()
        try:
            for arrived, kind, message in self._events(lab["id"], started):
                if kind == "failed":
                    raise RuntimeError(f"lab on {cluster} failed: {message}\n{self._logs(lab['id'])}")
                if submitted := re.search(r"as Slurm job (\d+)", message):
                    job = submitted[1]
                    marks["'Submitted' event"] = arrived
                elif message.startswith("Running on "):
                    marks["'Running on' event (squeue: RUNNING)"] = arrived
                elif kind == "ready":
                    marks["ready event"] = arrived
            total = wait_for_200(lambda: self.client.get(lab["path"] + ready_path), started)
            marks["first proxied 200"] = total
        finally:
            if watcher:
                watcher.join(5)  # the job prints its ready line once its own probe passed: maybe later
                watcher.done.set()
                watcher.join()
                marks |= watcher.marks
            self.client.post(f"/api/v1/labs/{lab['id']}/stop", json={})
            self.client.delete(f"/api/v1/labs/{lab['id']}")
        return Start(total, posted_wall, marks, job)

    def _events(self, lab_id: str, started: float):
        """(seconds after `started` it arrived, event, message) of each event, until ready or failed."""
        kind = ""
        with self.client.stream("GET", f"/api/v1/labs/{lab_id}/events", timeout=180) as response:
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data = json.loads(line.removeprefix("data:"))
                    yield time.perf_counter() - started, kind, data.get("message", "")
                    if kind in ("ready", "failed"):
                        return

    def _logs(self, lab_id: str) -> str:
        return self.client.get(f"/api/v1/labs/{lab_id}/logs", params={"tail": 20}).text


def interleave(
    what: str, starts: dict[str, Callable[[], float]], rounds: int, times: dict[str, list[float]]
) -> None:
    """`rounds` rounds of every start, after one unrecorded warm-up round; the order alternates by round.
    Each start follows a random pause (0-1 s): slurmctld schedules batch jobs on a 1-second tick, which
    users' launches meet at random phases; back-to-back rounds would meet it at whatever phase the
    previous round's stop left, the same one round after round."""
    for i in range(rounds + 1):
        order = list(starts) if i % 2 == 0 else list(reversed(starts))
        measured = {}
        for key in order:
            time.sleep(random.random())
            measured[key] = starts[key]()
        console.print(
            f"{what} round {i}{' (warm-up)' if i == 0 else ''}: "
            + ", ".join(f"{key} {value * 1000:,.0f} ms" for key, value in measured.items())
        )
        if i:
            for key, value in measured.items():
                times.setdefault(key, []).append(value)


# Slurm's own lines about a job, with its millisecond timestamps (LogTimeFormat's default, iso8601_ms).
SLURM_MARKS = {
    "slurmctld: submitted": ("slurmctld.log", r"_slurm_rpc_submit_batch_job: JobId={job}\b"),
    "slurmctld: allocated": ("slurmctld.log", r"sched: Allocate JobId={job}\b"),
    "slurmd: batch job launched": ("slurmd.log", r"Launching batch job {job}\b"),
}


def slurm_marks(cluster: SlurmCluster, job: str, origin_wall: float) -> dict[str, float]:
    """Seconds after the POST (at wall-clock `origin_wall`) of Slurm's log lines about `job`."""
    marks = {}
    for name, (log, pattern) in SLURM_MARKS.items():
        text = (cluster.log_dir / log).read_text(errors="replace")
        line = re.search(r"^\[([0-9T:.-]+)\] .*" + pattern.format(job=job), text, re.M)
        if line:
            marks[name] = datetime.fromisoformat(line[1]).timestamp() - origin_wall
    return marks


def phases(platform: Platform, cluster: SlurmCluster, rounds: int) -> list[dict[str, float]]:
    """`rounds` Slurm starts of the minimal lab, each as milestones in seconds after its POST."""
    found = []
    for i in range(rounds):
        time.sleep(random.random())  # a random phase of slurmctld's scheduling tick (see interleave)
        start = platform.start("bench-minimal", "hpc", watch=True)
        found.append(start.marks | slurm_marks(cluster, start.job, start.posted_wall))
        console.print(
            f"phases round {i + 1}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in found[-1].items())
        )
    return found


# Slurm's default SchedulerParameters let the controller put off scheduling batch jobs for up to
# batch_sched_delay (3 s); a site for interactive jobs can set it to 0. Measured both ways.
TUNED = "batch_sched_delay=0"


def tune_scheduler(cluster: SlurmCluster) -> str:
    """SchedulerParameters=TUNED on the running cluster (scontrol reconfigure); slurmctld's value after."""
    with cluster.conf.open("a") as conf:
        conf.write(f"SchedulerParameters={TUNED}\n")
    cluster.run("scontrol", "reconfigure")
    shown = cluster.run("scontrol", "show", "config").stdout
    found = re.search(r"^SchedulerParameters\s*=\s*(\S+)", shown, re.M)
    return found[1] if found else "(not shown)"


def minimal_rounds(platform: Platform, rounds: int, what: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    interleave(
        what,
        {
            "local": lambda: platform.start("bench-minimal", "local").total,
            "hpc": lambda: platform.start("bench-minimal", "hpc").total,
        },
        rounds,
        times,
    )
    return times


def job_imports(runs: int = 5) -> tuple[float, float]:
    """What the job's Python spends on imports before it starts the lab: wall seconds of a Python that
    imports what slurm_job runs (median of `runs`), and how much of it is the `datalabs.proxy` package
    (python -X importtime, cumulative: runtimes/desktop.py imports proxy.rfb through it)."""
    code = ["-c", "import datalabs.runtimes.slurm_job, datalabs.runtimes.local"]
    walls, proxy = [], []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, *code], check=True)
        walls.append(time.perf_counter() - began)
        found = subprocess.run([sys.executable, "-X", "importtime", *code], capture_output=True, text=True)
        share = re.search(r"^import time:\s+\d+ \|\s+(\d+) \|\s+datalabs\.proxy$", found.stderr, re.M)
        proxy.append(int(share[1]) / 1e6 if share else 0.0)
    return p50(walls), p50(proxy)


# ---- 3: polling 200 jobs --------------------------------------------------------------------------


@dataclass
class PollCost:
    way: str
    cadence: str
    seconds: float  # wall time measured
    cycles: int  # polls of every job (ours) / hub poll rounds per job (batchspawner, mean)
    squeues: int
    cpu: float  # CPU seconds of this process and its children (squeue, sh, setpriv)
    ctld_cpu: float  # CPU seconds of slurmctld meanwhile

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu / self.seconds

    @property
    def ctld_pct(self) -> float:
        return 100 * self.ctld_cpu / self.seconds


def cpu_seconds() -> float:
    """User + system CPU of this process and of its children that ended (squeue runs as a child)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU of this process (+ children) and of slurmctld over a stretch of wall time."""

    def __init__(self, ctld_pid: int) -> None:
        self.ctld_pid = ctld_pid

    def __enter__(self) -> Meter:
        self.wall, self.cpu, self.ctld = time.perf_counter(), cpu_seconds(), process_cpu(self.ctld_pid)
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu
        self.ctld = process_cpu(self.ctld_pid) - self.ctld


def held_jobs(cluster: SlurmCluster, count: int) -> list[str]:
    """`count` jobs held in the queue (PENDING, reason JobHeldUser): they never run."""
    script = cluster.root / "held.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    argv = ["sbatch", "--parsable", "--hold", "--output=/dev/null", "--job-name=bench-held", str(script)]
    return [cluster.run(*argv).stdout.strip().split(";")[0] for _ in range(count)]


def reattached(job_ids: list[str], slurm_conf: str) -> list[SlurmRuntime]:
    """One backend per job as a restarted platform makes them (load_state), with a fresh JobQueue."""
    JobQueue._queues.clear()
    backends = []
    for job_id in job_ids:
        backend = SlurmRuntime()
        backend.load_state({"job_id": job_id, "slurm_conf": slurm_conf, "ready": True})
        backends.append(backend)
    return backends


async def poll_all(backends: list[SlurmRuntime]) -> None:
    """One culler pass: every lab's poll() in turn (LabManager.cull_once)."""
    for backend in backends:
        if await backend.poll() is not None:
            raise RuntimeError(f"held job {backend.job_id} ended")


async def ours(job_ids: list[str], slurm_conf: str, ctld_pid: int, seconds: float) -> list[PollCost]:
    cull = LabSettings().cull_interval
    backends = reattached(job_ids, slurm_conf)
    queue = JobQueue.of(slurm_conf)
    results = []
    with Meter(ctld_pid) as m:  # the first pass after load_state: every job is new to the queue
        await poll_all(backends)
        await queue.settled()
    results.append(PollCost("ours", "first pass after re-attaching", m.wall, 1, queue.queries, m.cpu, m.ctld))
    for cadence, interval in ((f"culler, every {cull} s (labs.cull_interval)", cull), ("every 0.5 s", 0.5)):
        await asyncio.sleep(queue.interval)  # what the queue knows is older than its interval
        before, cycles = queue.queries, 0
        with Meter(ctld_pid) as m:
            began = time.perf_counter()
            while time.perf_counter() - began < seconds:
                await poll_all(backends)
                cycles += 1
                await asyncio.sleep(max(0.0, began + cycles * interval - time.perf_counter()))
            await queue.settled()
        results.append(PollCost("ours", cadence, m.wall, cycles, queue.queries - before, m.cpu, m.ctld))
    return results


async def batchspawner_way(
    job_ids: list[str], env: dict[str, str], prefix: str, ctld_pid: int, seconds: float
) -> list[PollCost]:
    """batchspawner's query_job_status for each job on its own schedule: the hub's periodic poll of each
    running spawner (every 30 s ± 5% jitter, phases spread as spawners start at different times) and the
    startup loop (query, sleep 0.5 s) of spawners that are starting."""
    counts = {"squeue": 0}

    async def query(job_id: str) -> None:
        counts["squeue"] += 1
        proc = await asyncio.create_subprocess_shell(
            f"{prefix}{BS_QUERY.format(job_id=job_id)}",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        if not out.startswith(b"PENDING"):
            raise RuntimeError(f"held job {job_id}: squeue said {out!r}")

    async def hub_polls(job_id: str, deadline: float) -> None:
        delay = random.uniform(0, HUB_POLL)
        while time.perf_counter() + delay < deadline:
            await asyncio.sleep(delay)
            await query(job_id)
            delay = HUB_POLL * (1 + HUB_JITTER * (random.random() - 0.5))
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))

    async def startup_polls(job_id: str, deadline: float) -> None:
        while time.perf_counter() < deadline:
            await query(job_id)
            await asyncio.sleep(BS_STARTUP_POLL)

    results = []
    for cadence, loop, window in (
        (f"hub poll, every {HUB_POLL:.0f} s per job", hub_polls, seconds),
        # 200 spawners starting at once saturate this machine's cores: a shorter window spares them.
        (f"startup, every {BS_STARTUP_POLL} s per job", startup_polls, min(seconds, 20.0)),
    ):
        counts["squeue"] = 0
        with Meter(ctld_pid) as m:
            deadline = time.perf_counter() + window
            await asyncio.gather(*(loop(job_id, deadline) for job_id in job_ids))
        cycles = round(counts["squeue"] / len(job_ids))
        results.append(PollCost("batchspawner", cadence, m.wall, cycles, counts["squeue"], m.cpu, m.ctld))
    return results


def polling(cluster: SlurmCluster, seconds: float, prefix: str) -> list[PollCost]:
    ctld_pid = cluster._procs["slurmctld"].pid  # the cluster's own daemon (tests/runtimes/slurm_cluster.py)
    console.print(f"Submitting {JOBS} held jobs")
    job_ids = held_jobs(cluster, JOBS)
    try:
        results = asyncio.run(ours(job_ids, str(cluster.conf), ctld_pid, seconds))
        env = {**os.environ, **cluster.env}
        results += asyncio.run(batchspawner_way(job_ids, env, prefix, ctld_pid, seconds))
    finally:
        cluster.run("scancel", *job_ids)
    for r in results:
        console.print(
            f"{r.way}, {r.cadence}: {r.squeues} squeue in {r.seconds:.1f} s ({r.cycles} cycles), "
            f"CPU {r.cpu_pct:.2f}% of a core, slurmctld {r.ctld_pct:.2f}%"
        )
    return results


# ---- 4: batchspawner ------------------------------------------------------------------------------

# Appended to bench/jupyterhub_peer.py's hub config. batchspawner's default exec_prefix is
# `sudo -E -u {username}`; sudo is not installed here, setpriv does the same (the user's uid, env kept).
BATCHSPAWNER = """
import os

import batchspawner
from traitlets import default

# The hub's own squeue/scancel (run without the user's env) find the cluster here, as they would find
# /etc/slurm/slurm.conf; sbatch gets it through the user's env (Spawner.environment).
os.environ["SLURM_CONF"] = {conf!r}

class BenchSlurmSpawner(batchspawner.SlurmSpawner):
    def user_env(self, env):
        env = super().user_env(env)
        env["HOME"] = {home!r}  # the lab user's passwd home may not exist
        return env

    @default("req_homedir")  # batch script's --chdir and --output; not a config option
    def _bench_homedir(self):
        return {home!r}

c.JupyterHub.spawner_class = BenchSlurmSpawner
c.SlurmSpawner.exec_prefix = {prefix!r}
c.SlurmSpawner.req_partition = "debug"
# JupyterHub 6 keeps no PATH in the job's environment: the wrapper by its path, as Spawner.cmd is.
c.SlurmSpawner.batchspawner_singleuser_cmd = {wrapper!r}
c.SlurmSpawner.environment = {{"SLURM_CONF": {conf!r}}}
"""


def batchspawner_config(home: Path, cluster: SlurmCluster) -> str:
    wrapper = jupyterhub_peer.VENV / "bin" / "batchspawner-singleuser"
    conf = str(cluster.conf)
    return BATCHSPAWNER.format(home=str(home), prefix=exec_prefix(), conf=conf, wrapper=str(wrapper))


def exec_prefix() -> str:
    """What batchspawner's `sudo -E -u {username}` does, for the unprivileged lab user (root only)."""
    return "setpriv --reuid=65534 --regid=65534 --clear-groups " if os.geteuid() == 0 else ""


def hubs(platform: Platform, cluster: SlurmCluster, rounds: int, times: dict[str, list[float]]) -> str:
    """JupyterLab four ways, interleaved; returns a note on what could not be measured ("" if none)."""
    starts: dict[str, Callable[[], float]] = {
        "ours, local": lambda: platform.start("jupyterlab", "local", "api/status").total,
        "ours, hpc (Slurm)": lambda: platform.start("jupyterlab", "hpc", "api/status").total,
    }
    try:
        jupyterhub_peer.install_batchspawner(console)
        local_hub = jupyterhub_peer.JupyterHub(OUT / "hub-local", console)
        work = OUT / "hub-slurm"
        config = batchspawner_config(work / "home", cluster)
        slurm_hub = jupyterhub_peer.JupyterHub(work, console, extra_config=config)
    except jupyterhub_peer.Unavailable as exc:
        note = f"JupyterHub/batchspawner not measured: {exc}"
        console.print(f"[yellow]{note}")
        interleave("JupyterLab", starts, rounds, times)
        return note
    note = ""
    with local_hub.running(), slurm_hub.running():
        starts["JupyterHub, LocalProcessSpawner"] = local_hub.launch_to_ready
        try:
            slurm_hub.launch_to_ready()  # a first start, to learn whether it works here at all
            starts["JupyterHub, batchspawner SlurmSpawner"] = slurm_hub.launch_to_ready
        except RuntimeError as exc:
            log = (work / "hub.log").read_text(errors="replace").splitlines()[-15:]
            note = f"batchspawner's SlurmSpawner failed to start a server: {exc}; hub log: " + " / ".join(log)
            console.print(f"[yellow]{note}")
        interleave("JupyterLab", starts, rounds, times)
    return note


# ---- the run --------------------------------------------------------------------------------------


def run(
    rounds: int = 9, phase_rounds: int = 5, hub_rounds: int = 5, poll_seconds: float = 60, hub: bool = True
) -> bool:
    if reason := unavailable_reason():
        console.print(f"[red]Slurm benchmark not run: {reason}")
        return False
    load = machine()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)  # kept after the run (gitignored): the servers' and Slurm's logs
    jupyter: dict[str, list[float]] = {}
    hub_note = "not run (--no-hub)"
    with slurm_cluster(accounting=False, scheduler="") as cluster:  # Slurm's defaults first, then TUNED
        home = OUT / "home"
        home.mkdir()
        (home / "datalabs.toml").write_text(
            '[[clusters]]\nname = "local"\n\n[[clusters]]\nname = "hpc"\nbackend = "slurm"\n'
            f'[clusters.options]\nslurm_conf = "{cluster.conf}"\npartition = "debug"\n'
        )
        env = clean_env(
            DATALABS_HOME=str(home),
            DATALABS_CATALOGUE__DIRS=json.dumps([str(ROOT / "bench" / "labs")]),
            DATALABS_LABS__MAX_RUNNING_PER_USER="10",
        )
        datalabs("admin", "create-user", "bench", "--password", secrets.token_hex(12), env=env)
        token = datalabs("admin", "create-token", "bench", env=env)
        with serve(env, OUT / "serve.log") as server:
            platform = Platform(server.url, token, home)
            minimal = minimal_rounds(platform, rounds, "minimal")
            marks = phases(platform, cluster, phase_rounds)
            imports = job_imports()
            if hub:
                hub_note = hubs(platform, cluster, hub_rounds, jupyter)
            tuned_params = tune_scheduler(cluster)
            console.print(f"slurmctld now has SchedulerParameters={tuned_params}")
            tuned = minimal_rounds(platform, rounds, f"minimal, {TUNED}")
            tuned_marks = phases(platform, cluster, phase_rounds)
        polls = polling(cluster, poll_seconds, exec_prefix()) if poll_seconds > 0 else []
        version = slurm_version(cluster)
        shutil.copytree(cluster.log_dir, OUT / "slurm-log")  # the cluster's own folder goes with it
    starts, phase_marks = (minimal, tuned, tuned_params), (marks, tuned_marks)
    report(load, version, rounds, starts, phase_marks, imports, jupyter, hub_note, polls)
    return True


# ---- RESULTS.md -----------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else p50(values)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _row(name: str, values: list[float], extra: str = "") -> str:
    if not values:
        return f"| {name} | – | – | – | not measured |"
    spread = f"{_ms(min(values))}–{_ms(max(values))}"
    return f"| {name} | {_ms(p50(values))} | {_ms(p90(values))} | {spread} | {extra} |"


def paired(slow: list[float], fast: list[float]) -> list[float]:
    """Each round's difference: a burst of load that slows one round slows both of its starts."""
    return [s - f for s, f in zip(slow, fast, strict=True)]


# Where each milestone comes from, in the order a start passes them.
SOURCES = {
    "POST answered": "client: 202 of POST /api/v1/labs",
    "slurmctld: submitted": "slurmctld.log `_slurm_rpc_submit_batch_job`",
    "'Submitted' event": "client: arrival of the platform's 'Submitted ... as Slurm job N' event",
    "slurmctld: allocated": "slurmctld.log `sched: Allocate`",
    "slurmd: batch job launched": "slurmd.log `Launching batch job`",
    "'Running on' event (squeue: RUNNING)": (
        "client: arrival of 'Running on <node>' (the platform's squeue saw RUNNING)"
    ),
    "socket": "watcher: the lab's unix socket exists (/run/datalabs/<id>/lab.sock)",
    "node ready": f"watcher: the job printed `{READY_LINE}` to the lab's log",
    "ready event": "client: arrival of the platform's ready event",
    "first proxied 200": "client: first 200 through the platform's proxy",
}
PHASES = (
    ("POST → slurmctld has the job (sbatch)", "slurmctld: submitted", None),
    ("slurmctld: submitted → allocated (scheduling)", "slurmctld: allocated", "slurmctld: submitted"),
    ("allocated → slurmd launches the batch script", "slurmd: batch job launched", "slurmctld: allocated"),
    (
        "batch launched → the lab's socket exists (job's Python, sandbox, app)",
        "socket",
        "slurmd: batch job launched",
    ),
    ("socket → the job prints ready", "node ready", "socket"),
    (
        "socket exists → the platform saw RUNNING (negative: before it)",
        "'Running on' event (squeue: RUNNING)",
        "socket",
    ),
    ("socket exists → the platform's ready event (it probes the socket)", "ready event", "socket"),
    ("node ready → the platform's ready event (negative: before it)", "ready event", "node ready"),
    ("ready event → first proxied 200", "first proxied 200", "ready event"),
)


def phase_lines(marks: list[dict[str, float]]) -> tuple[str, str]:
    order = sorted(SOURCES, key=lambda k: p50([m[k] for m in marks if k in m]) if marks else 0)
    milestones = "\n".join(
        f"| {name} | {SOURCES[name]} | {_ms(p50(v))} | {_ms(min(v))}–{_ms(max(v))} |"
        for name in order
        if (v := [m[name] for m in marks if name in m])
    )
    steps = []
    for label, end, begin in PHASES:
        v = [
            m[end] - (m[begin] if begin else 0.0) for m in marks if end in m and (begin is None or begin in m)
        ]
        if v:
            steps.append(f"| {label} | {_ms(p50(v))} | {_ms(min(v))}–{_ms(max(v))} |")
    return milestones, "\n".join(steps)


def shares(marks: list[dict[str, float]]) -> str:
    """One sentence: the medians of the platform's own steps, Slurm's, and the job's on the node."""

    def median(end: str, begin: str | None = None) -> float:
        return p50([m[end] - m.get(begin, 0.0) for m in marks if end in m and (begin is None or begin in m)])

    platform = median("slurmctld: submitted") + median("ready event", "socket")
    platform += median("first proxied 200", "ready event")
    slurm = median("slurmd: batch job launched", "slurmctld: submitted")
    node = median("socket", "slurmd: batch job launched")
    return (
        f"Of a median {_ms(median('first proxied 200'))}: the platform's own steps (POST → sbatch accepted, "
        f"the lab's socket → ready event → first 200) {_ms(platform)}; Slurm's (submitted → batch script "
        f"launched) {_ms(slurm)}; the job on the node (launched → the lab's socket) {_ms(node)}."
    )


def proxy_share(seconds: float) -> str:
    if seconds < 0.01:
        return "the `datalabs.proxy` package's app is not among its imports (`-X importtime`)."
    return (
        f"{_ms(seconds)} of it (`-X importtime`, cumulative) is the `datalabs.proxy` package (its app, auth "
        "and SQLAlchemy's ORM), which `runtimes/desktop.py` pulls in for `proxy.rfb` alone."
    )


def slurm_version(cluster: SlurmCluster) -> str:
    return cluster.run("sinfo", "--version", check=False).stdout.strip() or "Slurm (version unknown)"


def report(
    load: str,
    version: str,
    rounds: int,
    starts: tuple[dict[str, list[float]], dict[str, list[float]], str],
    marks: tuple[list[dict[str, float]], list[dict[str, float]]],
    imports: tuple[float, float],
    jupyter: dict[str, list[float]],
    hub_note: str,
    polls: list[PollCost],
) -> None:
    minimal, tuned, tuned_params = starts
    overhead, tuned_overhead = (paired(t["hpc"], t["local"]) for t in (minimal, tuned))
    goal, tuned_goal = ("met" if p50(o) <= 1.0 else "NOT met" for o in (overhead, tuned_overhead))
    milestones, steps = phase_lines(marks[0])
    tuned_milestones, tuned_steps = phase_lines(marks[1])
    ours_slurm = paired(jupyter.get("ours, hpc (Slurm)", []), jupyter.get("ours, local", []))
    hub_local = jupyter.get("JupyterHub, LocalProcessSpawner", [])
    hub_slurm = jupyter.get("JupyterHub, batchspawner SlurmSpawner", [])
    hub_rows = "\n".join(
        _row(name, jupyter.get(name, []))
        for name in ("ours, local", "ours, hpc (Slurm)", "JupyterHub, LocalProcessSpawner",
                     "JupyterHub, batchspawner SlurmSpawner")
    )  # fmt: skip
    hub_overheads = f"Slurm over local, p50 of paired rounds: ours {_ms(p50(ours_slurm))}" + (
        f", batchspawner {_ms(p50(paired(hub_slurm, hub_local)))}" if hub_slurm and hub_local else ""
    )
    steady = [p for p in polls if p.way == "ours" and "first" not in p.cadence]
    poll_goal = (
        "not measured"
        if not steady
        else "met"
        if all(p.squeues <= p.cycles + 1 for p in steady) and all(p.cpu_pct <= 2.0 for p in steady)
        else "NOT met"
    )
    poll_rows = "\n".join(
        f"| {p.way} | {p.cadence} | {p.seconds:.1f} s | {p.cycles} | {p.squeues} | "
        f"{p.squeues / max(p.cycles, 1):.1f} | {p.cpu_pct:.2f}% | {p.ctld_pct:.2f}% |"
        for p in polls
    )
    write_section(
        SECTION,
        f"""## Slurm labs: launch to ready beside the same lab on this server; polling 200 jobs

Command: `.venv/bin/python -m bench.slurm` (part of `make bench`). Machine: {load}.
Date: {date.today().isoformat()}. Revision: {revision()}.

The cluster: {version}, private and single-node (tests/runtimes/slurm_cluster.py: munged,
slurmctld, slurmd on loopback; no accounting database), idle; the node is this machine, so Slurm's jobs
and the platform share its cores. The platform: `datalabs serve` (SQLite) with clusters "local" (this
server) and "hpc" (that cluster, endpoint "socket": the platform reaches the lab's unix socket directly).
The machine is shared with other work (see the load average above): compare figures within a table.

### Launch to the first proxied 200: the minimal web datalab

POST /api/v1/labs {{"datalab": "bench-minimal", "cluster": ...}} → the lab's event stream says ready →
first 200 through the platform's proxy; {rounds} interleaved rounds after a warm-up, order alternating,
each lab stopped and deleted before the next start.

| cluster | p50 | p90 | min–max | |
| --- | --- | --- | --- | --- |
{_row("local (this server)", minimal["local"])}
{_row("hpc (Slurm, its default scheduler parameters)", minimal["hpc"])}
{_row("overhead hpc − local, per round", overhead, f"goal p50 ≤ 1 s: **{goal}**")}

The same, later in the run, with the controller reconfigured for interactive jobs
(`SchedulerParameters={TUNED}`, `scontrol reconfigure`; slurmctld then reported `{tuned_params}`):

| cluster | p50 | p90 | min–max | |
| --- | --- | --- | --- | --- |
{_row("local (this server)", tuned["local"])}
{_row(f"hpc (Slurm, {TUNED})", tuned["hpc"])}
{_row("overhead hpc − local, per round", tuned_overhead, f"goal p50 ≤ 1 s: **{tuned_goal}**")}

### Where a Slurm start's time goes

{len(marks[0])} more starts of the same lab on "hpc" with each scheduler configuration; each milestone
in ms after the POST. Slurm's own log
lines carry millisecond wall-clock times; this process watched the lab's socket and log every 2 ms; event
times are when the client received them (the stream is opened after the POST's answer, so earlier events
arrive then).

Slurm's default scheduler parameters:

| milestone | source | p50 after POST | min–max |
| --- | --- | --- | --- |
{milestones}

| step (median of each start's difference) | p50 | min–max |
| --- | --- | --- |
{steps}

{shares(marks[0])}

`SchedulerParameters={TUNED}`:

| milestone | source | p50 after POST | min–max |
| --- | --- | --- | --- |
{tuned_milestones}

| step (median of each start's difference) | p50 | min–max |
| --- | --- | --- |
{tuned_steps}

{shares(marks[1])} (The two configurations ran one after the other, not interleaved: the machine's
load differs between them.)

The job's Python on the node first imports what `python -m datalabs.runtimes.slurm_job` runs: a Python
that imports `datalabs.runtimes.slurm_job` and `datalabs.runtimes.local` and exits takes
{_ms(imports[0])} (p50 of 5, this machine, the same venv); {proxy_share(imports[1])}

Why Slurm's part is at least the scheduler's tick, from Slurm's source (22.05, unchanged in its newest
release): a batch job is never given nodes when it is submitted (`job_allocate` is called with
`allocate=0` by `_slurm_rpc_submit_batch_job`, so it only tests the job); the submission asks for a
scheduling pass (`queue_job_scheduler`), and slurmctld's background thread runs one once a second
(ten 100 ms sleeps), and not until `batch_sched_delay` seconds after the last (3 s by default). So
with any settings a batch job waits 0-1 s, 0.5 s on average, for its nodes; only an interactive
allocation (`salloc`/`srun`, `allocate=1`) is placed in the RPC itself. On this test cluster
`salloc --no-shell --immediate` answered in 13 ms and an `srun --jobid` step was running 62 ms after
it began (/tmp/exp/salloc.py of the 2026-12-03 session, in its closing note on issue 16).

### JupyterLab: ours and JupyterHub, each on this server and on the Slurm cluster

JupyterHub 6 with LocalProcessSpawner, and with batchspawner's SlurmSpawner (PyPI; default batch script:
`srun batchspawner-singleuser jupyterhub-singleuser` in a job of the `debug` partition, its port
reported to the hub's API), both behind configurable-http-proxy, followed through the hub's progress
stream until ready, then GET `/user/<u>/api/status` until 200 (bench/jupyterhub_peer.py); ours is the
platform's `jupyterlab` datalab, GET `api/status` through the proxy. Interleaved rounds after a warm-up.
{hub_note}

| path | p50 | p90 | min–max | |
| --- | --- | --- | --- | --- |
{hub_rows}

{hub_overheads}.

### Polling 200 tracked jobs

{JOBS} held jobs (`sbatch --hold`: PENDING, never run). Ours: {JOBS} `SlurmRuntime` backends re-attached
with `load_state` in one asyncio loop, `poll()`ed each in turn as the lab manager's culler does
(`cull_once`), every `labs.cull_interval` (default) and every 0.5 s (as `wait_started` follows starting
labs); all share the cluster's `JobQueue` (at most one `squeue -j <all ids>` per 0.5 s). batchspawner's
way: one `{BS_QUERY}` per job per poll through a shell behind exec_prefix
(`{exec_prefix().strip() or "none"}`, standing in for its default `sudo -E -u {{username}}`), on
JupyterHub's schedule for running servers (Spawner.poll_interval 30 s, jitter 0.1, phases spread) and
batchspawner's startup loop (startup_poll_interval 0.5 s, all {JOBS} starting at once; a 20 s window, as
it saturates the machine). CPU: getrusage of this process plus its ended children (squeue, sh,
setpriv), per wall second; slurmctld's from /proc. Goal: one batched squeue per cycle whatever the
number of labs, ≤ 2% of a core at {JOBS} jobs: **{poll_goal}** (steady state, ours).

| way | cadence | window | cycles | squeue runs | squeue per cycle | CPU, % of one core | slurmctld CPU |
| --- | --- | --- | --- | --- | --- | --- | --- |
{poll_rows}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--phase-rounds", type=int, default=5)
    parser.add_argument("--hub-rounds", type=int, default=5)
    parser.add_argument("--poll-seconds", type=float, default=60)
    parser.add_argument("--no-hub", action="store_true")
    args = parser.parse_args()
    ok = run(args.rounds, args.phase_rounds, args.hub_rounds, args.poll_seconds, hub=not args.no_hub)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
