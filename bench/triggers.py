"""Triggers (issue 18): how fast a file landing in a watched folder becomes a queued run, and how many new
files per minute the new-data matcher handles against 100 triggers on one core.

1. Latency: a real `datalabs serve` (no pipeline worker: runs stay queued) with one new-data trigger on a
   workspace folder; files land one at a time (written under a hidden name, renamed in, as instruments and
   labs do) and each run's queue time (the server's `created_at`) is compared with the landing time.
   Measured with inotify (the default) beside the periodic scan alone (triggers.inotify=false,
   scan_interval 2 s), the fallback where inotify is missing. Goal: p50 <= 2 s with inotify.
2. Matcher: in this process, on one core: 100 new-data triggers on one folder (each file name matches one
   trigger's glob); the time of one scan over N files already recorded (what every scan costs as files
   accumulate: walk, stat, 100 globs and key look-ups per file), and the rate of firing new files (event
   recorded + run queued, one transaction each). Goal: 10,000 new files per minute (167/s).

`python -m bench triggers [--files N] [--landings N]`; writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import RESULTS, clean_env, datalabs, machine, revision, serve, write_section

SECTION = "triggers"
COUNT = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [wc, -l]
stdout: lines.txt
inputs:
  data: {type: File, inputBinding: {position: 1}}
outputs:
  lines: {type: stdout}
"""


def _api(url: str, token: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{url}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def _land(folder: Path, name: str) -> float:
    tmp = folder / f".{name}.part"
    tmp.write_text("1\n2\n")
    moment = time.time()
    os.replace(tmp, folder / name)
    return moment


def latency(landings: int, inotify: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = clean_env(
            DATALABS_HOME=str(home),
            DATALABS_PIPELINES__WORKER="false",
            DATALABS_PIPELINES__SYSTEM="false",
            DATALABS_TRIGGERS__INOTIFY="true" if inotify else "false",
            DATALABS_TRIGGERS__SCAN_INTERVAL="10" if inotify else "2",
        )
        datalabs("admin", "create-user", "ada", "--password", "long-enough-pw", env=env)
        token = datalabs("admin", "create-token", "ada", env=env)
        with serve(env, Path(tmp) / "server.log") as server:
            url = server.url
            _api(url, token, "POST", "/api/v1/pipelines", {"name": "count", "cwl": COUNT})
            _api(url, token, "POST", "/api/v1/workspaces/me/files/incoming", {"op": "mkdir"})
            config = {"watch": "me/incoming"}
            _api(
                url, token, "POST", "/api/v1/pipelines/count/triggers", {"kind": "new_data", "config": config}
            )
            folder = home / "workspaces" / "users" / "ada" / "incoming"
            time.sleep(11.0 if inotify else 3.0)  # the watcher finds a new trigger at its next full scan
            landed = {}
            for i in range(landings):
                name = f"obs-{i:03d}.txt"
                landed[f"me/incoming/{name}"] = _land(folder, name)
                time.sleep(0.7)  # one at a time: each landing measured on its own
            deadline = time.time() + 60
            while time.time() < deadline:
                made = _api(url, token, "GET", "/api/v1/runs?pipeline=count&limit=1000")
                if len(made) >= landings:
                    break
                time.sleep(0.5)
    delays = []
    for run in made:
        ref = run["inputs"]["data"]["location"]
        delays.append(datetime.fromisoformat(run["created_at"]).timestamp() - landed[ref])
    delays.sort()
    return {
        "runs": len(made),
        "landings": landings,
        "p50": statistics.median(delays),
        "p95": delays[int(0.95 * (len(delays) - 1))],
        "max": delays[-1],
    }


def matcher(files: int, fired: int) -> dict:
    """In process: 100 triggers on one folder; a scan over `files` recorded files, then `fired` new ones."""
    from sqlalchemy import insert

    from datalabs.accounts import service as accounts
    from datalabs.config import Settings
    from datalabs.db.engine import open_database, transaction
    from datalabs.db.models import TriggerEvent
    from datalabs.pipelines import registry, runs, triggers
    from datalabs.pipelines.documents import load_text
    from datalabs.pipelines.trigger_watch import Watcher

    with tempfile.TemporaryDirectory(prefix="bench-matcher-") as tmp:
        settings = Settings(
            home=Path(tmp) / "home", auth={"secret_key": "k"}, triggers={"settle": 0, "max_files": 1_000_000}
        )
        settings.home.mkdir()
        engine, sessions = open_database(settings.database_url)  # migrated on open
        folder = settings.home / "workspaces" / "users" / "ada" / "incoming"
        folder.mkdir(parents=True)
        with transaction(sessions) as db:
            user = accounts.create_user(db, "ada", "long-enough-pw")
            principal = runs.principal_of(db, user)
            registry.create(
                db, principal, name="count", details=registry.Details(), system=False, version="1",
                notes="", document=load_text("count.cwl", COUNT), source=COUNT,
            )  # fmt: skip
        with transaction(sessions) as db:
            principal = runs.principal_of(db, accounts.get_user(db, "ada"))
            pipeline = registry.get_visible(db, principal, "count")
            ids = [
                triggers.create(
                    db, settings, principal, pipeline, kind="new_data",
                    config={"watch": "me/incoming", "pattern": f"*.s{i:02d}"},
                )[0].id
                for i in range(100)
            ]  # fmt: skip
        for i in range(files):
            (folder / f"old-{i:05d}.s{i % 100:02d}").write_text("1\n")
        watcher = Watcher(settings, sessions)
        # The files are recorded (as if fired before), so the scan measures matching alone.
        watcher._lists = {}
        rows = []
        for rel, _name, _mtime, mtime_ns, size in watcher._listing(folder, ()):
            trigger = ids[int(rel.rsplit(".s", 1)[1])]
            rows.append({"trigger_id": trigger, "event_key": f"file:me/incoming/{rel}@{mtime_ns}:{size}",
                         "detail": "", "skipped": "recorded by the bench"})  # fmt: skip
        with transaction(sessions) as db:
            db.execute(insert(TriggerEvent), rows)
        start = time.process_time()
        queued, _ = watcher.scan(now=time.time() + 1)
        scan_cpu = time.process_time() - start
        assert queued == [], "the recorded files fired"
        for i in range(fired):
            (folder / f"new-{i:05d}.s{i % 100:02d}").write_text("1\n")
        start, wall = time.process_time(), time.perf_counter()
        queued, _ = watcher.scan(now=time.time() + 1)
        fire_cpu, fire_wall = time.process_time() - start, time.perf_counter() - wall
        engine.dispose()
    return {
        "files": files,
        "scan_cpu": scan_cpu,
        "fired": len(queued),
        "fire_cpu": fire_cpu,
        "fire_wall": fire_wall,
        "per_minute": 60 * len(queued) / fire_wall if fire_wall else 0.0,
    }


def run(landings: int = 20, files: int = 10_000, fired: int = 1000) -> bool:
    console = Console()
    with_inotify = latency(landings, inotify=True)
    scans_only = latency(landings, inotify=False)
    match = matcher(files, fired)
    table = Table("measure", "inotify", "scan every 2 s (no inotify)")
    for key in ("p50", "p95", "max"):
        table.add_row(f"landing -> queued {key}", f"{with_inotify[key]:.2f} s", f"{scans_only[key]:.2f} s")
    console.print(table)
    console.print(match)
    ratio = scans_only["p50"] / with_inotify["p50"] if with_inotify["p50"] else float("inf")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    goal = "met" if with_inotify["p50"] <= 2 else "NOT met"
    fire = f"{match['fire_wall']:.1f} s wall, {match['fire_cpu']:.1f} s CPU"
    body = f"""## Triggers: file landing -> run queued, and the new-data matcher

`python -m bench triggers` on {machine()}; revision {revision()}; {when}.

Landing -> queued: a real `datalabs serve` (SQLite, no worker), one new-data trigger on a workspace folder,
{landings} files landing one at a time (hidden name, renamed in), `triggers.settle` 0.5 s (default), after the
watcher's next full scan has found the new trigger (a new trigger is watched from then on: up to
`triggers.scan_interval`, 10 s by default).

| landing -> run queued | inotify (default) | periodic scan every 2 s (no inotify) |
| --- | --- | --- |
| p50 | {with_inotify["p50"]:.2f} s | {scans_only["p50"]:.2f} s |
| p95 | {with_inotify["p95"]:.2f} s | {scans_only["p95"]:.2f} s |
| max | {with_inotify["max"]:.2f} s | {scans_only["max"]:.2f} s |
| runs / files | {with_inotify["runs"]} / {landings} | {scans_only["runs"]} / {landings} |

inotify is {ratio:.1f}x faster at p50 than the scan fallback. Goal p50 <= 2 s: {goal}.

Matcher (one process, one core, SQLite): 100 new-data triggers on one folder, each file name matching one
trigger's glob.

| measure | value |
| --- | --- |
| one scan over {match["files"]:,} recorded files x 100 triggers (CPU) | {match["scan_cpu"]:.2f} s |
| firing {match["fired"]:,} new files (event + run queued each) | {fire} |
| new files fired per minute | {match["per_minute"]:,.0f} (goal 10,000) |
"""
    write_section(SECTION, body)
    console.print(f"written to {RESULTS}")
    return with_inotify["runs"] == landings and scans_only["runs"] == landings and match["fired"] == fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--landings", type=int, default=20)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--fired", type=int, default=1000)
    args = parser.parse_args()
    raise SystemExit(0 if run(args.landings, args.files, args.fired) else 1)


if __name__ == "__main__":
    main()
