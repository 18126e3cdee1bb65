"""The lab proxy on the real platform path beside configurable-http-proxy (CHP), on the same upstream.

A real `datalabs serve` (SQLite in a temporary DATALABS_HOME, a user with an API token) launches the
benchmark datalab `bench-proxy` through POST /api/v1/labs, sandboxed like any lab. The datalab runs one
upstream process: uvicorn (httptools, uvloop) with a raw ASGI app that answers 100 bytes, streams 1 GiB
from `.../big` and echoes WebSocket messages, listening both on the lab's unix socket (where the
platform's proxy connects, injecting the lab's secret header) and on 127.0.0.1 TCP (CHP cannot reach a
unix socket), where CHP 5 (npm, installed into bench/.cache on first use) forwards with the same kind of
secret header (`--custom-header`) and the direct row goes with no proxy at all (the ceiling).

Every figure is measured for the three paths in turn, round after round (the order rotates), and the
ratio ours ÷ CHP is the median of the per-round ratios, so the paths share the machine's noise:

- small requests: wrk at 10 and 50 connections, bearer token on every request;
- WebSocket echo: 10 connections each sending a 32-byte text message and awaiting its echo, for N s
  (a Python websockets client on uvloop, the same for every path); round-trips/s;
- 1 GiB: one streamed GET through curl; MiB/s and the peak RSS growth of the proxying process
  (`datalabs serve` itself, or CHP's node), sampled from /proc every 50 ms.

    .venv/bin/python -m bench.proxy [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import (
    RESULTS,
    ROOT,
    Server,
    clean_env,
    datalabs,
    free_port,
    machine,
    revision,
    serve,
    write_section,
    wrk,
)

SECTION = "proxy"
DATALAB = "bench-proxy"
WORK = ROOT / "bench" / "out" / "proxy"  # gitignored; kept after the run for the logs
CACHE = ROOT / "bench" / ".cache" / "chp"  # gitignored; shared with the lab-start benchmark's JupyterHub
CHP = CACHE / "node_modules" / ".bin" / "configurable-http-proxy"
BIG = 2**30
WS_CONNECTIONS = 10
WS_MESSAGE = "m" * 32
CONNECTIONS = (10, 50)
GOAL_RSS_MIB = 64
console = Console(width=max(Console().width, 120))

# ---- the benchmark datalab ---------------------------------------------------------------------------

UPSTREAM = '''\
"""The proxy benchmark's upstream: one uvicorn process (httptools, uvloop) serving a raw ASGI app on the
lab's unix socket (for the platform's proxy) and on 127.0.0.1:PORT (for configurable-http-proxy and the
direct row). Every request must carry X-Datalab-Secret: the platform's ($DATALAB_SECRET) or the one given
for TCP. GET .../big streams 1 GiB; any other GET answers 100 bytes; WebSocket messages are echoed.

    python3 upstream.py SOCKET PORT TCP_SECRET
"""

import os
import socket
import sys

import uvicorn

SMALL = b"x" * 100
CHUNK = b"b" * 2**20
BIG = 2**30
SECRETS = {os.environ.get("DATALAB_SECRET", "").encode(), sys.argv[3].encode()} - {b""}
SMALL_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"100")]
BIG_HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % BIG)]
DENIED = {"type": "http.response.start", "status": 403, "headers": [(b"content-length", b"0")]}


def allowed(scope):
    for name, value in scope["headers"]:
        if name == b"x-datalab-secret":
            return value in SECRETS
    return False


async def app(scope, receive, send):
    if scope["type"] == "http":
        if not allowed(scope):
            await send(DENIED)
            await send({"type": "http.response.body", "body": b""})
        elif scope["path"].endswith("/big"):
            await send({"type": "http.response.start", "status": 200, "headers": BIG_HEADERS})
            for _ in range(BIG // len(CHUNK) - 1):
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": CHUNK})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": SMALL_HEADERS})
            await send({"type": "http.response.body", "body": SMALL})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        if not allowed(scope):
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


if __name__ == "__main__":
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(sys.argv[1])
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", int(sys.argv[2])))
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", lifespan="off", access_log=False, log_level="warning"
    )
    print(f"upstream serving on {sys.argv[1]} and 127.0.0.1:{sys.argv[2]}", flush=True)
    uvicorn.Server(config).run(sockets=[unix, tcp])
'''


def write_datalab(catalogue: Path, port: int, tcp_secret: str) -> None:
    """The `bench-proxy` definition and its upstream app, readable by the unprivileged lab user."""
    folder = catalogue / DATALAB
    folder.mkdir(parents=True)
    meta = {
        "name": DATALAB,
        "title": "Proxy benchmark upstream",
        "abstract": "A fast ASGI app on the lab's socket and on TCP, to measure the proxy in front of it.",
        "version": "1.0.0",
        "creator": {"name": "Datalabs benchmarks"},
        "distribution": {"license": "BSD-3-Clause"},
        "domain": "Cross-domain",
        "runtime": {
            "kind": "web",
            "command": ["python3", "/media/notebooks/upstream.py", "{socket}", str(port), tcp_secret],
            "ready_path": "{base_url}small",
            # the whole machine: the upstream must not be what limits any of the paths
            "resources": {"default": {"cpu": 2, "memory": "2G"}, "maximum": {"cpu": 2, "memory": "2G"}},
        },
    }
    (folder / "datalab-meta.yml").write_text(json.dumps(meta, indent=2))  # JSON is YAML
    (folder / "upstream.py").write_text(UPSTREAM)
    for path in (catalogue, folder):
        path.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


class Lab:
    """The benchmark datalab launched through the API; destroyed on exit (labs outlive the platform)."""

    def __init__(self, server: Server, token: str):
        auth = {"Authorization": f"Bearer {token}"}
        self.client = httpx.Client(base_url=server.url, headers=auth, timeout=30)
        self.id = ""

    def launch(self, timeout: float = 120) -> str:
        response = self.client.post("/api/v1/labs", json={"datalab": DATALAB})
        if response.status_code != 202:
            raise RuntimeError(f"launch failed: {response.status_code} {response.text}")
        self.id = response.json()["id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.client.get(f"/api/v1/labs/{self.id}").json()
            if state["state"] == "running":
                return self.id
            if state["state"] in ("failed", "stopped"):
                logs = self.client.get(f"/api/v1/labs/{self.id}/logs").text
                raise RuntimeError(f"the lab {state['state']}: {state.get('reason')}\n{logs[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"the lab was not running after {timeout} s")

    def destroy(self) -> None:
        if self.id:
            with contextlib.suppress(httpx.HTTPError):
                self.client.delete(f"/api/v1/labs/{self.id}")
        self.client.close()


# ---- configurable-http-proxy ---------------------------------------------------------------------------


def chp_version() -> str:
    package = CACHE / "node_modules" / "configurable-http-proxy" / "package.json"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return f"configurable-http-proxy {json.loads(package.read_text())['version']} (node {node})"


def install_chp() -> None:
    """npm `configurable-http-proxy@5` into bench/.cache/chp, once."""
    if CHP.exists():
        return
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed (Debian package npm): cannot measure the peer")
    console.print("Installing configurable-http-proxy with npm (first run only)")
    argv = ["npm", "install", "--silent", "--prefix", str(CACHE), "configurable-http-proxy@5"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"npm install failed: {(proc.stderr or proc.stdout).strip()[-500:]}")


@contextlib.contextmanager
def chp(lab_id: str, upstream: str, secret_header: str, log: Path) -> Iterator[tuple[str, int]]:
    """CHP on a free port with the lab's route (`/datalabs/<id>` -> upstream) added through its API and
    `secret_header` added to every proxied request; yields (its URL, its pid)."""
    port, api_port, api_token = free_port(), free_port(), secrets.token_hex(16)
    argv = [str(CHP), "--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1"]
    argv += ["--api-port", str(api_port), "--custom-header", secret_header, "--log-level", "error"]
    with log.open("w") as out:
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": api_token}
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        api = f"http://127.0.0.1:{api_port}/api/routes/datalabs/{lab_id}"
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"configurable-http-proxy exited ({proc.returncode}): {log.read_text()}")
            try:
                response = httpx.post(
                    api, json={"target": upstream}, headers={"Authorization": f"token {api_token}"}
                )
                response.raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- measuring -------------------------------------------------------------------------------------------


@dataclass
class Target:
    """One path to the upstream: `url` is the lab's base URL through it (ending in /datalabs/<id>/)."""

    key: str
    label: str
    url: str
    headers: dict[str, str]
    pid: int | None  # the proxying process (None: no proxy)
    figures: dict[str, list[float]] = field(default_factory=dict)  # figure -> one value per round
    problems: list[str] = field(default_factory=list)

    def add(self, figure: str, value: float) -> None:
        self.figures.setdefault(figure, []).append(value)

    def median(self, figure: str) -> float | None:
        values = self.figures.get(figure)
        return statistics.median(values) if values else None


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def measure_wrk(target: Target, connections: int, seconds: int) -> None:
    cpu = cpu_seconds(target.pid)
    result = wrk(target.url + "small", threads=2, connections=connections, seconds=seconds, timeout=30,
                 headers=target.headers)  # fmt: skip
    cpu = cpu_seconds(target.pid) - cpu
    target.add(f"rps{connections}", result.rps)
    target.add(f"p50_{connections}", result.p50_ms)
    if target.pid is not None:
        target.add(f"cpu{connections}", cpu * 1e6 / max(result.requests, 1))
    if result.errors or result.requests < connections:
        target.problems.append(
            f"wrk c={connections}: {result.requests} replies, {result.non_2xx} non-2xx, "
            f"socket errors {result.socket_errors}"
        )


async def ws_echo(url: str, headers: dict[str, str], connections: int, seconds: float) -> int:
    """Round-trips completed by `connections` clients in `seconds` (all connect first, then run)."""
    from websockets.asyncio.client import connect

    sockets = [
        await connect(url, additional_headers=headers, compression=None, ping_interval=None, proxy=None)
        for _ in range(connections)
    ]
    try:
        for ws in sockets:  # one round-trip each before the clock starts
            await ws.send(WS_MESSAGE)
            if await ws.recv() != WS_MESSAGE:
                raise RuntimeError("the echo differs from the message")
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds

        async def client(ws) -> int:
            done = 0
            while loop.time() < stop:
                await ws.send(WS_MESSAGE)
                await ws.recv()
                done += 1
            return done

        return sum(await asyncio.gather(*(client(ws) for ws in sockets)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def measure_ws(target: Target, seconds: int) -> None:
    import uvloop

    url = "ws" + target.url.removeprefix("http") + "ws"
    cpu = cpu_seconds(target.pid)
    started = time.perf_counter()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            done = runner.run(ws_echo(url, target.headers, WS_CONNECTIONS, seconds))
    except Exception as exc:  # noqa: BLE001 (reported as a problem of the run, not raised)
        target.problems.append(f"WebSocket echo failed: {exc!r}")
        return
    elapsed = time.perf_counter() - started  # includes connecting; `seconds` is the measured window
    cpu = cpu_seconds(target.pid) - cpu
    target.add("ws", done / seconds)
    if target.pid is not None:
        target.add("ws_cpu", cpu * 1e6 / max(done, 1))
    if elapsed > seconds + 10:
        target.problems.append(f"WebSocket echo took {elapsed:.0f} s for a {seconds} s window")


def measure_big(target: Target) -> None:
    """One 1 GiB GET with curl, sampling the proxy's RSS every 50 ms."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    base = rss_bytes(target.pid) if target.pid else 0
    peak = base
    argv.append(target.url + "big")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        if target.pid:
            peak = max(peak, rss_bytes(target.pid))
        time.sleep(0.05)
    out, err = proc.communicate()
    status, size, seconds = out.split() if out.count(" ") == 2 else ("0", "0", "0")
    if proc.returncode or status != "200" or int(size) != BIG:
        target.problems.append(f"1 GiB GET: curl exit {proc.returncode}, status {status}, {size} bytes {err}")
        return
    target.add("big_mib_s", BIG / 2**20 / float(seconds))
    if target.pid:
        target.add("big_rss_mib", (peak - base) / 2**20)


def check(target: Target) -> None:
    """One request, so a broken path fails loudly before it is measured."""
    response = httpx.get(target.url + "small", headers=target.headers, timeout=30)
    if response.status_code != 200 or len(response.content) != 100:
        raise RuntimeError(f"{target.label}: {response.status_code} {response.text[:200]}")


def rounds_of(targets: list[Target], rounds: int, seconds: int) -> None:
    """Each figure for every path in turn (the order rotating each round), `rounds` times."""
    steps: list[tuple[str, Callable[[Target], None]]] = [
        *((f"wrk c={c}", lambda t, c=c: measure_wrk(t, c, seconds)) for c in CONNECTIONS),
        ("WebSocket echo", lambda t: measure_ws(t, seconds)),
        ("1 GiB", measure_big),
    ]
    for n in range(rounds):
        order = targets[n % len(targets) :] + targets[: n % len(targets)]
        for name, step in steps:
            for target in order:
                before = {k: len(v) for k, v in target.figures.items()}
                step(target)
                new = {k: f"{v[-1]:,.1f}" for k, v in target.figures.items() if len(v) > before.get(k, 0)}
                console.print(f"round {n + 1}/{rounds}: {name} via {target.label}: {new or 'failed'}")
                time.sleep(0.5)


# ---- reporting -------------------------------------------------------------------------------------------


def ratio(ours: Target, peer: Target, figure: str) -> float | None:
    """The median of the per-round ratios ours ÷ peer (rounds where both were measured)."""
    pairs = zip(ours.figures.get(figure, []), peer.figures.get(figure, []), strict=False)
    values = [a / b for a, b in pairs if b]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def http_rows(targets: list[Target]) -> list[list[str]]:
    rows = []
    for t in targets:
        rows.append(
            [t.label]
            + [fmt(t.median(f"rps{c}")) for c in CONNECTIONS]
            + [fmt(t.median(f"p50_{c}"), ".2f") for c in CONNECTIONS]
            + [fmt(t.median(f"cpu{c}")) for c in CONNECTIONS]
        )
    return rows


def other_rows(targets: list[Target]) -> list[list[str]]:
    return [
        [
            t.label,
            fmt(t.median("ws")),
            fmt(t.median("ws_cpu")),
            fmt(t.median("big_mib_s")),
            fmt(max(t.figures.get("big_rss_mib", []), default=None), ".1f"),
        ]
        for t in targets
    ]


HTTP_COLUMNS = ["req/s c=10", "req/s c=50", "p50 ms c=10", "p50 ms c=50", "proxy CPU µs/req c=10",
                "proxy CPU µs/req c=50"]  # fmt: skip
OTHER_COLUMNS = ["WS round-trips/s", "proxy CPU µs/round-trip", "1 GiB MiB/s", "proxy peak RSS growth MiB"]


def goals(ours: Target, peer: Target) -> list[tuple[str, float | None, bool]]:
    """(what, figure, met) for each goal of issue 3's proxy part."""
    found = []
    for c in CONNECTIONS:
        r = ratio(ours, peer, f"rps{c}")
        found.append((f"small requests c={c}: ours ÷ CHP ≥ 1.0", r, r is not None and r >= 1.0))
    r = ratio(ours, peer, "ws")
    found.append(("WebSocket echo round-trips/s: ours ÷ CHP ≥ 1.0", r, r is not None and r >= 1.0))
    rss = max(ours.figures.get("big_rss_mib", []), default=None)
    found.append((f"1 GiB through the proxy: peak RSS growth < {GOAL_RSS_MIB} MiB", rss,
                  rss is not None and rss < GOAL_RSS_MIB))  # fmt: skip
    return found


def print_tables(targets: list[Target], ours: Target, peer: Target) -> None:
    for title, columns, rows in (
        ("Small requests (100 bytes), medians", HTTP_COLUMNS, http_rows(targets)),
        ("WebSocket echo and 1 GiB download, medians (RSS: worst round)", OTHER_COLUMNS, other_rows(targets)),
    ):
        table = Table(title=title)
        table.add_column("path")
        for column in columns:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for what, figure, met in goals(ours, peer):
        mark = "[green]met[/]" if met else "[bold red]NOT met[/]"
        console.print(f"{what}: {fmt(figure, '.2f')} — {mark}")
    console.print(f"(no goal) 1 GiB MiB/s ours ÷ CHP: {fmt(ratio(ours, peer, 'big_mib_s'), '.2f')}")
    for t in targets:
        for problem in t.problems:
            console.print(f"[bold red]{t.label}: {problem}[/]")


def markdown(targets: list[Target], ours: Target, peer: Target, setting: dict[str, str], rounds: int,
             seconds: int) -> str:  # fmt: skip
    def table(columns: list[str], rows: list[list[str]]) -> list[str]:
        lines = ["| path | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
        return lines + ["| " + " | ".join(row) + " |" for row in rows]

    lines = [
        "## Lab proxy vs configurable-http-proxy",
        "",
        "The real platform path: `datalabs serve` (one uvicorn process, SQLite in a temporary "
        "DATALABS_HOME) launches the `bench-proxy` datalab through POST /api/v1/labs, sandboxed as any "
        "lab; clients go to `/datalabs/<id>/...` with a bearer token, which the proxy authenticates "
        "(cached), authorises, strips, and replaces by the lab's secret header. The upstream is ONE "
        "process in that lab (uvicorn + httptools + uvloop, raw ASGI app: 100-byte answer, 1 GiB stream, "
        "WebSocket echo) listening on the lab's unix socket for our proxy and on 127.0.0.1 TCP for "
        f"the peer, {setting['chp']}, which cannot reach a unix socket (it adds the secret header with "
        "`--custom-header`, does no authentication, and pools upstream connections), and for the direct "
        "row (no proxy: the ceiling). So that the peer reaches the same process, this lab runs with "
        "`labs.network = host`; our proxy's path (the lab's unix socket, opened and checked as always) "
        "does not depend on it.",
        "",
        f"{rounds} rounds; in each, every figure is measured for the three paths in turn (order rotating "
        "per round), so they share the machine's noise. Figures are medians over the rounds; each ratio "
        "is the median of the per-round ratios ours ÷ CHP. Small requests: "
        f"`wrk -t2 -c<10|50> -d{seconds}s --latency -H 'Authorization: Bearer <token>' "
        "<base>small`. WebSocket echo: 10 connections (Python websockets client on uvloop), each sending "
        f"a 32-byte text message and awaiting the echo, for {seconds} s. 1 GiB: one `curl` GET of "
        "`<base>big` per round; RSS growth is the peak VmRSS of the proxying process (`datalabs serve` "
        "itself / CHP's node) sampled every 50 ms during the transfer, minus its VmRSS just before "
        "(worst round shown). Proxy CPU is the user+system time of that process per request (or round-trip): "
        "less sensitive than req/s to other load on the machine.",
        "",
        "- Command: `.venv/bin/python -m bench proxy` (all benchmarks: `make bench`), in the repository root",
        f"- Machine: {setting['machine']}",
        "- Caveat: clients (wrk, the Python WebSocket client, curl), the proxy and the upstream share the "
        "2 cores, and other work on the machine adds noise.",
        f"- Date: {setting['date']}; code: {setting['code']}",
        "",
        "Small requests (100-byte answers):",
        "",
        *table(HTTP_COLUMNS, http_rows(targets)),
        "",
        "WebSocket echo and 1 GiB download:",
        "",
        *table(OTHER_COLUMNS, other_rows(targets)),
        "",
        "Goals (issue 3, proxy part):",
        "",
    ]
    for what, figure, met in goals(ours, peer):
        lines.append(f"- {what}: **{fmt(figure, '.2f')}** — {'met' if met else '**NOT met**'}")
    lines.append(f"- (no goal) 1 GiB MiB/s ours ÷ CHP: {fmt(ratio(ours, peer, 'big_mib_s'), '.2f')}")
    problems = [f"{t.label}: {p}" for t in targets for p in t.problems]
    if problems:
        lines += ["", "**WARNING: this run had errors; figures are suspect:**", ""]
        lines += [f"- {p}" for p in problems]
    return "\n".join(lines)


# ---- the run -----------------------------------------------------------------------------------------------


def run(rounds: int = 3, seconds: int = 5) -> bool:
    """Run the benchmark, print the tables and write RESULTS.md; False if anything failed."""
    setting = {"machine": machine(), "code": revision(), "date": date.today().isoformat()}
    install_chp()
    setting["chp"] = chp_version()
    shutil.rmtree(WORK, ignore_errors=True)
    home = WORK / "home"
    home.mkdir(parents=True)
    port, tcp_secret = free_port(), secrets.token_hex(16)
    write_datalab(WORK / "catalogue", port, tcp_secret)
    env = clean_env(
        DATALABS_HOME=str(home),
        DATALABS_CATALOGUE__DIRS=json.dumps([str(WORK / "catalogue")]),
        DATALABS_CATALOGUE__BUILTIN="false",
        # The one upstream must also listen on TCP for the peer (CHP cannot reach a unix socket), so this
        # lab shares the host's network; our proxy's path (the lab's unix socket, checked) is unchanged.
        DATALABS_LABS__NETWORK="host",
    )
    datalabs("admin", "create-user", "bench", "--password", secrets.token_hex(12), env=env)
    token = datalabs("admin", "create-token", "bench", env=env)
    bearer = {"Authorization": f"Bearer {token}"}
    with serve(env, WORK / "serve.log") as server:
        lab = Lab(server, token)
        try:
            lab_id = lab.launch()
            console.print(f"lab {lab_id} running; upstream also on 127.0.0.1:{port}")
            upstream = f"http://127.0.0.1:{port}"
            with chp(lab_id, upstream, f"X-Datalab-Secret: {tcp_secret}", WORK / "chp.log") as (chp_url, pid):
                path = f"/datalabs/{lab_id}/"
                direct = {**bearer, "X-Datalab-Secret": tcp_secret}
                targets = [
                    Target("direct", "direct to upstream (TCP, no proxy)", upstream + path, direct, None),
                    Target("ours", "Datalabs proxy (datalabs serve)", server.url + path, bearer, server.pid),
                    Target("chp", setting["chp"], chp_url + path, bearer, pid),
                ]
                for target in targets:
                    check(target)
                    warm = {"threads": 2, "connections": 10, "seconds": 2, "timeout": 30}
                    wrk(target.url + "small", headers=target.headers, **warm)
                rounds_of(targets, rounds, seconds)
        finally:
            lab.destroy()
    ours, peer = targets[1], targets[2]
    print_tables(targets, ours, peer)
    write_section(SECTION, markdown(targets, ours, peer, setting, rounds, seconds))
    console.print(f"written to {RESULTS.relative_to(ROOT)}")
    return not any(t.problems for t in targets)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--seconds", type=int, default=5, help="wrk and WebSocket run length")
    args = parser.parse_args()
    raise SystemExit(0 if run(args.rounds, args.seconds) else 1)


if __name__ == "__main__":
    main()
