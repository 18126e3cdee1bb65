"""Replicas (issue 17): 1,000 concurrent API clients through nginx, throughput with 1, 2 and 4
`datalabs serve` processes, and the manager's failover under lab traffic.

One PostgreSQL (tests/pg.py), one shared DATALABS_HOME (1,000 generated definitions from
bench/catalogue_search.py, 3,000 synthetic assets, 20 workspace files, the mini web lab of
tests/labs/test_restart.py), N replicas on loopback behind a real nginx with the site deploy/render.py
writes (its main configuration as tests/deploy/nginx_support.py's, with room for 1,000 clients).

1. wrk (one Lua script cycling through catalogue search, labs list, workspace listing and asset search),
   1,000 connections, beside /healthz on the same stack; repeated with 1, 2 and 4 replicas.
2. Failover, 3 replicas: four clients loop over a running lab's URL through nginx while the replica
   holding the manager lease is killed (SIGKILL), then, on the next holder, frozen (SIGSTOP: its pid stays
   alive, so the others wait for the lease to run out, as for a lost host). A lab launched right after
   the kill or freeze shows when manager duties resume.

    .venv/bin/python -m bench.replicas [--seconds 10] [--connections 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import psycopg
from rich.console import Console

from bench.catalogue_search import generate
from bench.common import (
    BIN,
    RESULTS,
    ROOT,
    WrkResult,
    clean_env,
    datalabs,
    free_port,
    machine,
    parse_wrk,
    revision,
    write_section,
)

SECTION = "replicas"
MIX = [
    "/api/v1/datalabs?q=gaia&limit=20",
    "/api/v1/labs",
    "/api/v1/workspaces/me/files/notes",
    "/api/v1/assets/search?q=abmf&limit=20",
]
FLOOR = "/healthz"
SCALES = (1, 2, 4)
LAB_READ_TIMEOUT = "10s"  # deploy/render.py --lab-read-timeout: a frozen replica holds a lab GET that long
PACED = (100, 200, 300)  # req/s that 1,000 pausing clients offer together (2 replicas)
LAB_CLIENTS = 4


# ---- the platform ---------------------------------------------------------------------------------


class Platform:
    """PostgreSQL, a shared home and any number of replicas, with nginx in front of the live ones."""

    def __init__(self, root: Path) -> None:
        from tests.deploy.nginx_support import NGINX
        from tests.labs.test_restart import DEFINITION, LABAPP
        from tests.pg import PostgresServer, find_bin

        from datalabs.db.engine import make_engine, migrate

        bindir = find_bin()
        if bindir is None or not Path(NGINX).is_file():
            raise RuntimeError("PostgreSQL and nginx are needed: scripts/install-system-packages.sh test")
        self.root, self.home, defs = root, root / "home", root / "catalogue"
        self.home.mkdir()
        generate(defs)
        (defs / "mini").mkdir()
        (defs / "mini" / "datalab-meta.yml").write_text(DEFINITION)
        (defs / "mini" / "labapp.py").write_bytes(LABAPP.read_bytes())
        self.pg = PostgresServer(bindir).start()
        self.pg.execute("CREATE DATABASE bench")
        engine = make_engine(self.pg.url("bench"))
        migrate(engine)
        engine.dispose()
        self.env = clean_env(
            DATALABS_HOME=str(self.home),
            DATALABS_DB__URL=self.pg.url("bench"),
            DATALABS_CATALOGUE__DIRS=json.dumps([str(defs)]),
            DATALABS_CATALOGUE__BUILTIN="false",
            DATALABS_PIPELINES__SYSTEM="false",
            DATALABS_LABS__MAX_RUNNING_PER_USER="10",
        )
        datalabs("admin", "create-user", "bench", "--password", "bench-password-1", env=self.env)
        self.token = datalabs("admin", "create-token", "bench", env=self.env)
        datalabs(
            "assets", "synth", "--n", "3000", "--out", str(root / "assets.txt"), "--ingest", env=self.env
        )
        self.replicas: dict[str, tuple[int, subprocess.Popen]] = {}
        self.nginx: subprocess.Popen | None = None
        self.front = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, name: str) -> None:
        port = free_port()
        log = (self.home / f"server-{name}.log").open("w")
        proc = subprocess.Popen(
            [str(BIN / "datalabs"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=self.env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.replicas[name] = (port, proc)

    def last_errors(self) -> str:
        """The last traceback in each replica's log, for a failed check (the home is removed after)."""
        found = []
        for log in sorted(self.home.glob("server-*.log")):
            text = log.read_text(errors="replace")
            at = text.rfind("Traceback (most recent call last)")
            if at >= 0:
                found.append(f"--- {log.name}:\n{text[at : at + 6000]}")
        return "\n".join(found) or "(no traceback in the replicas' logs)"

    def wait(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for name, (port, proc) in self.replicas.items():
            while True:
                if proc.poll() is not None:
                    log = (self.home / f"server-{name}.log").read_text()[-3000:]
                    raise RuntimeError(f"replica {name} exited with {proc.returncode}:\n{log}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {name} not healthy in {timeout:.0f} s")
                time.sleep(0.1)

    def stop_replicas(self) -> None:
        for _, proc in self.replicas.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for _, proc in self.replicas.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.replicas = {}

    def start_nginx(self) -> None:
        """nginx in front of every replica started so far (worker_connections raised for 1,000 clients,
        each of which also holds a connection to a replica)."""
        from tests.deploy import nginx_support

        self.stop_nginx()
        prefix = self.root / f"nginx-{time.monotonic_ns()}"
        port = free_port()
        upstreams = [f"127.0.0.1:{p}" for p, _ in self.replicas.values()]
        site = nginx_support.write_site(prefix, upstreams, port, lab_read_timeout=LAB_READ_TIMEOUT)
        conf = nginx_support.main_config(prefix, site)
        conf.write_text(
            "worker_rlimit_nofile 16384;\n"
            + conf.read_text().replace("worker_connections 512;", "worker_connections 8192;")
        )
        checked = nginx_support.check(conf)
        if checked.returncode:
            raise RuntimeError(checked.stderr)
        self.nginx = subprocess.Popen([nginx_support.NGINX, "-p", str(prefix), "-c", str(conf)])
        self.front = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.front + FLOOR, timeout=2).status_code == 200:
                    return
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nginx did not start")
            time.sleep(0.05)

    def stop_nginx(self) -> None:
        if self.nginx and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(15)
        self.nginx = None

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the replicas, nginx and PostgreSQL (each process tree's own time plus
        that of its children already reaped, e.g. closed PostgreSQL backends)."""
        roots = {
            "replicas": [p.pid for _, p in self.replicas.values()],
            "nginx": [self.nginx.pid] if self.nginx else [],
            "postgres": [self.pg.proc.pid] if self.pg.proc else [],
        }
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if entry.name.isdigit():
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        used = {}
        for name, pids in roots.items():
            tree, total = set(pids), 0.0
            while grown := {p for p, pp in parents.items() if pp in tree and p not in tree}:
                tree |= grown
            for pid in tree:
                total += cpu_seconds(pid, children=pid in pids)
            used[name] = total
        return used

    def query(self, sql: str, *args) -> list[tuple]:
        with psycopg.connect(self.pg.dsn("bench"), autocommit=True) as db:
            return db.execute(sql, args).fetchall()

    def holder_pid(self) -> int | None:
        rows = self.query("SELECT holder FROM leases WHERE name = 'manager' AND expires_at > now()")
        return int(rows[0][0].split(":")[1]) if rows else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_labs()
        self.stop_nginx()
        self.stop_replicas()
        self.pg.stop()

    def stop_labs(self) -> None:
        if not self.replicas:
            return
        port = next(p for p, proc in self.replicas.values() if proc.poll() is None)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=self.headers, timeout=60) as c:
            for lab in c.get("/api/v1/labs", params={"active": True}).json():
                c.post(f"/api/v1/labs/{lab['id']}/stop", json={})


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of `pid`; with `children`, plus that of its children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(f) for f in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


# ---- 1. 1,000 clients -----------------------------------------------------------------------------


@dataclass
class LoadRow:
    label: str
    replicas: int
    result: WrkResult
    cpu: dict[str, float]  # seconds of CPU during the run: replicas, nginx, wrk
    problems: list[str] = field(default_factory=list)


def lua(paths: list[str], where: Path, think_ms: float = 0) -> Path:
    """A wrk script cycling through `paths` (each thread on its own); with `think_ms`, each client pauses
    between its requests for a random time (exponential, that mean), as people and scripts do."""
    script = where / f"mix-{len(paths)}-{think_ms:.0f}.lua"
    listed = ", ".join(json.dumps(p) for p in paths)
    pause = (
        f"delay = function()\n  return math.floor(-math.log(1 - math.random()) * {think_ms:.0f})\nend\n"
        if think_ms
        else ""
    )
    script.write_text(
        f"local paths = {{{listed}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        '  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n' + pause
    )
    return script


def load(
    platform: Platform, label: str, paths: list[str], seconds: int, connections: int, think_ms: float = 0
) -> LoadRow:
    for path in paths:  # every URL answers before it is loaded
        r = httpx.get(platform.front + path, headers=platform.headers, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}\n{platform.last_errors()}")
    script = lua(paths, platform.root, think_ms)
    base = [
        "wrk", "--latency", "--timeout=30s", "-H", f"Authorization: Bearer {platform.token}",
        "-s", str(script),
    ]  # fmt: skip
    subprocess.run([*base, "-t1", "-c10", "-d2s", platform.front], capture_output=True, check=True)  # warm-up
    time.sleep(1)
    before = platform.cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [*base, "-t2", f"-c{connections}", f"-d{seconds}s", platform.front], capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"wrk failed: {proc.stderr}")
    result = parse_wrk(proc.stdout)
    cpu = {k: v - before[k] for k, v in platform.cpu().items()}
    cpu["wrk"] = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    found = [f"{result.non_2xx} non-2xx"] if result.non_2xx else []
    found += [f"{n} socket {kind} errors" for kind, n in result.socket_errors.items() if n]
    return LoadRow(label, len(platform.replicas), result, cpu, found)


def scaling(platform: Platform, seconds: int, connections: int, console: Console) -> list[LoadRow]:
    rows = []
    for n in SCALES:
        platform.stop_nginx()
        platform.stop_replicas()
        for i in range(n):
            platform.start(f"r{n}-{i}")
        platform.wait()
        platform.start_nginx()
        if n == 2:
            rows.append(load(platform, "/healthz (floor)", [FLOOR], seconds, connections))
            console.print(f"floor, 2 replicas: {rows[-1].result.rps:,.0f} req/s")
        rows.append(load(platform, "API mix", MIX, seconds, connections))
        console.print(
            f"mix, {n} replica(s): {rows[-1].result.rps:,.0f} req/s, p99 {rows[-1].result.p99_ms} ms"
        )
        if n == 2:
            for rate in PACED:
                think = connections / rate * 1000  # ms: `connections` clients together send `rate` req/s
                label = f"API mix, each client pausing {think / 1000:g} s on average"
                length = max(seconds, 3 * int(think / 1000))  # each client sends a few requests at least
                rows.append(load(platform, label, MIX, length, connections, think))
                console.print(f"{label}: {rows[-1].result.rps:,.0f} req/s, p99 {rows[-1].result.p99_ms} ms")
    return rows


# ---- 2. failover ----------------------------------------------------------------------------------


@dataclass
class Failover:
    how: str
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    in_flight: int = 0  # lab requests started before the signal and not finished by then
    lease_after: float | None = None  # seconds from the signal to a new holder in the leases table
    lab_after: float | None = None  # seconds from the signal to the lab launched then running
    launch_status: int = 0


def launch(client: httpx.Client) -> tuple[int, str]:
    r = client.post("/api/v1/labs", json={"datalab": "mini"})
    return r.status_code, r.json().get("id", "") if r.status_code == 202 else r.text[:200]


def running(client: httpx.Client, lab_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            lab = client.get(f"/api/v1/labs/{lab_id}").json()
            if lab["state"] in ("running", "failed", "stopped"):
                return lab
        time.sleep(0.05)
    raise RuntimeError(f"lab {lab_id} not running in {timeout:.0f} s")


def failover(platform: Platform, sig: signal.Signals, lab_path: str) -> Failover:
    """Lab traffic through nginx while the manager's holder gets `sig`; SIGCONT afterwards for SIGSTOP."""
    out = Failover(sig.name)
    spans: list[tuple[float, float]] = []
    done = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=platform.front, headers=platform.headers, timeout=30) as c:
            while not done.is_set():
                start = time.monotonic()
                try:
                    r = c.get(lab_path)
                    problem = (
                        ""
                        if r.status_code == 200
                        else f"{r.status_code} after {time.monotonic() - start:.1f} s"
                    )
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__} after {time.monotonic() - start:.1f} s"
                with lock:
                    spans.append((start, time.monotonic()))
                    if problem:
                        out.failed.append(problem)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(LAB_CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(3)
    pid = platform.holder_pid()
    victim = next(proc for _, proc in platform.replicas.values() if proc.pid == pid)
    at = time.monotonic()
    victim.send_signal(sig)
    if sig == signal.SIGKILL:
        victim.wait()  # reaped at once, as systemd does: no zombie keeps the pid alive
    api = next(p for p, proc in platform.replicas.values() if proc is not victim and proc.poll() is None)
    with httpx.Client(base_url=f"http://127.0.0.1:{api}", headers=platform.headers, timeout=60) as c:
        out.launch_status, lab_id = launch(c)
        while out.lease_after is None and time.monotonic() - at < 120:
            holder = platform.holder_pid()
            if holder and holder != pid:
                out.lease_after = time.monotonic() - at
            time.sleep(0.02)
        if out.launch_status == 202:
            lab = running(c, lab_id)
            if lab["state"] == "running":
                out.lab_after = time.monotonic() - at
    time.sleep(3)
    done.set()
    for t in threads:
        t.join()
    if sig == signal.SIGSTOP:
        victim.send_signal(signal.SIGCONT)
    out.requests = len(spans)
    out.in_flight = sum(1 for s, e in spans if s <= at < e)
    return out


def failovers(platform: Platform, console: Console) -> list[Failover]:
    platform.stop_nginx()
    platform.stop_replicas()
    for name in "ABC":
        platform.start(name)
    platform.wait()
    platform.start_nginx()
    with httpx.Client(base_url=platform.front, headers=platform.headers, timeout=60) as c:
        status, lab_id = launch(c)
        if status != 202:
            raise RuntimeError(f"launch: {status} {lab_id}")
        lab = running(c, lab_id)
        if lab["state"] != "running":
            raise RuntimeError(f"the mini lab did not start: {lab}")
    results = []
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        results.append(failover(platform, sig, lab["path"]))
        console.print(results[-1])
    return results


# ---- the report -----------------------------------------------------------------------------------


def markdown(
    rows: list[LoadRow], fails: list[Failover], seconds: int, connections: int, setting: dict
) -> str:
    floor = next(r for r in rows if r.label.startswith("/healthz"))
    one = next(r for r in rows if r.label == "API mix" and r.replicas == 1)
    lines = [
        "## Replicas: 1,000 API clients, 1 → 2 → 4 processes, manager failover",
        "",
        "Real `datalabs serve` replicas on one PostgreSQL 15 (tests/pg.py: unix socket, fsync off) and one "
        "DATALABS_HOME, behind a real nginx (the site `deploy/render.py` writes; 1 worker process, "
        "worker_connections raised to 8192). The home holds the 1,000 generated definitions of the catalogue "
        "search benchmark, 3,000 synthetic GNSS assets and a 20-file workspace folder; one user with a "
        f"token. wrk, {connections} connections on 2 threads, {seconds} s per row after a 2 s warm-up "
        "(10 connections), 30 s timeout; a Lua script sends, in turn, "
        + ", ".join(f"`{p}`" for p in MIX)
        + ". The floor is `/healthz` through the same nginx and 2 replicas.",
        "",
        f"- Command: `.venv/bin/python -m bench replicas` (or `.venv/bin/python -m bench.replicas "
        f"--seconds {seconds} --connections {connections}`)",
        f"- Machine: {setting['machine']}",
        f"- Date: {setting['date']}; code: {setting['code']}",
        "- Caveat: wrk, nginx, PostgreSQL and the replicas share the 2 cores; the CPU columns show who "
        "used them during the run (seconds of CPU over the run, so their sum ≈ 2 × the run's "
        "length means the machine was saturated). More replicas than cores cannot add CPU; they only add "
        "parallelism while others wait on PostgreSQL.",
        "",
        "| load | replicas | req/s | p50 ms | p99 ms | errors | req/s ÷ mix on 1 replica | p99 × floor "
        "| CPU s: replicas / PostgreSQL / nginx / wrk |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for row in rows:
        r = row.result
        problem = "**" + "; ".join(row.problems) + "**" if row.problems else "none"
        lines.append(
            f"| {row.label} | {row.replicas} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {problem} | "
            f"{r.rps / one.result.rps:.2f} | {r.p99_ms / floor.result.p99_ms:.1f} | "
            + " / ".join(f"{row.cpu[k]:.1f}" for k in ("replicas", "postgres", "nginx", "wrk"))
            + " |"
        )
    lines += [
        "",
        f"Failover (3 replicas, {LAB_CLIENTS} clients looping over the mini web lab's URL through nginx, "
        "30 s client timeout; the signal goes to the replica in the `leases` table; a lab is launched "
        "through another replica right after it). SIGKILL: the holder's pid is gone, so another replica on "
        "this host takes the lease at its next renewal (1 s). SIGSTOP stands for a lost host (its pid stays "
        "alive, its lease must run out: `server.lease_ttl` 5 s); the frozen replica is continued afterwards.",
        "",
        "| signal | lab requests | failed | in flight at the signal | new lease holder after | "
        "lab launched then running after | launch reply |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in fails:
        lines.append(
            f"| {f.how} | {f.requests} | {len(f.failed)} | {f.in_flight} | "
            + (f"{f.lease_after:.2f} s" if f.lease_after is not None else "**never**")
            + " | "
            + (f"{f.lab_after:.2f} s" if f.lab_after is not None else "**never**")
            + f" | {f.launch_status} |"
        )
    for f in fails:
        if f.failed:
            lines.append(f"\n{f.how} failures: " + ", ".join(sorted(set(f.failed))[:10]))
    two = next(r for r in rows if r.label == "API mix" and r.replicas == 2)
    met = {True: "met", False: "**NOT met**"}
    paced = [r for r in rows if r.label.startswith("API mix, each client pausing")]
    needed = connections / 0.2  # req/s at which `connections` requests always in flight wait 200 ms
    lines += [
        "",
        f"Goals (issue 17): {connections:,} clients on 2 replicas, p99 ≤ 200 ms. Clients that never pause "
        f"(wrk's closed loop, the 'API mix' rows): {met[two.result.p99_ms <= 200]} "
        f"({two.result.p99_ms:,.0f} ms). By Little's law, {connections:,} requests always in flight at "
        f"R req/s wait {connections:,}/R s on average, so a p99 ≤ 200 ms needs ≥ {needed:,.0f} req/s: "
        f"more than the floor itself ({floor.result.rps:,.0f} req/s for `/healthz` through the same nginx "
        "on these 2 cores). Clients that pause between requests (exponential think time, mean shown): "
        + "; ".join(
            f"{r.result.rps:,.0f} req/s → p99 {r.result.p99_ms:,.0f} ms, {met[r.result.p99_ms <= 200]}"
            for r in paced
        )
        + f". Zero errors: {met[not any(r.problems for r in rows)]}. "
        "Lab requests failed ≤ those in flight at the signal: "
        + ", ".join(f"{f.how} {met[len(f.failed) <= f.in_flight]}" for f in fails)
        + "; manager duties (new lease holder, the launched lab running) back ≤ 10 s: "
        + ", ".join(f"{f.how} {met[f.lab_after is not None and f.lab_after <= 10]}" for f in fails)
        + ".",
        "",
        "A frozen replica (SIGSTOP, or a host that stops answering without closing its connections) still "
        "accepts connections in the kernel, so nginx's `proxy_connect_timeout 5s` never fires: a lab's plain "
        f"request waits the site's `--lab-read-timeout` ({LAB_READ_TIMEOUT} here, 60 s by default) for its "
        "answer to begin, then nginx retries it on another replica (`proxy_next_upstream error timeout`, "
        "GETs only); WebSockets keep the long timeout. A dead replica (SIGKILL) refuses connections and "
        "nginx retries the request on another one at once.",
        f"- Load average after the run: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]
    return "\n".join(lines)


def run(seconds: int = 10, connections: int = 1000) -> bool:
    console = Console(width=max(Console().width, 130))
    setting = {"machine": machine(), "code": revision(), "date": date.today().isoformat()}
    with tempfile.TemporaryDirectory(prefix="datalabs-bench-replicas-") as tmp:
        console.print("PostgreSQL, 1,000 definitions, 3,000 assets...")
        platform = Platform(Path(tmp))
        try:
            platform.start("setup")
            platform.wait()
            port = platform.replicas["setup"][0]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=platform.headers, timeout=60) as c:
                for i in range(20):
                    r = c.put(f"/api/v1/workspaces/me/files/notes/note-{i:02d}.txt", content=b"x" * 1000 * i)
                    if r.status_code not in (200, 201):
                        raise RuntimeError(f"workspace PUT: {r.status_code} {r.text[:200]}")
            rows = scaling(platform, seconds, connections, console)
            fails = failovers(platform, console)
        finally:
            platform.close()
    body = markdown(rows, fails, seconds, connections, setting)
    write_section(SECTION, body)
    console.print(body)
    console.print(f"written to {RESULTS.relative_to(ROOT)}")
    return not any(r.problems for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per row")
    parser.add_argument("--connections", type=int, default=1000, help="concurrent clients")
    args = parser.parse_args()
    raise SystemExit(0 if run(args.seconds, args.connections) else 1)


if __name__ == "__main__":
    main()
