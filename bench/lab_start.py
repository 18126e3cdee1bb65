"""Launch-to-ready: POST /api/v1/labs to the first proxied 200, beside a bare start and JupyterHub.

For JupyterLab, three ways to the same server, interleaved round by round so they share the machine's
noise, each after one unmeasured warm-up:

- bare: `jupyter lab` on a unix socket as the unprivileged lab user, polled for /api/status directly;
- ours: `datalabs serve` (SQLite, local sandboxed runtime), POST /api/v1/labs, follow its event stream
  (as the UI does) until ready, then GET /datalabs/{id}/api/status through the platform's proxy until 200;
- JupyterHub with its LocalProcessSpawner and configurable-http-proxy (installed into bench/.cache on
  first use: PyPI `jupyterhub` + the same JupyterLab version, npm `configurable-http-proxy`), POST
  /hub/api/users/{u}/server, follow its progress event stream (as its UI does) until ready, then GET
  /user/{u}/api/status through CHP until 200.

Then the minimal web datalab (bench/labs/bench-minimal: a standard-library server) through the platform,
beside the same app started bare. Where a client polls (bare starts, the final GETs), it polls every
10 ms.

    .venv/bin/python -m bench.lab_start [--rounds 9] [--minimal-rounds 15] [--no-hub]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench import jupyterhub_peer
from bench.common import ROOT, clean_env, datalabs, machine, revision, serve, write_section

SECTION = "lab-start"
POLL = 0.01
LAB_UID = 65534
console = Console()


def wait_for_200(get: Callable[[], httpx.Response], started: float, timeout: float = 120) -> float:
    """Seconds from `started` until `get()` answers 200 (connection errors and other codes: retry)."""
    while time.perf_counter() - started < timeout:
        try:
            if get().status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(POLL)
    raise RuntimeError(f"no 200 within {timeout} s")


def follow_events(client: httpx.Client, url: str) -> dict:
    """Read a server-sent event stream until an event says ready or failed; that event's data (with
    `failed` set for our `failed` events). Both platforms offer one; it costs them nothing while waiting,
    unlike polling, which would compete with the starting server for the same two cores."""
    event = ""
    with client.stream("GET", url, timeout=180) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
                if event == "failed" or data.get("failed"):
                    return {**data, "failed": True}
                if event == "ready" or data.get("ready"):
                    return data
    raise RuntimeError(f"{url} ended without a ready or failed event")


# ---- bare starts ------------------------------------------------------------------------------------


def as_lab_user(argv: list[str]) -> list[str]:
    """Run as the unprivileged uid labs use when we are root, so bare and ours run as the same user."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={LAB_UID}", f"--regid={LAB_UID}", "--clear-groups", "--", *argv]


def bare_start(argv: list[str], path: str, headers: dict[str, str], work: Path, env: dict[str, str]) -> float:
    """Start `argv` (which serves on work/lab.sock), time the first 200 of `path`, then kill it."""
    sock = work / "lab.sock"
    sock.unlink(missing_ok=True)
    started = time.perf_counter()
    with (work / "bare.log").open("ab") as log:
        proc = subprocess.Popen(
            as_lab_user(argv), env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://lab") as client:

            def get() -> httpx.Response:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited with {proc.returncode}; see {work / 'bare.log'}")
                if not sock.exists():
                    raise httpx.ConnectError("no socket yet")
                return client.get(path, headers=headers)

            return wait_for_200(get, started)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()


def bare_jupyter(work: Path) -> float:
    token = secrets.token_hex(16)
    argv = [
        str(Path(sys.executable).parent / "jupyter-lab"),
        "--no-browser",
        f"--ServerApp.sock={work / 'lab.sock'}",
        "--ServerApp.base_url=/bare/",
        f"--ServerApp.root_dir={work}",
        "--ServerApp.allow_remote_access=True",  # as the platform starts it: the Host is not localhost
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "JUPYTER_TOKEN": token, "LANG": "C.UTF-8"}
    return bare_start(argv, "/bare/api/status", {"Authorization": f"token {token}"}, work, env)


def bare_minimal(work: Path) -> float:
    token = secrets.token_hex(16)
    argv = [
        sys.executable,
        "-I",
        "-S",
        str(ROOT / "bench" / "labs" / "bench-minimal" / "app.py"),
        str(work / "lab.sock"),
    ]
    env = {"PATH": os.environ["PATH"], "DATALAB_SECRET": token}
    return bare_start(argv, "/", {"X-Datalab-Secret": token}, work, env)


# ---- ours ---------------------------------------------------------------------------------------------


class Platform:
    """A real `datalabs serve` with the benchmark's datalabs and a user with a token."""

    def __init__(self, url: str, token: str):
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def launch_to_ready(self, datalab: str, ready_path: str) -> float:
        started = time.perf_counter()
        response = self.client.post("/api/v1/labs", json={"datalab": datalab})
        if response.status_code != 202:
            raise RuntimeError(f"launch failed: {response.status_code} {response.text}")
        lab = response.json()
        url = lab["path"] + ready_path

        outcome = follow_events(self.client, f"/api/v1/labs/{lab['id']}/events")
        if outcome.get("failed"):
            self.client.delete(f"/api/v1/labs/{lab['id']}")
            raise RuntimeError(f"lab failed: {outcome.get('message')}")
        try:
            return wait_for_200(lambda: self.client.get(url), started)
        finally:
            self.client.delete(f"/api/v1/labs/{lab['id']}")


# ---- the run ------------------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(rounds: int = 9, minimal_rounds: int = 15, hub: bool = True) -> bool:
    load = machine()
    times: dict[str, list[float]] = {"bare": [], "ours": [], "hub": [], "bare-min": [], "ours-min": []}
    hub_note = ""
    # Kept after the run (gitignored) so the servers' logs can be read when something fails.
    tmp_path = ROOT / "bench" / "out" / "lab-start"
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir(parents=True)
    if True:
        home = tmp_path / "home"
        env = clean_env(
            DATALABS_HOME=str(home),
            DATALABS_CATALOGUE__DIRS=json.dumps([str(ROOT / "bench" / "labs")]),
            DATALABS_LABS__MAX_RUNNING_PER_USER="10",
        )
        home.mkdir()
        datalabs("admin", "create-user", "bench", "--password", secrets.token_hex(12), env=env)
        token = datalabs("admin", "create-token", "bench", env=env)
        work = tmp_path / "bare"
        work.mkdir(mode=0o777)
        os.chmod(work, 0o777)  # the bare lab user must write its runtime files here
        peer = None
        if hub:
            try:
                peer = jupyterhub_peer.JupyterHub(tmp_path / "hub", console)
            except jupyterhub_peer.Unavailable as exc:
                hub_note = f"JupyterHub not measured: {exc}"
                console.print(f"[yellow]{hub_note}")
        with serve(env, tmp_path / "serve.log") as server:
            ours = Platform(server.url, token)
            with peer.running() if peer else contextlib.nullcontext():
                starts = {
                    "bare": lambda: bare_jupyter(work),
                    "ours": lambda: ours.launch_to_ready("jupyterlab", "api/status"),
                }
                if peer:
                    starts["hub"] = peer.launch_to_ready
                measure("JupyterLab", starts, rounds, times)
            minimal = {
                "bare-min": lambda: bare_minimal(work),
                "ours-min": lambda: ours.launch_to_ready("bench-minimal", ""),
            }
            measure("minimal", minimal, minimal_rounds, times)
    report(times, load, hub_note, rounds, minimal_rounds)
    return True


def measure(what: str, starts: dict[str, Callable[[], float]], rounds: int, times: dict[str, list]) -> None:
    """`rounds` rounds of every start in turn, after one unrecorded warm-up round."""
    for i in range(rounds + 1):
        measured = {key: start() for key, start in starts.items()}
        console.print(
            f"{what} round {i}{' (warm-up)' if i == 0 else ''}: "
            + ", ".join(f"{key} {value * 1000:,.0f} ms" for key, value in measured.items())
        )
        if i:
            for key, value in measured.items():
                times[key].append(value)


def report(times: dict[str, list[float]], load: str, hub_note: str, rounds: int, minimal_rounds: int) -> None:
    bare, ours, hub = p50(times["bare"]), p50(times["ours"]), p50(times["hub"])
    bare_min, ours_min = p50(times["bare-min"]), p50(times["ours-min"])
    # Paired: each round's difference, so a burst of load that slows one round's pair cancels out.
    overhead = p50([o - b for o, b in zip(times["ours"], times["bare"], strict=True)])
    rows = [
        ("JupyterLab, bare `jupyter lab` (floor)", bare, times["bare"], "1.00×", ""),
        (
            "JupyterLab through Datalabs",
            ours,
            times["ours"],
            f"{ours / bare:.2f}× bare",
            f"overhead {overhead * 1000:+.0f} ms, median of paired rounds (goal ≤ 200 ms): "
            + ("met" if overhead <= 0.2 else "NOT met"),
        ),
    ]
    if times["hub"]:
        rows.append(
            (
                "JupyterLab through JupyterHub + LocalProcessSpawner + CHP",
                hub,
                times["hub"],
                f"{hub / bare:.2f}× bare",
                f"Datalabs is {hub / ours:.2f}× faster"
                + (" (goal: faster: met)" if ours < hub else " (NOT met)"),
            )
        )
    rows += [
        ("minimal web app, bare (floor)", bare_min, times["bare-min"], "1.00×", ""),
        (
            "minimal web app through Datalabs",
            ours_min,
            times["ours-min"],
            f"{ours_min / bare_min:.1f}× bare",
            f"total {ours_min * 1000:.0f} ms (goal ≤ 300 ms): {'met' if ours_min <= 0.3 else 'NOT met'}",
        ),
    ]
    table = Table(title="Launch to first 200")
    for column in ("path", "p50", "min–max", "ratio", "goal"):
        table.add_column(column)
    for name, median, values, ratio, goal in rows:
        table.add_row(name, _ms(median), f"{_ms(min(values))}–{_ms(max(values))}", ratio, goal)
    console.print(table)
    lines = "\n".join(
        f"| {name} | {_ms(median)} | {_ms(min(values))}–{_ms(max(values))} | {ratio} | {goal} |"
        for name, median, values, ratio, goal in rows
    )
    write_section(
        SECTION,
        f"""## Lab start: launch to the first proxied 200

Command: `.venv/bin/python -m bench.lab_start` (part of `make bench`). Machine: {load}.
Date: {date.today().isoformat()}. Revision: {revision()}.

JupyterLab {_jupyterlab_version()}: {rounds} interleaved rounds after one warm-up each; the minimal web
app: {minimal_rounds} rounds. Ours is POST /api/v1/labs → first 200 of `/datalabs/<id>/api/status` through
the platform's proxy (sandbox, cgroup, per-lab token, DB state, route), the client following the lab's
event stream until ready as the UI does. Bare is the same command on a unix socket as the same
unprivileged user, no sandbox, polled every 10 ms. JupyterHub: POST /hub/api/users/<u>/server → first 200
of `/user/<u>/api/status` through configurable-http-proxy, following the hub's progress stream likewise.
{hub_note}

| path | p50 | min–max | ratio | goal |
| --- | --- | --- | --- | --- |
{lines}
""",
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _jupyterlab_version() -> str:
    from importlib.metadata import version

    return version("jupyterlab")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--minimal-rounds", type=int, default=15)
    parser.add_argument("--no-hub", action="store_true")
    args = parser.parse_args()
    sys.exit(0 if run(args.rounds, args.minimal_rounds, hub=not args.no_hub) else 1)


if __name__ == "__main__":
    if shutil.which("bwrap") is None:
        sys.exit("bubblewrap is not installed: run scripts/install-system-packages.sh base")
    main()
