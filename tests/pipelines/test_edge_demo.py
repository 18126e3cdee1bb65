"""The edge demo end to end through the platform's own triggers (issue 18 acceptance), against a real
`datalabs serve`: `datalabs demo edge` registers the station folder and its kept/ folder as data volumes and
a new-data trigger running `event-recorder` on each low-fidelity chunk, then the station writes data with 3
injected events; once it has run, exactly the 3 high-fidelity windows are kept, every high-fidelity chunk has
aged out (retention 0, each only after its recorder runs ended), and the explorer shows the 3 windows,
dated by their events. The platform is killed (SIGKILL) and started again while the station writes. SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest

from datalabs.demo import station as st
from tests.live import DATALABS, free_port, wait_healthy

pytestmark = pytest.mark.slow

START = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
MINUTES, EVENTS, SEED = 6, 3, 18
PASSWORD = "long-enough-pw"


def _cli(home, *args, env=None, timeout=60) -> subprocess.CompletedProcess:
    full = {**os.environ, "DATALABS_HOME": str(home), "COLUMNS": "200", **(env or {})}
    return subprocess.run([DATALABS, *args], env=full, capture_output=True, text=True, timeout=timeout)


class Platform:
    """`datalabs serve` on one port, killed and started again on the same port."""

    def __init__(self, home, db_url: str) -> None:
        self.home, self.port = home, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATALABS_HOME": str(home),
            "DATALABS_DB__URL": db_url,
            "DATALABS_SERVER__LEASE_TTL": "3",
            "DATALABS_TRIGGERS__SCAN_INTERVAL": "1",
            "DATALABS_TRIGGERS__SETTLE": "0.3",
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.home / f"server-{self.starts}.log").open("w")
        cmd = [DATALABS, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(self.base, self.proc, self.home)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def platform(tmp_path, db_url):
    home = tmp_path / "home"
    home.mkdir()
    db = {"DATALABS_DB__URL": db_url}
    made = _cli(home, "admin", "create-user", "root", "--password", PASSWORD, "--admin", env=db)
    assert made.returncode == 0, made.stderr
    token = _cli(home, "admin", "create-token", "root", "--expires-in", "3600", env=db)
    assert token.returncode == 0, token.stderr
    p = Platform(home, db_url)
    p.start()
    p.token = token.stdout.strip()
    yield p
    p.stop()


def _runs(base: str, token: str) -> list[dict]:
    with httpx.Client(base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}) as c:
        return c.get("/api/v1/runs", params={"pipeline": "event-recorder", "limit": 1000}).json()


def test_three_events_kept_the_rest_aged_out_and_the_explorer_shows_them(platform, tmp_path):
    out = tmp_path / "station"
    env = {
        "DATALABS_API_URL": platform.base,
        "DATALABS_TOKEN": platform.token,
        "DATALABS_CREDENTIALS": str(tmp_path / "none.json"),
    }
    full = {**platform.env, "COLUMNS": "200", **env}
    args = ["demo", "edge", "--out", str(out), "--minutes", str(MINUTES), "--events", str(EVENTS)]
    args += ["--seed", str(SEED), "--start", START.isoformat(), "--speed", "15", "--retention", "0"]
    args += ["--wait", "400"]
    demo = subprocess.Popen([DATALABS, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        # Once the first chunk's run has ended, the platform dies while the station goes on writing.
        deadline = time.monotonic() + 240
        while not any(r["state"] in ("succeeded", "failed") for r in _runs(platform.base, platform.token)):
            if demo.poll() is not None:
                raise AssertionError(f"datalabs demo edge ended: {demo.stdout.read()}")
            assert time.monotonic() < deadline, "no recorder run ended"
            time.sleep(0.2)
        platform.kill()
        time.sleep(4.5)  # a chunk or more lands while nobody watches (one every 4 s)
        platform.start()
        said, _ = demo.communicate(timeout=600)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, said
    assert "data volume station-DEMO01" in said and "trigger" in said and "event-recorder" in said
    assert f"{platform.base}/explorer?collection=station-events" in said

    injected = st.plan_events(SEED, MINUTES, EVENTS, START)
    runs = _runs(platform.base, platform.token)
    # One run per low-fidelity chunk, exactly once across the restart, each started by the trigger.
    lowfi = sorted(r["inputs"]["lowfi"]["location"].rsplit("/", 1)[1] for r in runs)
    assert lowfi == sorted(p.name for p in (out / st.LOWFI).iterdir()) and len(lowfi) == MINUTES
    assert all(r["triggered_by"]["kind"] == "new_data" and r["state"] == "succeeded" for r in runs), runs
    # Exactly the 3 windows kept; the rest of the high-fidelity data aged out; the cheap stream stays.
    kept = sorted(p.name for p in (out / st.KEPT).iterdir())
    assert len(kept) == EVENTS, kept
    assert list((out / st.HIFI).iterdir()) == []
    assert f"{EVENTS} window(s) kept" in said
    assert f"{MINUTES} high-fidelity chunk(s) aged out; 0 within the last 0 s" in said
    # The explorer: collection station-events holds exactly those 3, dated by their events.
    with httpx.Client(base_url=platform.base, timeout=30) as c:
        r = c.post("/api/v1/login", json={"username": "root", "password": PASSWORD})
        assert r.status_code == 200, r.text
        found = c.get("/api/v1/assets/search", params={"collection": "station-events"}).json()
        assert found["total"] == EVENTS, found
        items = sorted(found["items"], key=lambda i: i["start"])
        assert sorted(i["path"] for i in items) == kept
        for item, truth in zip(items, injected, strict=True):
            when = datetime.fromisoformat(item["start"].replace("Z", "+00:00"))
            assert abs((when - truth.time).total_seconds()) <= 1.0, (item, truth)
        page = c.get("/explorer", params={"collection": "station-events"})
        assert page.status_code == 200
        shown = set(re.findall(r"DEMO01_\d{8}T\d{6,8}Z_event\.nc", page.text))
        assert shown == set(kept), shown

    # Set up again: the volumes and the trigger are found, not made twice; another folder is refused.
    env["DATALABS_DB__URL"] = platform.env["DATALABS_DB__URL"]
    again = _cli(platform.home, "demo", "edge", "--out", str(out), "--setup-only", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(there already)") == 3, again.stdout
    other = tmp_path / "elsewhere"
    moved = _cli(platform.home, "demo", "edge", "--out", str(other), "--setup-only", env=env)
    assert moved.returncode == 1 and "the data volume station-DEMO01 is" in moved.stderr, moved.stderr
    with httpx.Client(
        base_url=platform.base, timeout=10, headers={"Authorization": f"Bearer {platform.token}"}
    ) as c:
        assert len(c.get("/api/v1/pipelines/event-recorder/triggers").json()) == 1
