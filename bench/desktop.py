"""Desktop datalabs: launch to the first frame per app, memory of an idle desktop lab, and frame bandwidth
through our VNC bridge beside websockify (Debian's, the usual noVNC peer) and the raw unix socket.

The client is the same small RFB client (tests/desktop_support.py: Raw encoding, full-screen updates) on
every path, so the paths differ only in what carries the bytes.

    .venv/bin/python -m bench.desktop [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
from tests.desktop_support import RfbClient, UnixTransport, WebSocketTransport

from bench.common import ROOT, clean_env, datalabs, free_port, machine, revision, serve, write_section

SECTION = "desktop"
APPS = ["topcat", "aladin", "ds9", "qfitsview", "fv", "filezilla", "octave", "astro-desktop"]
BANDWIDTH_APP = "ds9"


def lab_state(home: Path, lab_id: str) -> dict:
    with sqlite3.connect(home / "datalabs.db") as db:
        (state,) = db.execute("SELECT runtime_state FROM labs WHERE id = ?", (lab_id,)).fetchone()
    return json.loads(state)


def wait_running(client: httpx.Client, lab_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lab = client.get(f"/api/v1/labs/{lab_id}").json()
        if lab["state"] in ("running", "failed"):
            if lab["state"] == "failed":
                raise RuntimeError(f"lab failed: {lab['reason']}")
            return lab
        time.sleep(0.02)
    raise RuntimeError("lab did not start")


def first_frame(ws_url: str, token: str, timeout: float = 60) -> None:
    """Connect through the proxy and read full frames until one is not blank (the app is drawn)."""
    client = RfbClient(WebSocketTransport(ws_url, {"Authorization": f"Bearer {token}"}))
    try:
        deadline = time.monotonic() + timeout
        while client.frame().colours() <= 8:
            if time.monotonic() > deadline:
                raise RuntimeError("no non-blank frame")
            time.sleep(0.05)
    finally:
        client.close()


def pss_bytes(state: dict) -> int:
    """Proportional set size of every process of the lab (its cgroup), so shared libraries count once."""
    total = 0
    procs = next((Path(d) / "cgroup.procs" for d in state.get("cgroup", []) if "memory" in d), None)
    procs = procs or next((Path(d) / "cgroup.procs" for d in state.get("cgroup", [])), None)
    for pid in procs.read_text().split() if procs else []:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def bandwidth(transport_factory, seconds: float, password: str | None = None) -> tuple[float, float]:
    """(MB/s, frames/s) of full-screen Raw updates for `seconds`."""
    client = RfbClient(transport_factory(), password)
    try:
        client.frame()
        start, frames, received = time.perf_counter(), 0, client.received
        while time.perf_counter() - start < seconds:
            client.frame()
            frames += 1
        elapsed = time.perf_counter() - start
        return (client.received - received) / elapsed / 1e6, frames / elapsed
    finally:
        client.close()


def run(rounds: int = 3, seconds: float = 5.0, apps: list[str] = APPS) -> bool:
    load = machine()
    out = ROOT / "bench" / "out" / "desktop"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    home = out / "home"
    home.mkdir()
    env = clean_env(DATALABS_HOME=str(home), DATALABS_LABS__MAX_RUNNING_PER_USER="10")
    datalabs("admin", "create-user", "bench", "--password", "bench-password-1", env=env)
    token = datalabs("admin", "create-token", "bench", env=env)
    first: dict[str, list[float]] = {}
    running: dict[str, list[float]] = {}
    memory: dict[str, int] = {}
    paths: dict[str, tuple[float, float]] = {}
    with serve(env, out / "serve.log") as server:
        api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        available = {
            d["name"]
            for d in api.get("/api/v1/datalabs", params={"kind": "desktop", "limit": 100}).json()["items"]
            if d["available"]
        }
        for app in [a for a in apps if a in available]:
            for round_ in range(rounds):
                start = time.perf_counter()
                lab = api.post("/api/v1/labs", json={"datalab": app}).json()
                lab = wait_running(api, lab["id"])
                running.setdefault(app, []).append(time.perf_counter() - start)
                ws = server.url.replace("http://", "ws://") + f"/datalabs/{lab['id']}/vnc"
                first_frame(ws, token)
                first.setdefault(app, []).append(time.perf_counter() - start)
                if round_ == 0:
                    time.sleep(5)  # idle: nothing connected, the app settled
                    memory[app] = pss_bytes(lab_state(home, lab["id"]))
                if app == BANDWIDTH_APP and round_ == 0:
                    state = lab_state(home, lab["id"])
                    paths = measure_paths(ws, token, state["socket"], seconds, state.get("secret"))
                api.delete(f"/api/v1/labs/{lab['id']}")
            p50 = statistics.median(first[app])
            print(f"{app}: first frame p50 {p50:.2f} s, idle {memory[app] / 2**20:.0f} MiB")
    report(load, rounds, seconds, first, running, memory, paths)
    return bool(first)


def measure_paths(
    ws: str, token: str, vnc_socket: str, seconds: float, password: str | None = None
) -> dict[str, tuple[float, float]]:
    port = free_port()
    peer = subprocess.Popen(
        ["websockify", f"--unix-target={vnc_socket}", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    auth = {"Authorization": f"Bearer {token}"}
    try:
        time.sleep(1)
        results = {
            "ours": bandwidth(lambda: WebSocketTransport(ws, auth), seconds),
            "ours, deflate offered (as browsers do)": bandwidth(
                lambda: WebSocketTransport(ws, auth, compression="deflate"), seconds
            ),
            # Straight to Xvnc, as websockify would be used: it must answer the lab's password itself.
            "websockify": bandwidth(lambda: WebSocketTransport(f"ws://127.0.0.1:{port}/"), seconds, password),
            "unix socket": bandwidth(lambda: UnixTransport(vnc_socket), seconds, password),
        }
    finally:
        peer.terminate()
        peer.wait(10)
    for name, (mbs, fps) in results.items():
        print(f"bandwidth {name}: {mbs:.0f} MB/s, {fps:.1f} frames/s")
    return results


def report(load, rounds, seconds, first, running, memory, paths) -> None:
    rows = "\n".join(
        f"| {app} | {statistics.median(first[app]):.2f} s | {min(first[app]):.2f}–{max(first[app]):.2f} s "
        f"| {statistics.median(running[app]):.2f} s | {memory[app] / 2**20:,.0f} MiB |"
        for app in first
    )
    peer = paths.get("websockify", (0.0, 0.0))[0] or 1.0
    bw = "\n".join(
        f"| {name} | {mbs:,.0f} MB/s | {fps:.1f} | {mbs / peer:.2f}x |" for name, (mbs, fps) in paths.items()
    )
    write_section(
        SECTION,
        f"""## Desktop datalabs: first frame, idle memory, frame bandwidth

Command: `.venv/bin/python -m bench.desktop` (part of `make bench`). Machine: {load}.
Date: {date.today().isoformat()}. Revision: {revision()}.

Launch to first frame: POST /api/v1/labs → the lab is running (Xvnc up, the app's window mapped) → an RFB
client through the proxy's WebSocket bridge receives a full frame that is not blank; {rounds} rounds per
app. Idle memory: PSS of all the lab's processes (Xvnc, window manager, app) 5 s after start, nobody
connected.

| app | first frame p50 | min–max | running p50 | idle memory (PSS) |
| --- | --- | --- | --- | --- |
{rows}

Frame bandwidth ({BANDWIDTH_APP} lab, 1280x800, full-screen Raw updates back to back for {seconds:.0f} s, same
client): our bridge in `datalabs serve` beside Debian's websockify on the same VNC socket, and the socket
itself without a WebSocket (the client's ceiling).

| path | throughput | frames/s | vs websockify |
| --- | --- | --- | --- |
{bw}
""",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated datalab names")
    args = parser.parse_args()
    sys.exit(0 if run(args.rounds, args.seconds, args.apps.split(",")) else 1)


if __name__ == "__main__":
    main()
